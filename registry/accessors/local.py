"""The local backend: a storage root that is a folder of this machine (or a mounted share)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from registry.accessors.base import Backend, FileEntry, ObjectInfo, check_key
from registry.errors import ObjectNotFoundError, StorageAccessDeniedError, StorageError

_HASH_BLOCK = 1 << 20


def md5_of_file(path: Path) -> str:
    """The md5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class LocalBackend(Backend):
    """Objects are files (or folders) under an absolute local folder."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.folder = Path(root).expanduser()

    def uri(self, key: str) -> str:
        return str(self.folder / check_key(key, self.root))

    def local_path(self, key: str) -> Path:
        return self.folder / check_key(key, self.root)

    def _existing(self, key: str) -> Path:
        path = self.local_path(key)
        try:
            path.stat()
        except FileNotFoundError:
            raise ObjectNotFoundError(
                f"Artifact key {key!r} in storage {self.root!r}: no file at {path}. Check the "
                "artifact's key and storage root; if the file was moved or deleted, restore it "
                "or delete the artifact record."
            ) from None
        except PermissionError as exc:
            raise StorageAccessDeniedError(
                f"Artifact key {key!r} in storage {self.root!r}: cannot access {path} ({exc}). "
                "Ask the folder's owner for read permission."
            ) from exc
        return path

    def stat(self, key: str, *, with_hash: bool = False) -> ObjectInfo:
        path = self._existing(key)
        if path.is_dir():
            return ObjectInfo(size=sum(f.size for f in self.list_files(key)), is_dir=True)
        size = path.stat().st_size
        if with_hash:
            return ObjectInfo(size=size, hash=md5_of_file(path), hash_type="md5")
        return ObjectInfo(size=size)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        path = self._existing(key)
        with path.open("rb") as fh:
            return os.pread(fh.fileno(), length, start)

    def download(self, key: str, dest: Path, size: int | None = None) -> None:
        shutil.copyfile(self._existing(key), dest)

    def list_files(self, key: str) -> list[FileEntry]:
        folder = self.local_path(key)
        return [
            FileEntry(str(PurePosixPath(*p.relative_to(folder).parts)), p.stat().st_size)
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        ]

    def download_files(self, key: str, files: Sequence[FileEntry], dest: Path) -> None:
        folder = self._existing(key)
        for entry in files:
            target = dest / entry.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / entry.relpath, target)

    def open(self, key: str) -> BinaryIO:
        return self._existing(key).open("rb")

    def put_file(self, key: str, source: Path) -> None:
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)  # atomic: the key shows the whole file or nothing
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"Cannot write {target} in storage {self.root!r}: {exc}") from exc

    def remove(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)

    def cache_relpath(self, key: str) -> PurePosixPath:
        # Local objects are never copied into the cache; this names where a copy would go.
        return PurePosixPath("local", *self.folder.parts[1:], check_key(key, self.root))
