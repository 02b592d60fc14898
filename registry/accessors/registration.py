"""A lab's own data as an artifact's bytes: a file, an AnnData or a DataFrame is described (size,
hash, suffix, otype, cells), then written into a storage, or found to be inside one already.

Used by ``Artifact(data, key=...)`` and ``Artifact.save()``; nothing here touches the database.
Light to import (``Artifact(x)`` imports it for :func:`data_kind`): boto3, anndata and pyarrow
are imported where they are used.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from registry import storage_roots
from registry.accessors.hashing import upload_hash
from registry.errors import InvalidArtifactDataError

#: what each kind of file is (otype) by suffix; anything else is registered with no otype
OTYPES = {".h5ad": "AnnData", ".parquet": "DataFrame", ".csv": "DataFrame"}
#: where the bytes of a registered artifact go inside its storage when it has no key of its own
#: (and every version of a key: versions never overwrite one another)
OWN_PREFIX = ".cellregistry"


@dataclass
class StagedData:
    """The bytes of an artifact-to-be, as a local file, and what describes them."""

    path: Path
    temporary: bool  # written here from an AnnData/DataFrame: removed once placed
    suffix: str
    otype: str
    size: int
    hash: str
    hash_type: str
    n_observations: int | None

    def discard(self) -> None:
        """Remove the file if it was written here."""
        if self.temporary:
            self.path.unlink(missing_ok=True)


def staging_folder() -> Path:
    """``$CELLREGISTRY_HOME/cache/.staging``: AnnData and DataFrames are written here first."""
    from registry.accessors.cache import cache_root

    folder = cache_root() / ".staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: the in-memory objects registered, by (top-level module, class name)
DATA_CLASSES = {("anndata", "AnnData"): "AnnData", ("pandas", "DataFrame"): "DataFrame"}


def data_kind(value: Any) -> str | None:
    """What ``Artifact(value, ...)`` registers: ``"path"``, ``"AnnData"``, ``"DataFrame"``, or
    ``None`` for anything else (checked by type name: anndata and pandas are not imported)."""
    if isinstance(value, str | os.PathLike):
        return "path"
    kind = type(value)
    return DATA_CLASSES.get((kind.__module__.split(".")[0], kind.__name__))


def stage(data: Any) -> StagedData:
    """Describe ``data`` (a local file path, an AnnData, a pandas DataFrame) and hash its bytes.

    An AnnData is written as ``.h5ad`` and a DataFrame as ``.parquet`` into the staging folder.

    Raises:
        InvalidArtifactDataError: an S3 URL, a folder, a missing file, or another kind of object.
    """
    if data_kind(data) == "path":
        text = os.fspath(data)
        if storage_roots.is_s3(text):
            raise InvalidArtifactDataError(
                f"Cannot register {text!r} from here: an S3 object is registered by reference "
                "from a Storage record (ln.Storage(root='s3://bucket/prefix')) and its key; "
                "Artifact(...) takes a local file, an AnnData or a DataFrame."
            )
        path = Path(text).expanduser().resolve()
        if path.is_dir():
            raise InvalidArtifactDataError(
                f"Cannot register {path}: it is a folder. Register a file (.h5ad, .parquet, "
                ".csv, ...), an AnnData or a DataFrame."
            )
        if not path.is_file():
            raise InvalidArtifactDataError(f"Cannot register {path}: no such file.")
        return _described(path, temporary=False)
    kind = type(data).__name__
    if data_kind(data) == "AnnData":
        path = _staging_file(".h5ad")
        data.write_h5ad(path)
        return _described(path, temporary=True, n_observations=data.n_obs, otype="AnnData")
    if data_kind(data) == "DataFrame":
        path = _staging_file(".parquet")
        data.to_parquet(path)
        return _described(path, temporary=True, n_observations=len(data), otype="DataFrame")
    raise InvalidArtifactDataError(
        f"Cannot register a {type(data).__module__}.{kind}: Artifact(...) takes a local file "
        "path, an anndata.AnnData or a pandas.DataFrame."
    )


def _staging_file(suffix: str) -> Path:
    handle, name = tempfile.mkstemp(suffix=suffix, dir=staging_folder())
    os.close(handle)
    return Path(name)


def _described(
    path: Path, *, temporary: bool, n_observations: int | None = None, otype: str = ""
) -> StagedData:
    suffix = "".join(path.suffixes[-1:]).lower()
    otype = otype or OTYPES.get(suffix, "")
    if n_observations is None:
        n_observations = _rows_of(path, suffix)
    digest, hash_type = upload_hash(path)
    size = path.stat().st_size
    return StagedData(path, temporary, suffix, otype, size, digest, hash_type, n_observations)


def _rows_of(path: Path, suffix: str) -> int | None:
    """Cells of an ``.h5ad`` (from its header), rows of a ``.parquet`` (from its footer)."""
    if suffix == ".h5ad":
        from registry.accessors.h5ad_header import probe_h5ad

        folder = SimpleNamespace(root=str(path.parent), endpoint_url="", region="", anonymous=False)
        return probe_h5ad(folder, path.name).n_obs
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def key_inside(storage_root: str, path: Path) -> str | None:
    """The key of ``path`` inside the local storage ``storage_root``, if it is inside it."""
    if storage_roots.is_s3(storage_root):
        return None
    root = storage_roots.local_path(storage_root).resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    return relative.as_posix() if relative.parts else None


def place(storage: Any, key: str, staged: StagedData) -> None:
    """Write the staged bytes as ``key`` of ``storage`` (all or nothing)."""
    from registry.accessors.backends import backend_for  # boto3: on first write only

    backend_for(storage).put_file(key, staged.path)


def remove(storage: Any, key: str) -> None:
    """Delete the bytes of ``key`` in ``storage``."""
    from registry.accessors.backends import backend_for

    backend_for(storage).remove(key)
