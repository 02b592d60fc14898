"""``AnnDataAccessor``: an h5ad file opened for streaming, sliced without downloading it.

``obs`` and ``var`` are read once, on first use, with anndata's element reader. Indexing
(``accessor[mask]``, ``accessor[rows, cols]``) only records positions; ``to_memory()`` then reads
the selected rows of X, layers, obsm, obsp and raw (see :mod:`registry.accessors.rows`) plus
var, varm, varp and uns, and returns an ``AnnData``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem

from registry.accessors.remote_file import RemoteFile
from registry.accessors.rows import RangeReader, read_rows, take_rows

Positions = np.ndarray


def positions(index: Any, n: int, names: Any) -> Positions:
    """Integer positions selected by ``index`` along an axis of length ``n``.

    Args:
        index: a slice, an int, a boolean mask (array or pandas Series), integer positions, or
            names (str or list of str, looked up in ``names()``).
        n: length of the axis.
        names: a callable returning the axis' names (only called for name lookups).
    """
    if isinstance(index, slice):
        return np.arange(n)[index]
    if isinstance(index, int | np.integer):
        position = int(index) + (n if index < 0 else 0)
        if not 0 <= position < n:
            raise IndexError(f"index {index} is out of bounds for axis of length {n}")
        return np.array([position])
    if isinstance(index, str):
        index = [index]
    if isinstance(index, pd.Series | pd.Index) and pd.api.types.is_bool_dtype(index.dtype):
        index = index.fillna(False).to_numpy(dtype=bool)
    array = np.asarray(index)
    if array.dtype == bool:
        if array.shape != (n,):
            raise IndexError(f"boolean index of length {len(array)} for an axis of length {n}")
        return np.flatnonzero(array)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64).ravel()
        array = np.where(array < 0, array + n, array)
        if array.min() < 0 or array.max() >= n:
            raise IndexError(f"integer index out of bounds for axis of length {n}")
        return array
    if array.dtype.kind in "OUS":
        found = names().get_indexer(array.ravel())
        if (found < 0).any():
            missing = list(array.ravel()[found < 0][:5])
            raise KeyError(f"names not found: {missing}")
        return found.astype(np.int64)
    raise TypeError(f"cannot index an AnnDataAccessor with {type(index).__name__}")


def _split(index: Any) -> tuple[Any, Any]:
    if isinstance(index, tuple):
        if len(index) != 2:
            raise IndexError("index with (rows) or (rows, columns)")
        return index
    return index, slice(None)


def _axis_length(group: h5py.Group) -> int:
    return int(group[group.attrs["_index"]].shape[0])


def _drop_unused_categories(frame: pd.DataFrame, uns: dict) -> pd.DataFrame:
    """Like ``adata[mask].copy()``: categories absent from the subset are dropped (and their
    ``<column>_colors`` in ``uns``)."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            kept = values.cat.remove_unused_categories()
            colors = uns.get(f"{column}_colors")
            if colors is not None and len(colors) == len(values.cat.categories):
                keep = values.cat.categories.isin(kept.cat.categories)
                uns[f"{column}_colors"] = np.asarray(colors)[keep]
            frame[column] = kept
    return frame


def _keys(file: h5py.File, name: str) -> list[str]:
    return list(file[name].keys()) if name in file else []


