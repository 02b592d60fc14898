"""The local cache of remote objects: download once, verify, rename into place atomically, and
verify again a copy that changed since.

Layout under ``$CELLREGISTRY_HOME/cache``::

    <bucket>/<key>            verified copies (only ever created by an atomic rename)
    .verified/<id>.json       what was verified of each copy (see :mod:`.cache_records`)
    .partial/<id>.<pid>.<n>   downloads in progress (a file, or a folder for SOMA stores)
    .locks/<id>.lock          one lock file per cached object (``fcntl.flock``)

``<id>`` is a digest of the object's cache path. A download holds the object's lock, so two
processes caching the same object fetch it once: the second waits, then finds the copy. A
process killed mid-download leaves only its partial file, which the next cache of that object
deletes (it holds the lock, so no live process is writing it). ``flock`` locks are released by
the kernel when a process dies; they need a local file system (not every NFS supports them).

Each file of a download is checked against a hash (the artifact's, else the object's ETag; each
file of a SOMA store against its own ETag) and the copy's record is written. Then
:func:`cache_object`:

- returns a copy whose files all still have their recorded size and mtime (and, for a SOMA
  store, no file more or less) after one ``stat`` per file, without reading them;
- hashes again, under the object's lock, the files of a copy that changed since (or that has no
  record, e.g. made by an older version): a copy that still matches gets a new record, one that
  does not is replaced by a fresh verified download (atomically) and a warning says so;
- with ``verify=True`` hashes every file again in any case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import shutil
import warnings
from pathlib import Path

from registry import instances
from registry.accessors.backends import backend_for
from registry.accessors.base import (
    ArtifactLike,
    Backend,
    FileEntry,
    ObjectInfo,
    key_problem,
    object_key,
)
from registry.accessors.cache_records import (
    CopyRecord,
    FileRecord,
    files_of,
    is_unchanged,
    read_record,
    set_mtime,
    verification_time,
    write_record,
)
from registry.accessors.hashing import HashCheck, check_file_hash, hash_file, normalise_hash
from registry.errors import (
    HashMismatchError,
    InvalidKeyError,
    ObjectNotFoundError,
    SizeMismatchError,
    StorageError,
)
from registry.locks import file_lock

_COUNTER = itertools.count()
ARTIFACT_HASH = "the artifact's hash"
OBJECT_ETAG = "the object's ETag"


def cache_root() -> Path:
    """``$CELLREGISTRY_HOME/cache`` (see :func:`registry.instances.home`)."""
    return instances.home() / "cache"


def cache_path(backend: Backend, key: str) -> Path:
    """Where the cached copy of ``key`` is (or will be)."""
    return cache_root().joinpath(*backend.cache_relpath(key).parts)


def record_path(copy: Path) -> Path:
    """Where the record of what was verified of the copy ``copy`` is."""
    return cache_root() / ".verified" / f"{_object_id(copy)}.json"


def _object_id(copy: Path) -> str:
    return hashlib.sha256(str(copy).encode()).hexdigest()[:32]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _agrees(record: CopyRecord | None, size: int | None, hash: str) -> bool:
    """The record is of the object the artifact describes (same size, same hash)."""
    if record is None or (size is not None and record.size != size):
        return False
    return not hash or record.is_dir or normalise_hash(hash) == record.files[0].hash


def cache_object(
    backend: Backend,
    key: str,
    *,
    size: int | None = None,
    hash: str = "",
    hash_type: str = "",
    verify: bool = False,
) -> Path:
    """A verified local path of the object ``key``: its own path for a local storage, else a
    cached copy, downloaded on first use and verified again when it changed.

    Args:
        backend: the storage's backend.
        key: the artifact key.
        size: the artifact's recorded size (checked against the object and the download).
        hash: the artifact's recorded hash; when empty the object's ETag is checked instead.
        hash_type: ``md5`` or ``md5-n``.
        verify: hash the copy (or a local storage's own file) again even if it looks unchanged.

    Raises:
        ObjectNotFoundError, StorageAccessDeniedError: from the storage.
        SizeMismatchError, HashMismatchError: the download (or, with ``verify``, a local
            storage's own file) does not match; a failed download is deleted, nothing is cached.
        InvalidKeyError: a SOMA store holds a file whose name would leave the cache folder.
    """
    local = backend.local_path(key)
    if local is not None:
        return _local_file(backend, key, local, size, hash=hash, hash_type=hash_type, verify=verify)
    target = cache_path(backend, key)
    record_file = record_path(target)
    record = read_record(record_file)
    if not verify and _agrees(record, size, hash) and is_unchanged(target, record):
        return target
    object_id = _object_id(target)
    with file_lock(cache_root() / ".locks" / f"{object_id}.lock"):
        record = read_record(record_file)
        if not verify and _agrees(record, size, hash) and is_unchanged(target, record):
            return target  # another process verified or repaired it while we waited
        partial_dir = cache_root() / ".partial"
        partial_dir.mkdir(parents=True, exist_ok=True)
        for leftover in partial_dir.glob(f"{object_id}.*"):  # of processes that died
            _remove(leftover)
        if files_of(target) is None:
            _download(backend, key, target, size=size, hash=hash, hash_type=hash_type)
            return target
        usable = record if _agrees(record, size, hash) else None
        expected = _expected_files(backend, key, target, usable, size, hash, hash_type)
        checked, problem = _check_copy(backend, key, target, usable, expected, verify=verify)
        if checked is not None:
            write_record(record_file, CopyRecord(backend.uri(key), target.is_dir(), checked))
            return target
        warnings.warn(
            f"Artifact key {key!r} in storage {backend.root!r}: the cached copy {target} "
            f"{problem}; it is replaced by a fresh verified download of {backend.uri(key)}.",
            stacklevel=3,
        )
        try:
            _download(backend, key, target, size=size, hash=hash, hash_type=hash_type)
        except StorageError:
            record_file.unlink(missing_ok=True)  # the damaged copy must not pass as verified
            _remove(target)
            raise
    return target


def cache_artifact(artifact: ArtifactLike, *, verify: bool = False) -> Path:
    """A local, verified path of an artifact's bytes (``Artifact.cache(verify=...)``)."""
    return cache_object(
        backend_for(artifact.storage),
        object_key(artifact),
        size=artifact.size,
        hash=artifact.hash,
        hash_type=artifact.hash_type,
        verify=verify,
    )


# --- verifying a copy that is in place ----------------------------------------------------


def _expected_files(
    backend: Backend,
    key: str,
    copy: Path,
    record: CopyRecord | None,
    size: int | None,
    hash: str,
    hash_type: str,
) -> dict[str, FileRecord]:
    """What each file of the copy must be: its record, else the artifact's size and hash, else
    what the storage says (a HEAD for a file's ETag, a listing for a store's files)."""
    if record is not None:
        return {f.path: f for f in record.files}
    if copy.is_dir():
        return {f.relpath: _from_listing(f) for f in backend.list_files(key)}
    if hash and size is not None:
        info = ObjectInfo(size=size)  # the artifact says all: no request
    else:
        info = backend.stat(key)
        info = info if size is None else dataclasses.replace(info, size=size)
    return {"": _wanted_file(info, hash, hash_type)[0]}


def _wanted_file(info: ObjectInfo, hash: str, hash_type: str) -> tuple[FileRecord, str]:
    """What a file object must be: its size, and the artifact's hash, else the object's ETag;
    with the name of that source (for messages)."""
    if hash:
        want = FileRecord("", info.size, hash=normalise_hash(hash), hash_type=hash_type or "md5")
        return want, ARTIFACT_HASH
    want = FileRecord("", info.size, hash=normalise_hash(info.hash), hash_type=info.hash_type)
    return want, OBJECT_ETAG


def _from_listing(entry: FileEntry) -> FileRecord:
    return FileRecord(
        entry.relpath,
        entry.size,
        hash=normalise_hash(entry.hash) if entry.hash else "",
        hash_type=entry.hash_type,
    )


def _check_copy(
    backend: Backend,
    key: str,
    copy: Path,
    record: CopyRecord | None,
    expected: dict[str, FileRecord],
    *,
    verify: bool,
) -> tuple[tuple[FileRecord, ...] | None, str]:
    """Hash again the files of ``copy`` that changed since ``record`` (all with ``verify``).

    Returns:
        ``(the new file records, "")`` when every file is as expected, else ``(None, what is
        wrong)``.
    """
    if files_of(copy) != set(expected):
        return None, "does not hold the files the store has"
    unchanged = {f.path: f for f in record.files} if record is not None else {}
    mtime = verification_time()
    checked = []
    for path, want in sorted(expected.items()):
        file = want.in_copy(copy)
        info = file.stat()
        previous = unchanged.get(path)
        if not verify and previous is not None and previous.matches(info):
            checked.append(previous)
            continue
        name = f"file {path!r} " if path else ""
        if info.st_size != want.size:
            return None, f"{name}has {info.st_size} bytes instead of {want.size}"
        result = _hash_check(backend, _file_key(key, path), file, want)
        if result.ok is None:
            return None, f"{name}cannot be checked ({result.note})"
        if not result.ok:
            return None, f"{name}does not match its hash (it was changed or damaged on disk)"
        part_size = result.part_size or want.part_size
        checked.append(
            dataclasses.replace(want, mtime_ns=set_mtime(file, mtime), part_size=part_size)
        )
    return tuple(checked), ""


def _file_key(key: str, path: str) -> str:
    return f"{key}/{path}" if path else key


def _hash_check(backend: Backend, key: str, file: Path, want: FileRecord) -> HashCheck:
    """Check ``file`` against ``want``'s md5 of the accepted bytes, else its hash."""
    if want.md5:
        got, _ = hash_file(file, md5=True)
        return HashCheck(got == want.md5, got)
    if not want.hash:
        return HashCheck(None, note="no hash is known for it")
    part_size = want.part_size
    if part_size is None and "-" in want.hash:
        part_size = backend.multipart_part_size(key)
    size = file.stat().st_size
    return check_file_hash(file, want.hash, want.hash_type or "md5", size=size, part_size=part_size)


# --- downloading --------------------------------------------------------------------------


def _download(
    backend: Backend, key: str, target: Path, *, size: int | None, hash: str, hash_type: str
) -> None:
    """Download, verify and record the object; the copy replaces ``target`` atomically."""
    info = backend.stat(key)
    _check_size(backend, key, recorded=size, info=info)
    object_id = _object_id(target)
    partial_dir = cache_root() / ".partial"
    tmp = partial_dir / f"{object_id}.{os.getpid()}.{next(_COUNTER)}"
    mtime = verification_time()
    try:
        if info.is_dir:
            files = _download_folder(backend, key, tmp)
            wanted = [(_from_listing(entry), OBJECT_ETAG) for entry in files]
        else:
            backend.download(key, tmp, size=info.size)
            _check_download_size(backend, key, tmp, info)
            wanted = [_wanted_file(info, hash, hash_type)]
        checked = []
        for want, source in wanted:
            accepted = _accept(backend, key, want.in_copy(tmp), want, source)
            mtime_ns = set_mtime(want.in_copy(tmp), mtime)
            checked.append(dataclasses.replace(accepted, mtime_ns=mtime_ns))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and (info.is_dir or target.is_dir()):
            stale = partial_dir / f"{object_id}.{os.getpid()}.stale"
            os.replace(target, stale)  # a folder cannot be renamed over: move it aside first
            _remove(stale)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            _remove(tmp)
    write_record(record_path(target), CopyRecord(backend.uri(key), info.is_dir, tuple(checked)))


def _accept(backend: Backend, key: str, file: Path, want: FileRecord, source: str) -> FileRecord:
    """Check a downloaded file against its hash; the record of the accepted file.

    Raises:
        HashMismatchError: the bytes do not hash to ``want.hash``.
    """
    file_key = _file_key(key, want.path)
    what = f"file {want.path!r} of the store" if want.path else "the download"
    if not want.hash:
        return dataclasses.replace(want, md5=hash_file(file, md5=True)[0])
    check = _hash_check(backend, file_key, file, want)
    if check.ok is None:
        warnings.warn(
            f"Artifact key {key!r} in storage {backend.root!r}: only the size of {what} was "
            f"verified, not {source} {want.hash!r}: {check.note}. Its md5 is recorded to catch "
            "later changes of the copy.",
            stacklevel=4,
        )
        return dataclasses.replace(want, md5=hash_file(file, md5=True)[0])
    if not check.ok:
        raise HashMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: {what} of "
            f"{backend.uri(file_key)} does not match {source}: expected {want.hash_type} "
            f"{want.hash}, got {check.got}. The downloaded file was deleted. The object changed "
            "after registration or the transfer was corrupted: run cache() again; if it fails "
            "again, restore the object or re-register the artifact."
        )
    return dataclasses.replace(want, part_size=check.part_size)


def _check_size(backend: Backend, key: str, *, recorded: int | None, info: ObjectInfo) -> None:
    if recorded is not None and info.size != recorded:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: expected {recorded} bytes (the "
            f"artifact's size), got {info.size} bytes at {backend.uri(key)}. The object was "
            "replaced after registration (or the record is wrong); nothing was cached. Restore "
            "the object, or re-register the artifact."
        )


def _check_download_size(backend: Backend, key: str, path: Path, info: ObjectInfo) -> None:
    got_size = path.stat().st_size
    if got_size != info.size:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: expected {info.size} bytes, "
            f"downloaded {got_size} from {backend.uri(key)} (the object changed during the "
            "download, or the transfer broke). The partial copy was deleted; run cache() again."
        )


