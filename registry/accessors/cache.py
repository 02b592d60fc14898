"""The local cache of remote objects: download once, verify, rename into place atomically.

Layout under ``$CELLREGISTRY_HOME/cache``::

    <bucket>/<key>            verified copies (only ever created by an atomic rename)
    .partial/<id>.<pid>.<n>   downloads in progress (a file, or a folder for SOMA stores)
    .locks/<id>.lock          one lock file per cached object (``fcntl.flock``)

``<id>`` is a digest of the object's cache path. A download holds the object's lock, so two
processes caching the same object fetch it once: the second waits, then finds the copy. A
process killed mid-download leaves only its partial file, which the next cache of that object
deletes (it holds the lock, so no live process is writing it). ``flock`` locks are released by
the kernel when a process dies; they need a local file system (not every NFS supports them).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import stat
import warnings
from pathlib import Path

from registry import instances
from registry.accessors.backends import backend_for
from registry.accessors.base import ArtifactLike, Backend, ObjectInfo
from registry.accessors.hashing import check_file_hash
from registry.errors import HashMismatchError, ObjectNotFoundError, SizeMismatchError
from registry.locks import file_lock

_COUNTER = itertools.count()


def cache_root() -> Path:
    """``$CELLREGISTRY_HOME/cache`` (see :func:`registry.instances.home`)."""
    return instances.home() / "cache"


def cache_path(backend: Backend, key: str) -> Path:
    """Where the cached copy of ``key`` is (or will be)."""
    return cache_root().joinpath(*backend.cache_relpath(key).parts)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _is_cached(target: Path, size: int | None) -> bool:
    """A copy is in place (and has the recorded size, for a file): one ``stat``, no download."""
    try:
        info = target.stat()
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(info.st_mode) or size is None or info.st_size == size


def cache_object(
    backend: Backend,
    key: str,
    *,
    size: int | None = None,
    hash: str = "",
    hash_type: str = "",
) -> Path:
    """A verified local path of the object ``key``: its own path for a local storage, else a
    cached copy, downloaded on first use.

    Args:
        backend: the storage's backend.
        key: the artifact key.
        size: the artifact's recorded size (checked against the object and the download).
        hash: the artifact's recorded hash; when empty the object's ETag is checked instead.
        hash_type: ``md5`` or ``md5-n``.

    Raises:
        ObjectNotFoundError, StorageAccessDeniedError: from the storage.
        SizeMismatchError, HashMismatchError: the download was deleted; nothing is cached.
    """
    local = backend.local_path(key)
    if local is not None:
        return _local_file(backend, key, local, size)
    target = cache_path(backend, key)
    if _is_cached(target, size):
        return target
    object_id = hashlib.sha256(str(target).encode()).hexdigest()[:32]
    partial_dir = cache_root() / ".partial"
    with file_lock(cache_root() / ".locks" / f"{object_id}.lock"):
        if _is_cached(target, size):  # another process finished it while we waited
            return target
        partial_dir.mkdir(parents=True, exist_ok=True)
        for leftover in partial_dir.glob(f"{object_id}.*"):  # of processes that died
            _remove(leftover)
        info = backend.stat(key)
        _check_size(backend, key, recorded=size, info=info)
        tmp = partial_dir / f"{object_id}.{os.getpid()}.{next(_COUNTER)}"
        try:
            if info.is_dir:
                _download_folder(backend, key, tmp)
            else:
                backend.download(key, tmp, size=info.size)
                _verify_file(backend, key, tmp, info, hash=hash, hash_type=hash_type)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # a stale copy (size changed): move it aside, then swap
                stale = partial_dir / f"{object_id}.{os.getpid()}.stale"
                os.replace(target, stale)
                _remove(stale)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                _remove(tmp)
    return target


def cache_artifact(artifact: ArtifactLike) -> Path:
    """A local, verified path of an artifact's bytes (``Artifact.cache()``)."""
    return cache_object(
        backend_for(artifact.storage),
        artifact.key,
        size=artifact.size,
        hash=artifact.hash,
        hash_type=artifact.hash_type,
    )


def _local_file(backend: Backend, key: str, path: Path, size: int | None) -> Path:
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ObjectNotFoundError(
            f"Artifact key {key!r} in storage {backend.root!r}: no file at {path}. Check the "
            "artifact's key and storage root; if the file was moved or deleted, restore it or "
            "delete the artifact record."
        ) from None
    if size is not None and stat.S_ISREG(found.st_mode) and found.st_size != size:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: the file {path} has "
            f"{found.st_size} bytes but the artifact records {size}: the file was changed or "
            "truncated after registration. Restore it, or re-register the artifact."
        )
    return path


def _check_size(backend: Backend, key: str, *, recorded: int | None, info: ObjectInfo) -> None:
    if recorded is not None and info.size != recorded:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: expected {recorded} bytes (the "
            f"artifact's size), got {info.size} bytes at {backend.uri(key)}. The object was "
            "replaced after registration (or the record is wrong); nothing was cached. Restore "
            "the object, or re-register the artifact."
        )


def _verify_file(
    backend: Backend, key: str, path: Path, info: ObjectInfo, *, hash: str, hash_type: str
) -> None:
    """Size, then hash (the artifact's when recorded, else the object's ETag) of a download."""
    got_size = path.stat().st_size
    if got_size != info.size:
        raise SizeMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: expected {info.size} bytes, "
            f"downloaded {got_size} from {backend.uri(key)} (the object changed during the "
            "download, or the transfer broke). The partial copy was deleted; run cache() again."
        )
    expected, expected_type, source = (
        (hash, hash_type or "md5", "the artifact's hash")
        if hash
        else (info.hash, info.hash_type, "the object's ETag")
    )
    if not expected:
        return
    part_size = backend.multipart_part_size(key) if expected_type == "md5-n" else None
    check = check_file_hash(path, expected, expected_type, size=got_size, part_size=part_size)
    if check.ok is None:
        warnings.warn(
            f"Artifact key {key!r} in storage {backend.root!r}: only the size of the download "
            f"was verified, not {source} {expected!r}: {check.note}.",
            stacklevel=3,
        )
    elif not check.ok:
        raise HashMismatchError(
            f"Artifact key {key!r} in storage {backend.root!r}: the download of "
            f"{backend.uri(key)} does not match {source}: expected {expected_type} {expected}, "
            f"got {check.got}. The downloaded file was deleted. The object changed after "
            "registration or the transfer was corrupted: run cache() again; if it fails again, "
            "restore the object or re-register the artifact."
        )


def _download_folder(backend: Backend, key: str, dest: Path) -> None:
    """Download every file of a folder/prefix (a SOMA store) and check each file's size."""
    files = backend.list_files(key)
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