class AnnDataAccessor:
    """An h5ad file opened for reading slices (local path or streamed from S3).

    Args:
        file: the open h5py file.
        name: shown in ``repr`` (the file's path or URL).
        reader: byte-range reader of the same file (bulk reads of selected rows).
        remote: the remote file object under ``file``, if streamed (its byte counter).
    """

    def __init__(
        self,
        file: h5py.File,
        *,
        name: str,
        reader: RangeReader,
        remote: RemoteFile | None = None,
    ) -> None:
        self.file = file
        self.name = name
        self._reader = reader
        self._remote = remote
        self._obs: pd.DataFrame | None = None
        self._var: pd.DataFrame | None = None

    # --- annotations ------------------------------------------------------------------------

    @property
    def obs(self) -> pd.DataFrame:
        """Observation annotations (read once, categoricals as ``pd.Categorical``)."""
        if self._obs is None:
            self._obs = read_elem(self.file["obs"])
        return self._obs

    @property
    def var(self) -> pd.DataFrame:
        """Variable annotations (read once)."""
        if self._var is None:
            self._var = read_elem(self.file["var"])
        return self._var

    @property
    def obs_names(self) -> pd.Index:
        """Observation names (read from the index alone while ``obs`` is not loaded)."""
        if self._obs is not None:
            return self._obs.index
        group = self.file["obs"]
        return pd.Index(read_elem(group[group.attrs["_index"]]))

    @property
    def var_names(self) -> pd.Index:
        """Variable names."""
        if self._var is not None:
            return self._var.index
        group = self.file["var"]
        return pd.Index(read_elem(group[group.attrs["_index"]]))

    @property
    def uns(self) -> dict:
        """Unstructured annotations."""
        return read_elem(self.file["uns"]) if "uns" in self.file else {}

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_obs, n_vars)``, from the index lengths (no data read)."""
        return _axis_length(self.file["obs"]), _axis_length(self.file["var"])

    @property
    def n_obs(self) -> int:
        """Number of observations (cells)."""
        return self.shape[0]

    @property
    def n_vars(self) -> int:
        """Number of variables (genes)."""
        return self.shape[1]

    def __len__(self) -> int:
        return self.n_obs

    @property
    def bytes_transferred(self) -> int | None:
        """Bytes received from the storage so far (``None`` for a local file)."""
        return self._remote.bytes_transferred if self._remote is not None else None

    # --- slicing ----------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> AnnDataAccessorSubset:
        rows, cols = _split(index)
        n_obs, n_vars = self.shape
        row_positions = positions(rows, n_obs, lambda: self.obs_names)
        col_positions = (
            None
            if isinstance(cols, slice) and cols == slice(None)
            else positions(cols, n_vars, lambda: self.var_names)
        )
        return AnnDataAccessorSubset(self, row_positions, col_positions)

    def to_memory(self) -> ad.AnnData:
        """The whole file as an in-memory ``AnnData``."""
        return self.read_subset(np.arange(self.n_obs), None)

    def read_subset(self, rows: Positions, cols: Positions | None) -> ad.AnnData:
        """An ``AnnData`` of the given rows (any order) and columns, reading only those rows."""
        unique, inverse = np.unique(rows, return_inverse=True)
        in_order = len(unique) == len(rows) and bool(np.all(unique == rows))

        def of_rows(element: Any) -> Any:
            value = read_rows(element, unique, self._reader)
            return value if in_order else take_rows(value, inverse)

        def of_cols(value: Any) -> Any:
            return value if cols is None else value[:, cols]

        file = self.file
        uns = self.uns
        obs = _drop_unused_categories(self.obs.iloc[rows], uns)
        var = self.var if cols is None else _drop_unused_categories(self.var.iloc[cols], uns)
        obsp = {}
        for key in _keys(file, "obsp"):
            value = read_rows(file["obsp"][key], unique, self._reader)[:, unique]
            obsp[key] = value if in_order else value[inverse][:, inverse]
        varm = {k: read_elem(file["varm"][k]) for k in _keys(file, "varm")}
        varp = {k: read_elem(file["varp"][k]) for k in _keys(file, "varp")}
        raw = None
        if "raw" in file:
            raw = {"var": read_elem(file["raw"]["var"])}
            if "X" in file["raw"]:
                raw["X"] = of_rows(file["raw"]["X"])
            if "varm" in file["raw"]:
                raw["varm"] = read_elem(file["raw"]["varm"])
        return ad.AnnData(
            X=of_cols(of_rows(file["X"])) if "X" in file else None,
            obs=obs,
            var=var.copy(),
            uns=uns,
            obsm={k: of_rows(file["obsm"][k]) for k in _keys(file, "obsm")},
            varm={k: v if cols is None else take_rows(v, cols) for k, v in varm.items()},
            layers={k: of_cols(of_rows(file["layers"][k])) for k in _keys(file, "layers")},
            obsp=obsp,
            varp={k: v if cols is None else v[cols][:, cols] for k, v in varp.items()},
            raw=raw,
            shape=None if "X" in file else (len(rows), var.shape[0]),
        )

    # --- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (and the connection to the storage's object)."""
        if self.file.id.valid:
            self.file.close()
        if self._remote is not None:
            self._remote.close()

    def __enter__(self) -> AnnDataAccessor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if not self.file.id.valid:
            return f"AnnDataAccessor object (closed) for {self.name}"
        n_obs, n_vars = self.shape
        lines = [
            f"AnnDataAccessor object with n_obs × n_vars = {n_obs} × {n_vars}",
            f"  constructed for the AnnData object {self.name}",
        ]
        for name in ("obs", "var"):
            columns = list(self.file[name].attrs.get("column-order", []))
            lines.append(f"    {name}: {', '.join(repr(str(c)) for c in columns)}")
        if "X" in self.file:
            encoding = self.file["X"].attrs.get("encoding-type", "array")
            lines.append(f"    X: {encoding}")
        for name in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            keys = _keys(self.file, name)
            if keys:
                lines.append(f"    {name}: {', '.join(repr(k) for k in keys)}")
        if "raw" in self.file:
            lines.append("    raw: X, var")
        return "\n".join(lines)


