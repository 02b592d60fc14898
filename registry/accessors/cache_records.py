"""What was verified of each cached copy: one small JSON record per copy, written atomically.

A record lists every file of the copy (one for a file, each file of a SOMA store, by its path
inside the store) with its size and ``mtime_ns`` when it was verified and what its bytes were
checked against: the artifact's hash, else the object's ETag (S3 listings give each file of a
store its own), with the upload part size that reproduced a multipart ETag; when no hash could
be checked, the md5 of the accepted bytes, so that later changes are still caught.

A verified file's mtime is set to :data:`MTIME_MARGIN_NS` before its verification began. Any
later write to it gets the current time from the kernel, so its mtime changes even when the
write lands in the same clock tick as the verification (file system timestamps are coarse, a
few milliseconds): an unchanged size and mtime then mean an unchanged file, short of someone
restoring the mtime on purpose (``cache(verify=True)`` is for that).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

#: format of the records; a record of another version is ignored (the copy is verified again)
RECORD_VERSION = 1
#: how long before its verification began a verified file's mtime is set
MTIME_MARGIN_NS = 1_000_000_000

_COUNTER = itertools.count()


@dataclass(frozen=True)
class FileRecord:
    """One file of a copy: what it must be, and how it was when it was verified.

    Attributes:
        path: inside the copy, ``/``-separated (``""`` when the copy is one file).
        size: bytes.
        mtime_ns: the file's mtime once verified (``0`` while it is only an expectation).
        hash: what the bytes were checked against (lowercase hex md5, or ``<hex>-<N>``), or
            ``""`` when nothing was known.
        hash_type: ``md5`` or ``md5-n``.
        part_size: the upload part size that reproduced a multipart ``hash``.
        md5: the md5 of the accepted bytes, recorded when ``hash`` could not be checked.
    """

    path: str
    size: int
    mtime_ns: int = 0
    hash: str = ""
    hash_type: str = ""
    part_size: int | None = None
    md5: str = ""

    def matches(self, info: os.stat_result) -> bool:
        """The file still has the size and mtime it had when it was verified."""
        return (
            stat.S_ISREG(info.st_mode)
            and info.st_size == self.size
            and info.st_mtime_ns == self.mtime_ns
        )

    def in_copy(self, copy: Path) -> Path:
        """This file's path in the copy ``copy``."""
        return copy / self.path if self.path else copy


@dataclass(frozen=True)
class CopyRecord:
    """What was verified of one cached copy.

    Attributes:
        uri: where the copy came from (shown to people reading the record).
        is_dir: the copy is a folder (a SOMA store).
        files: one record per file of the copy.
    """

    uri: str
    is_dir: bool
    files: tuple[FileRecord, ...]

    @property
    def size(self) -> int:
        """Bytes of the whole copy."""
        return sum(f.size for f in self.files)


def read_record(path: Path) -> CopyRecord | None:
    """The record at ``path``; ``None`` when there is none or it cannot be read (the copy is
    then verified again, which writes a new record)."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") != RECORD_VERSION:
            return None
        files = tuple(FileRecord(**entry) for entry in data["files"])
        return CopyRecord(uri=str(data["uri"]), is_dir=bool(data["is_dir"]), files=files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(path: Path, record: CopyRecord) -> None:
    """Write ``record`` to ``path`` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": RECORD_VERSION,
        "uri": record.uri,
        "is_dir": record.is_dir,
        "files": [dataclasses.asdict(f) for f in record.files],
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{next(_COUNTER)}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def files_of(copy: Path) -> set[str] | None:
    """The paths of the files in a copy (``{""}`` for a file), ``None`` when there is no copy."""
    try:
        info = copy.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return {""}
    found = set()
    for folder, _, names in os.walk(copy):
        relative = Path(folder).relative_to(copy)
        found.update((relative / name).as_posix() for name in names)
    return found


def is_unchanged(copy: Path, record: CopyRecord) -> bool:
    """Every file of ``record`` still has its size and mtime, and a folder holds no other file.

    One ``stat`` for a file; for a folder, a walk and one ``stat`` per file.
    """
    if not record.is_dir:
        try:
            return record.files[0].matches(copy.stat())
        except (FileNotFoundError, IndexError):
            return False
    if files_of(copy) != {f.path for f in record.files}:
        return False
    try:
        return all(f.matches(f.in_copy(copy).stat()) for f in record.files)
    except FileNotFoundError:
        return False


def verification_time() -> int:
    """The mtime to give files verified from now on (see :data:`MTIME_MARGIN_NS`)."""
    return time.time_ns() - MTIME_MARGIN_NS


def set_mtime(path: Path, mtime_ns: int) -> int:
    """Give ``path`` the mtime ``mtime_ns`` (its atime kept); returns the mtime it now has."""
    os.utime(path, ns=(path.stat().st_atime_ns, mtime_ns))
    return path.stat().st_mtime_ns
