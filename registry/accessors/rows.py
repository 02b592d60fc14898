"""Read selected rows of h5ad elements, fetching only the bytes of those rows.

For a CSR matrix the ``indptr`` is read whole; then, for each run of consecutive selected rows,
only its slice of ``data`` and ``indices``. When a dataset is stored without filters
(contiguous, or chunked along rows only, as anndata writes them) the byte offsets of those
slices are computed from the HDF5 layout and fetched in one batch of coalesced, parallel range
reads; otherwise (compressed chunks, other layouts) h5py reads each run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem

from registry.accessors.remote_file import Range, coalesce, slice_ranges


class RangeReader(Protocol):
    """Reads many byte ranges of one file at once."""

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]: ...


class LocalRangeReader:
    """Byte ranges of a local file, with ``pread`` (coalesced like remote reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        merged = coalesce(ranges)
        with self.path.open("rb") as fh:
            blobs = [os.pread(fh.fileno(), length, offset) for offset, length in merged]
        return slice_ranges(ranges, merged, blobs)


def row_runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, stops)`` of the runs of consecutive values in sorted unique ``rows``."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.concatenate([[0], breaks])]
    stops = rows[np.concatenate([breaks - 1, [len(rows) - 1]])] + 1
    return starts.astype(np.int64), stops.astype(np.int64)


def _chunk_offsets(dataset: h5py.Dataset) -> dict[int, int] | None:
    """File offset of each allocated chunk, by chunk number along the first axis."""
    rows_per_chunk = dataset.chunks[0]
    offsets: dict[int, int] = {}

    def visit(info: Any) -> None:
        offsets[info.chunk_offset[0] // rows_per_chunk] = info.byte_offset

    try:
        dataset.id.chunk_iter(visit)
    except AttributeError:  # HDF5 < 1.14: one lookup per chunk
        for i in range(dataset.id.get_num_chunks()):
            info = dataset.id.get_chunk_info(i)
            offsets[info.chunk_offset[0] // rows_per_chunk] = info.byte_offset
    return offsets


def byte_ranges(dataset: h5py.Dataset, starts: np.ndarray, stops: np.ndarray) -> list[Range] | None:
    """The file byte ranges holding ``dataset[a:b]`` for each run, or ``None`` when the layout
    does not allow reading raw bytes (filters, compact/virtual layouts, non-numeric dtype,
    chunks that split rows, unallocated chunks)."""
    plist = dataset.id.get_create_plist()
    dtype = dataset.dtype
    if plist.get_nfilters() or dtype.kind not in "biufc" or dtype.hasobject:
        return None
    row_bytes = dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64))
    layout = plist.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        base = dataset.id.get_offset()
        if base is None:
            return None
        return [
            (base + a * row_bytes, (b - a) * row_bytes)
            for a, b in zip(starts, stops, strict=True)
            if b > a
        ]
    if layout != h5py.h5d.CHUNKED or tuple(dataset.chunks[1:]) != tuple(dataset.shape[1:]):
        return None
    rows_per_chunk = dataset.chunks[0]
    offsets = _chunk_offsets(dataset)
    ranges = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        while a < b:
            chunk = a // rows_per_chunk
            end = min(b, (chunk + 1) * rows_per_chunk)
            base = offsets.get(chunk) if offsets is not None else None
            if base is None:
                return None
            ranges.append((base + (a - chunk * rows_per_chunk) * row_bytes, (end - a) * row_bytes))
            a = end
    return ranges


def read_runs(
    dataset: h5py.Dataset, starts: np.ndarray, stops: np.ndarray, reader: RangeReader
) -> np.ndarray:
    """``np.concatenate([dataset[a:b] for a, b in runs])``, reading only those bytes."""
    tail = dataset.shape[1:]
    if len(starts) == 0:
        return np.empty((0, *tail), dtype=dataset.dtype)
    ranges = byte_ranges(dataset, starts, stops)
    if ranges is None:
        return np.concatenate([dataset[a:b] for a, b in zip(starts, stops, strict=True)])
    data = bytearray().join(reader.read_ranges(ranges))  # writable, unlike bytes
    array = np.frombuffer(data, dtype=dataset.dtype).reshape(-1, *tail)
    return array.astype(dataset.dtype.newbyteorder("="), copy=False)


def read_csr_rows(group: h5py.Group, rows: np.ndarray, reader: RangeReader) -> sp.csr_matrix:
    """Rows ``rows`` (sorted, unique) of a CSR matrix stored by anndata."""
    n_cols = int(group.attrs["shape"][1])
    indptr = group["indptr"][:].astype(np.int64)
    starts, stops = row_runs(rows)
    first, last = indptr[starts], indptr[stops]
    data = read_runs(group["data"], first, last, reader)
    indices = read_runs(group["indices"], first, last, reader)
    counts = indptr[rows + 1] - indptr[rows]
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return sp.csr_matrix((data, indices, new_indptr), shape=(len(rows), n_cols))


def take_rows(value: Any, rows: np.ndarray) -> Any:
    """``value[rows]`` for the element types anndata reads (DataFrames by position)."""
    if isinstance(value, pd.DataFrame):
        return value.iloc[rows]
    if sp.issparse(value):
        return value.tocsr()[rows] if isinstance(value, sp.coo_matrix) else value[rows]
    return value[rows]


def read_rows(element: h5py.Dataset | h5py.Group, rows: np.ndarray, reader: RangeReader) -> Any:
    """Rows ``rows`` (sorted, unique) of an element whose first axis is the observations.

    Dense arrays and CSR matrices read only the selected rows; other encodings (CSC matrices,
    data frames, awkward arrays...) are read whole and then subset.
    """
    if isinstance(element, h5py.Dataset) and element.ndim >= 1:
        starts, stops = row_runs(rows)
        return read_runs(element, starts, stops, reader)
    if element.attrs.get("encoding-type") == "csr_matrix":
        return read_csr_rows(element, rows, reader)
    return take_rows(read_elem(element), rows)