class AnnDataAccessorSubset:
    """A selection of rows (and columns) of an :class:`AnnDataAccessor`; nothing is read until
    ``to_memory()`` (``obs`` is the parent's obs, subset)."""

    def __init__(self, accessor: AnnDataAccessor, rows: Positions, cols: Positions | None) -> None:
        self._accessor = accessor
        self._rows = rows
        self._cols = cols

    @property
    def obs(self) -> pd.DataFrame:
        """Annotations of the selected observations."""
        return self._accessor.obs.iloc[self._rows]

    @property
    def var(self) -> pd.DataFrame:
        """Annotations of the selected variables."""
        var = self._accessor.var
        return var if self._cols is None else var.iloc[self._cols]

    @property
    def obs_names(self) -> pd.Index:
        """Names of the selected observations."""
        return self._accessor.obs_names[self._rows]

    @property
    def var_names(self) -> pd.Index:
        """Names of the selected variables."""
        names = self._accessor.var_names
        return names if self._cols is None else names[self._cols]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_obs, n_vars)`` of the selection."""
        n_vars = self._accessor.n_vars if self._cols is None else len(self._cols)
        return len(self._rows), n_vars

    @property
    def n_obs(self) -> int:
        """Number of selected observations."""
        return len(self._rows)

    @property
    def n_vars(self) -> int:
        """Number of selected variables."""
        return self.shape[1]

    def __len__(self) -> int:
        return self.n_obs

    def __getitem__(self, index: Any) -> AnnDataAccessorSubset:
        rows, cols = _split(index)
        row_positions = self._rows[positions(rows, self.n_obs, lambda: self.obs_names)]
        if isinstance(cols, slice) and cols == slice(None):
            col_positions = self._cols
        else:
            selected = positions(cols, self.n_vars, lambda: self.var_names)
            col_positions = selected if self._cols is None else self._cols[selected]
        return AnnDataAccessorSubset(self._accessor, row_positions, col_positions)

    def to_memory(self) -> ad.AnnData:
        """The selection as an in-memory ``AnnData`` (reads only the selected rows of X)."""
        return self._accessor.read_subset(self._rows, self._cols)

    def __repr__(self) -> str:
        n_obs, n_vars = self.shape
        return (
            f"AnnDataAccessorSubset object with n_obs × n_vars = {n_obs} × {n_vars}\n"
            f"  constructed for the AnnData object {self._accessor.name}"
        )
