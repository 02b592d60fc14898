"""The storage backend interface: what ``cache``, ``load`` and ``open`` need from a storage root.

A backend reads objects by their artifact ``key`` (the path inside the storage root). It never
touches the database: ``registry.accessors.backends.backend_for`` builds one from a Storage record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from registry.errors import InvalidKeyError


class StorageLike(Protocol):
    """The fields of :class:`registry.models.Storage` that backends read."""

    root: str
    endpoint_url: str
    region: str
    anonymous: bool


class ArtifactLike(Protocol):
    """The fields of :class:`registry.models.Artifact` that the accessors read."""

    key: str
    storage: StorageLike
    suffix: str
    otype: str
    size: int | None
    hash: str
    hash_type: str


def object_key(artifact: ArtifactLike) -> str:
    """Where an artifact's bytes are inside its storage: ``storage_key`` when this instance
    wrote them (``.cellregistry/<uid><suffix>``), else its ``key``."""
    return getattr(artifact, "storage_key", "") or artifact.key


@dataclass(frozen=True)
class ObjectInfo:
    """What a storage says about one object, without downloading it.

    Attributes:
        size: bytes (for a folder/prefix: the sum over its files).
        hash: for S3 the ETag without quotes (``md5`` hex, or ``<hex>-<N>`` for a multipart
            upload); for a local file ``""`` unless a hash was asked for.
        hash_type: ``md5``, ``md5-n`` or ``""``.
        is_dir: the key is a folder (local) or a prefix (S3), e.g. a TileDB-SOMA store.
    """

    size: int
    hash: str = ""
    hash_type: str = ""
    is_dir: bool = False


@dataclass(frozen=True)
class FileEntry:
    """One file of a folder: its path relative to the folder, its size, and its hash when the
    listing reports one (S3 listings carry each object's ETag; local listings none)."""

    relpath: str
    size: int
    hash: str = ""
    hash_type: str = ""


#: what every message about a bad key says a key is
KEY_RULE = (
    "a key is a relative path inside the storage: segments separated by '/', none of them "
    "empty, '.' or '..', without backslashes or NUL bytes, e.g. 'cell-census/2025-01-30/h5ads/"
    "dataset.h5ad'"
)


def key_problem(key: str) -> str:
    """What is wrong with ``key`` as an artifact key, or ``""`` when it is a valid key.

    The one rule for keys (see :data:`KEY_RULE`): once joined to a storage root or to the
    cache folder, a key must stay inside it and name exactly one object (``a//b`` and ``a/./b``
    are other S3 objects than ``a/b`` but the same local path).
    """
    if not isinstance(key, str) or not key:
        return "it is empty"
    if "\x00" in key:
        return "it contains a NUL byte"
    if "\\" in key:
        return "it contains a backslash (use '/' between folders)"
    if key.startswith("/"):
        return "it is absolute (starts with '/')"
    segments = key.split("/")
    if ".." in segments:
        return "it has a '..' segment (it would point outside the storage)"
    if "." in segments:
        return "it has a '.' segment"
    if "" in segments:
        return "it has an empty segment ('//' or a trailing '/')"
    return ""


def check_key(key: str, root: str = "") -> str:
    """``key``, when it is a valid artifact key (see :func:`key_problem`).

    Args:
        key: the artifact key.
        root: the storage root, named in the error (``""`` when unknown).

    Raises:
        InvalidKeyError: the key would escape the storage root (or the cache) once joined to a
            path, or would name an object ambiguously.
    """
    problem = key_problem(key)
    if problem:
        where = f" in storage {root!r}" if root else ""
        raise InvalidKeyError(
            f"Invalid artifact key {key!r}{where}: {problem}; {KEY_RULE}. Fix the artifact's key."
        )
    return key


class Backend(ABC):
    """Access to the objects under one storage root: reads, and writes of whole files."""

    root: str

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where the object of ``key`` is (a local path or an ``s3://`` URL)."""

    def local_path(self, key: str) -> Path | None:
        """The object's own local path when the storage is local, else ``None``."""
        return None

    @abstractmethod
    def stat(self, key: str, *, with_hash: bool = False) -> ObjectInfo:
        """Size and hash of an object (or total size of a folder), without downloading it.

        Args:
            key: the artifact key.
            with_hash: compute the md5 of a local file (S3 always reports its ETag).

        Raises:
            ObjectNotFoundError: nothing at ``key``.
            StorageAccessDeniedError: the storage refused access.
        """

    @abstractmethod
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes of the object from offset ``start`` (fewer at its end)."""

    @abstractmethod
    def download(self, key: str, dest: Path, size: int | None = None) -> None:
        """Copy the object to the file ``dest`` (``size`` from a previous ``stat`` spares one
        request)."""

    @abstractmethod
    def list_files(self, key: str) -> list[FileEntry]:
        """The files of a folder/prefix object (empty when there are none)."""

    @abstractmethod
    def download_files(self, key: str, files: Sequence[FileEntry], dest: Path) -> None:
        """Copy the files of a folder/prefix into the folder ``dest`` (same relative paths)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A seekable, read-only binary file object over the object."""

    def multipart_part_size(self, key: str) -> int | None:
        """The size of the first upload part of a multipart object, when the storage says."""
        return None

    def put_file(self, key: str, source: Path) -> None:
        """Write the local file ``source`` as the object of ``key``, all or nothing: the object
        appears at its key only once complete (a failed or killed write leaves none there)."""
        raise NotImplementedError(f"{type(self).__name__} cannot write")

    def remove(self, key: str) -> None:
        """Delete the object of ``key`` (nothing there is not an error)."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    def tiledb_config(self) -> dict[str, str]:
        """TileDB configuration that lets TileDB-SOMA read this storage."""
        return {}

    @abstractmethod
    def cache_relpath(self, key: str) -> PurePosixPath:
        """Where a cached copy goes, relative to ``$CELLREGISTRY_HOME/cache``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"
