"""A seekable read-only file over ranged reads (e.g. S3 GETs with a ``Range`` header).

h5py reads an HDF5 file through it without downloading the file: small reads (HDF5 metadata,
short arrays) go through an LRU cache of fixed-size blocks, large reads are fetched exactly.
``read_ranges`` fetches many byte ranges at once, merging ranges separated by small holes and
running the requests in parallel. ``bytes_transferred`` counts the bytes actually received.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

#: block of the small-read cache (HDF5 metadata and short arrays sit together in h5ad files)
DEFAULT_BLOCK_SIZE = 64 * 1024
#: memory bound of the block cache
DEFAULT_CACHE_SIZE = 64 * 1024 * 1024
#: Apache Arrow's defaults for coalescing reads of remote files (``pyarrow.CacheOptions``):
#: ranges closer than HOLE_SIZE are read in one request, up to RANGE_SIZE_LIMIT bytes.
HOLE_SIZE = 8 * 1024
RANGE_SIZE_LIMIT = 32 * 1024 * 1024

Range = tuple[int, int]  # (offset, length)


def coalesce(
    ranges: Sequence[Range], hole: int = HOLE_SIZE, limit: int = RANGE_SIZE_LIMIT
) -> list[Range]:
    """Merge byte ranges (sorted by offset) whose gaps are at most ``hole`` bytes.

    Args:
        ranges: ``(offset, length)`` pairs, in any order, possibly overlapping.
        hole: the largest gap read (and thrown away) to save a request.
        limit: merged ranges stop growing past this many bytes (they are read in parallel).

    Returns:
        Merged ``(offset, length)`` pairs sorted by offset, covering every input range.
    """
    merged: list[list[int]] = []
    for offset, length in sorted(r for r in ranges if r[1] > 0):
        end = offset + length
        if merged:
            last = merged[-1]
            if offset - last[1] <= hole and max(end, last[1]) - last[0] <= limit:
                last[1] = max(last[1], end)
                continue
        merged.append([offset, end])
    return [(start, end - start) for start, end in merged]


def slice_ranges(ranges: Sequence[Range], merged: Sequence[Range], blobs: Sequence[bytes]) -> list:
    """Cut the bytes of each requested range out of the merged reads that cover it."""
    starts = [offset for offset, _ in merged]
    out = []
    for offset, length in ranges:
        index = bisect.bisect_right(starts, offset) - 1
        rel = offset - starts[index]
        out.append(blobs[index][rel : rel + length])
    return out


class RemoteFile(io.RawIOBase):
    """A read-only, seekable binary file whose bytes come from ``fetch(offset, length)``.

    Args:
        fetch: returns ``length`` bytes from ``offset`` (one ranged request).
        size: the object's size in bytes.
        name: shown in errors and ``repr``, e.g. the ``s3://`` URL.
        block_size: granularity of the cache for small reads.
        cache_size: bytes of blocks kept (least recently used are dropped).
        max_workers: parallel requests of ``read_ranges``.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        name: str,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_workers: int = 16,
    ) -> None:
        super().__init__()
        self._fetch_raw = fetch
        self.size = size
        self.name = name
        self.block_size = block_size
        self.cache_size = cache_size
        self.max_workers = max_workers
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._counter_lock = threading.Lock()
        self.bytes_transferred = 0
        self.requests = 0
        self._pool: ThreadPoolExecutor | None = None

    # --- accounting -------------------------------------------------------------------------

    def _fetch(self, offset: int, length: int) -> bytes:
        data = self._fetch_raw(offset, length)
        with self._counter_lock:
            self.bytes_transferred += len(data)
            self.requests += 1
        return data

    # --- io.RawIOBase -----------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.name}")
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self.pread(self._pos, end - self._pos)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    # --- reading ----------------------------------------------------------------------------

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end), without moving the position."""
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        if length >= 4 * self.block_size:
            return self._fetch(offset, length)  # large read: exact range, not cached
        first, last = offset // self.block_size, (offset + length - 1) // self.block_size
        self._load_blocks(first, last)
        data = b"".join(self._blocks[i] for i in range(first, last + 1))
        rel = offset - first * self.block_size
        return data[rel : rel + length]

    def _load_blocks(self, first: int, last: int) -> None:
        """Make blocks first..last resident, fetching each run of missing blocks in one request."""
        missing = [i for i in range(first, last + 1) if i not in self._blocks]
        for i in range(first, last + 1):
            if i in self._blocks:
                self._blocks.move_to_end(i)
        runs: list[list[int]] = []
        for index in missing:
            if runs and index == runs[-1][1] + 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
        for run_first, run_last in runs:
            self._store_run(run_first, run_last)
        while len(self._blocks) * self.block_size > self.cache_size and len(self._blocks) > (
            last - first + 1
        ):
            self._blocks.popitem(last=False)

    def _store_run(self, first: int, last: int) -> None:
        start = first * self.block_size
        data = self._fetch(start, min(self.size, (last + 1) * self.block_size) - start)
        for i in range(first, last + 1):
            rel = (i - first) * self.block_size
            self._blocks[i] = data[rel : rel + self.block_size]

    def read_ranges(self, ranges: Sequence[Range]) -> list[bytes]:
        """The bytes of each ``(offset, length)`` range, read with few parallel requests.

        Ranges closer than ``HOLE_SIZE`` are merged (see :func:`coalesce`). The block cache is
        bypassed: these are bulk reads of array data chosen by the caller.
        """
        if not ranges:
            return []
        merged = coalesce(ranges)
        if len(merged) == 1:
            blobs = [self._fetch(*merged[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="ranges")
            blobs = list(self._pool.map(lambda r: self._fetch(*r), merged))
        return slice_ranges(ranges, merged, blobs)

    def close(self) -> None:
        """Close the file and stop its reader threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._blocks.clear()
        super().close()

    def __repr__(self) -> str:
        return f"RemoteFile({self.name!r}, size={self.size})"