def _download_folder(backend: Backend, key: str, dest: Path) -> list[FileEntry]:
    """Download every file of a folder/prefix (a SOMA store) and check each file's size."""
    files = backend.list_files(key)
    for entry in files:
        problem = key_problem(entry.relpath)
        if problem:
            raise InvalidKeyError(
                f"Artifact key {key!r} in storage {backend.root!r}: the store holds a file "
                f"named {entry.relpath!r} under {backend.uri(key)}, which cannot be copied into "
                f"the cache ({problem}); nothing was cached. Rename or delete that object."
            )
    dest.mkdir(parents=True)
    backend.download_files(key, files, dest)
    for entry in files:
        got = (dest / entry.relpath).stat().st_size
        if got != entry.size:
            raise SizeMismatchError(
                f"Artifact key {key!r} in storage {backend.root!r}: file {entry.relpath!r} of "
                f"the store: expected {entry.size} bytes, downloaded {got}. The partial copy "
                "was deleted; run cache() again."
            )
    return files


# --- a local storage's own files ----------------------------------------------------------


def _local_file(
    backend: Backend,
    key: str,
    path: Path,
    size: int | None,
    *,
    hash: str,
    hash_type: str,
    verify: bool,
) -> Path:
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ObjectNotFoundError(
            f"Artifact key {key!r} in storage {backend.root!r}: no file at {path}. Check the "
            "artifact's key and storage root; if the file was moved or deleted, restore it or "
            "delete the artifact record."
        ) from None
    is_file = not path.is_dir()
    if size is not None and is_file and found.st_size != size:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: the file {path} has "
            f"{found.st_size} bytes but the artifact records {size}: the file was changed or "
            "truncated after registration. Restore it, or re-register the artifact."
        )
    if verify and hash and is_file:
        want = FileRecord("", found.st_size, hash=normalise_hash(hash), hash_type=hash_type)
        check = _hash_check(backend, key, path, want)
        if check.ok is False:
            raise HashMismatchError(
                f"Artifact key {key!r} in storage {backend.root!r}: the file {path} does not "
                f"match the artifact's hash: expected {hash_type or 'md5'} {want.hash}, got "
                f"{check.got}: the file was changed after registration. Restore it, or "
                "re-register the artifact."
            )
        if check.ok is None:
            warnings.warn(
                f"Artifact key {key!r} in storage {backend.root!r}: the file {path} could not "
                f"be checked against the artifact's hash {want.hash!r}: {check.note}.",
                stacklevel=3,
            )
    return path
