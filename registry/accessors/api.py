"""``load()`` and ``open()`` of an artifact: pick the format, the backend, the reader.

The functions take any object with the fields of an Artifact record (``key``, ``storage``,
``suffix``, ``otype``, ``size``, ``hash``, ``hash_type``); nothing here writes to the database.
``cache()`` is :func:`registry.accessors.cache.cache_artifact` (it needs neither anndata nor
tiledbsoma, so caching stays quick to import).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import anndata as ad
import h5py
import pandas as pd
import tiledbsoma

from registry.accessors.backends import backend_for
from registry.accessors.base import ArtifactLike, object_key
from registry.accessors.cache import cache_artifact
from registry.accessors.h5ad import AnnDataAccessor
from registry.accessors.local import LocalBackend
from registry.accessors.remote_file import RemoteFile
from registry.accessors.rows import LocalRangeReader
from registry.errors import (
    CorruptFileError,
    ObjectNotFoundError,
    StorageAccessDeniedError,
    StorageError,
    UnsupportedAccessError,
)

#: exceptions h5py and anndata raise on truncated or damaged files
_READ_ERRORS = (OSError, KeyError, ValueError)
_TABLE_READERS = {
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
    ".tsv": lambda path, **kw: pd.read_csv(path, **{"sep": "\t", **kw}),
}


def artifact_format(artifact: ArtifactLike) -> str:
    """``tiledbsoma`` for SOMA stores, else the file suffix (``.h5ad``, ``.parquet``, ...)."""
    suffix = (artifact.suffix or PurePosixPath(artifact.key).suffix).lower()
    if artifact.otype == "tiledbsoma" or suffix == ".tiledbsoma":
        return "tiledbsoma"
    if not suffix and artifact.otype == "AnnData":
        return ".h5ad"
    return suffix


def _where(artifact: ArtifactLike) -> str:
    return f"artifact key {artifact.key!r} in storage {artifact.storage.root!r}"


def load(artifact: ArtifactLike, **kwargs: Any) -> Any:
    """The artifact in memory: ``AnnData`` for ``.h5ad``, a DataFrame for ``.parquet``/``.csv``.

    Args:
        artifact: the artifact.
        **kwargs: passed to the reader (``anndata.read_h5ad``, ``pandas.read_parquet``, ...).

    Raises:
        UnsupportedAccessError: a SOMA store (use ``open()``) or a format without a reader.
        CorruptFileError: the file cannot be read as its format.
    """
    kind = artifact_format(artifact)
    if kind == "tiledbsoma":
        raise UnsupportedAccessError(
            f"Cannot load() {_where(artifact)}: it is a tiledbsoma store, too big to load whole. "
            "Use artifact.open() and query it, e.g. "
            "store['census_data']['homo_sapiens'].obs.read(value_filter=...)."
        )
    reader = ad.read_h5ad if kind == ".h5ad" else _TABLE_READERS.get(kind)
    if reader is None:
        raise UnsupportedAccessError(
            f"Cannot load() {_where(artifact)}: no reader for {kind or 'files without suffix'!r} "
            "(supported: .h5ad, .parquet, .csv, .tsv). Use artifact.cache() to get the local "
            "path and read it yourself."
        )
    path = cache_artifact(artifact)
    try:
        return reader(path, **kwargs)
    except _READ_ERRORS as exc:
        raise _corrupt(artifact, path, exc, kind) from exc


def _corrupt(artifact: ArtifactLike, path: Path | str, exc: Exception, kind: str) -> Exception:
    backend = backend_for(artifact.storage)
    if isinstance(backend, LocalBackend):
        advice = "the file itself is damaged: restore it, or re-register the artifact."
    elif isinstance(path, Path):
        advice = (
            f"check the cached copy ({path}) with artifact.cache(verify=True), which hashes it "
            "again and replaces it if it was damaged; if load() still fails, the object itself "
            "is damaged: restore it, or re-register the artifact."
        )
    else:
        advice = "the object itself is damaged: restore it, or re-register the artifact."
    return CorruptFileError(
        f"Cannot read {_where(artifact)} as {kind} from {path}: the file is truncated or damaged "
        f"({type(exc).__name__}: {exc}). What to do: {advice}"
    )


def open_artifact(artifact: ArtifactLike) -> Any:
    """Stream the artifact without downloading it.

    Returns:
        an :class:`AnnDataAccessor` for ``.h5ad``; the opened TileDB-SOMA object (a
        ``Collection`` or ``Experiment``, usable as a context manager) for ``tiledbsoma``.

    Raises:
        UnsupportedAccessError: other formats (use ``load()`` or ``cache()``).
        CorruptFileError: an h5ad that cannot be opened.
    """
    kind = artifact_format(artifact)
    backend = backend_for(artifact.storage)
    if kind == "tiledbsoma":
        return open_soma_store(artifact)
    if kind != ".h5ad":
        raise UnsupportedAccessError(
            f"Cannot open() {_where(artifact)}: open() streams .h5ad files and tiledbsoma "
            f"stores, not {kind or 'files without suffix'!r}. Use artifact.load() or "
            "artifact.cache()."
        )
    local = backend.local_path(object_key(artifact))
    if local is not None:
        backend.stat(object_key(artifact))  # a clear error when the file is missing
        source: Path | RemoteFile = local
        reader: Any = LocalRangeReader(local)
        remote = None
    else:
        remote = backend.open(object_key(artifact))
        source = reader = remote
    try:
        file = h5py.File(source, "r")
        if "obs" not in file or "var" not in file:
            file.close()
            raise KeyError("no 'obs' and 'var' groups: not an AnnData file")
    except _READ_ERRORS as exc:
        if remote is not None:
            remote.close()
        raise _corrupt(artifact, backend.uri(object_key(artifact)), exc, ".h5ad") from exc
    return AnnDataAccessor(
        file, name=backend.uri(object_key(artifact)), reader=reader, remote=remote
    )


def open_soma_store(
    artifact: ArtifactLike,
    *,
    tiledb_config: dict[str, Any] | None = None,
    context: tiledbsoma.SOMATileDBContext | None = None,
) -> Any:
    """Open a TileDB-SOMA store artifact with its storage's settings (S3 endpoint, region,
    signing, credentials).

    Args:
        tiledb_config: TileDB settings that override the storage's.
        context: a context to start from; the storage's settings fill in what it does not set.

    Raises:
        ObjectNotFoundError: no store there. StorageAccessDeniedError, StorageError: it cannot be
            read.
    """
    backend = backend_for(artifact.storage)
    uri = backend.uri(object_key(artifact))
    if backend.local_path(object_key(artifact)) is not None:
        backend.stat(object_key(artifact))  # a clear error when the folder is missing
    config = {**backend.tiledb_config(), **(tiledb_config or {})}
    if context is None:
        context = tiledbsoma.SOMATileDBContext(tiledb_config=config)
    else:
        given = context.tiledb_config
        context = context.replace(tiledb_config={k: v for k, v in config.items() if k not in given})
    try:
        return tiledbsoma.open(uri, mode="r", context=context)
    except tiledbsoma.DoesNotExistError as exc:
        raise ObjectNotFoundError(
            f"Cannot open {_where(artifact)}: no TileDB-SOMA object at {uri} ({exc}). Check the "
            "artifact's key and storage root; if the store was moved or deleted, restore it or "
            "delete the artifact record."
        ) from exc
    except tiledbsoma.SOMAError as exc:
        if "403" in str(exc) or "Access Denied" in str(exc):
            raise StorageAccessDeniedError(
                f"Access denied to {_where(artifact)} ({uri}): {exc}. Check the AWS credentials, "
                "or set anonymous=True on the Storage record for a public bucket."
            ) from exc
        raise StorageError(
            f"Cannot open {_where(artifact)} ({uri}) with TileDB-SOMA: {exc}"
        ) from exc
