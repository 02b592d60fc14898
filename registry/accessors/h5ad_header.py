"""Check an ``.h5ad`` file without reading it: its HDF5 signature and the length of its obs index.

:func:`probe_h5ad` reads, by small ranged reads (S3 GETs with a ``Range`` header, ``pread`` on a
local file, both through :class:`~registry.accessors.remote_file.RemoteFile`), only the HDF5
metadata on the way from the superblock to the obs index: the superblock, the root group, the
``obs`` group with its attributes and the object header of the dataset named by
``obs.attrs["_index"]``, whose dataspace gives the number of cells. No data of any dataset is
read. HDF5 metadata is small and scattered (the ``obs`` group of a file written by anndata sits
after ``X``), so the reads go through blocks of :data:`PROBE_BLOCK_SIZE` bytes: about five
requests and a few dozen KiB whatever the file's size (``bench/storage_bench.py`` measures it).

A truncated file is caught by HDF5 itself: the superblock records the file's end, which is
compared with the object's size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import h5py

from registry.accessors.backends import backend_for
from registry.accessors.base import Backend, StorageLike
from registry.accessors.remote_file import RemoteFile
from registry.errors import CorruptFileError, NotHDF5Error, ObsCountMismatchError, StorageError

#: the first 8 bytes of every HDF5 file (without a user block, as anndata writes them)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: block of the probe's reads: HDF5 metadata reads are a few hundred bytes to a few KiB
PROBE_BLOCK_SIZE = 8 * 1024
#: exceptions h5py raises on truncated or damaged files, or missing groups and attributes
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError)


@dataclass(frozen=True)
class H5adHeader:
    """What :func:`probe_h5ad` found, and what it cost.

    Attributes:
        n_obs: length of the obs index (cells).
        size: the file's size in bytes.
        bytes_read: bytes received from the storage (or read from the local file).
        requests: ranged reads (S3 GETs, local ``pread`` calls); the size, when the caller did
            not pass it, costs one more request (an S3 HEAD, a local ``stat``).
    """

    n_obs: int
    size: int
    bytes_read: int
    requests: int

    @property
    def fraction_read(self) -> float:
        """``bytes_read`` as a fraction of the file's size."""
        return self.bytes_read / self.size if self.size else 0.0


def probe_h5ad(
    storage: StorageLike,
    key: str,
    *,
    size: int | None = None,
    expected_n_obs: int | None = None,
    expected_from: str = "the release manifest",
    block_size: int = PROBE_BLOCK_SIZE,
) -> H5adHeader:
    """Check that the object ``key`` of ``storage`` is an h5ad file and count its cells, reading
    only the HDF5 signature and the metadata that leads to the obs index.

    Args:
        storage: a Storage record (or any object with its fields; nothing is queried).
        key: the artifact key of the ``.h5ad`` file.
        size: the object's size when already known (e.g. from a listing): spares a HEAD.
        expected_n_obs: the cell count the file must have (e.g. the manifest's
            ``dataset_total_cell_count``); ``None`` to only read it.
        expected_from: where ``expected_n_obs`` comes from, named in the error.
        block_size: granularity of the reads (see :data:`PROBE_BLOCK_SIZE`).

    Raises:
        NotHDF5Error: the first 8 bytes are not the HDF5 signature (or the file is empty).
        CorruptFileError: a folder, a truncated or damaged HDF5 file, or an HDF5 file that is
            not an AnnData file (no ``obs`` group with an ``_index`` attribute).
        ObsCountMismatchError: the obs index length differs from ``expected_n_obs``.
        ObjectNotFoundError, StorageAccessDeniedError: from the storage.
    """
    backend = backend_for(storage)
    if size is None:
        info = backend.stat(key)
        if info.is_dir:
            raise CorruptFileError(
                f"{_where(backend, key)} is a folder, not an .h5ad file. Check the key; a "
                "TileDB-SOMA store is registered with otype='tiledbsoma'."
            )
        size = info.size
    remote = RemoteFile(
        functools.partial(backend.read_range, key),
        size,
        backend.uri(key),
        block_size=block_size,
        max_workers=1,
    )
    with remote:
        _check_signature(backend, key, remote.pread(0, len(HDF5_SIGNATURE)))
        n_obs = _obs_length(backend, key, remote)
        header = H5adHeader(n_obs, size, remote.bytes_transferred, remote.requests)
    if expected_n_obs is not None and n_obs != expected_n_obs:
        raise ObsCountMismatchError(
            f"{_where(backend, key)} has {n_obs} cells in its obs index but {expected_from} "
            f"says {expected_n_obs}: the file and {expected_from} disagree. Publish the file "
            f"that goes with {expected_from} (or fix it), then curate again."
        )
    return header


def _where(backend: Backend, key: str) -> str:
    return f"Artifact key {key!r} in storage {backend.root!r} ({backend.uri(key)})"


def _check_signature(backend: Backend, key: str, first: bytes) -> None:
    if first == HDF5_SIGNATURE:
        return
    found = f"starts with {first!r} (hex {first.hex(' ')})" if first else "is empty (0 bytes)"
    raise NotHDF5Error(
        f"{_where(backend, key)} is not an HDF5 file: it {found}, while every .h5ad starts "
        f"with {HDF5_SIGNATURE!r}. Check that the key names an .h5ad file; re-write it with "
        "anndata (adata.write_h5ad) or leave the dataset out."
    )


def _obs_length(backend: Backend, key: str, remote: RemoteFile) -> int:
    """The obs index length: the shape of ``obs[obs.attrs["_index"]]`` (anndata >= 0.7), or of
    the ``obs`` record array (older files), from the dataset's header alone."""
    try:
        with h5py.File(remote, "r") as file:
            obs = file.get("obs")
            if isinstance(obs, h5py.Dataset):
                return int(obs.shape[0])
            if not isinstance(obs, h5py.Group) or "_index" not in obs.attrs:
                raise CorruptFileError(
                    f"{_where(backend, key)} is an HDF5 file but not an AnnData file: it has no "
                    "'obs' group with an '_index' attribute. Check that the key names an .h5ad "
                    "file written by anndata; re-write it with adata.write_h5ad."
                )
            index = obs.attrs["_index"]
            return int(obs[index.decode() if isinstance(index, bytes) else index].shape[0])
    except StorageError:  # the storage failed (404, 403, unreachable): not the file's fault
        raise
    except _READ_ERRORS as exc:
        raise CorruptFileError(
            f"{_where(backend, key)} cannot be read as an .h5ad: the file is truncated or "
            f"damaged ({type(exc).__name__}: {_one_line(exc)}). Restore the file (upload it "
            "again) or leave the dataset out."
        ) from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
