"""The native read path: chunks of virtual arrays straight into NumPy, without zarr.

For a requested region of a :class:`~virtualizarr.manifests.ManifestArray`,
:class:`NativeArray` finds the intersecting chunks in the manifest (NumPy), reads their
byte ranges -- grouped per file, sorted, and merged when close (gap at most ``max_gap``
bytes, merged span at most ``max_span``) -- with ``os.pread`` on file descriptors kept
open by a :class:`~virtualizarr.io.files.FileCache` (fsspec for remote URLs), decodes each
chunk with numcodecs directly (:mod:`virtualizarr.reading.decode`), and copies it into the
output array. Each merged range is one task on a shared
thread pool (``zlib`` and the other decompressors release the GIL). Missing chunks read
as the array's fill value and inline chunks are decoded from memory.

Why not zarr's own machinery? Zarr 3 schedules a coroutine (and a thread hop) per chunk
and per codec; for thousands of small chunks that bookkeeping costs more than reading
and inflating the bytes. The decoding is the same; for a codec chain that
:func:`~virtualizarr.reading.decode.chunk_decoder` cannot map, zarr decodes each chunk
(:class:`~virtualizarr.reading.decode.ZarrChunkDecoder`) or the caller reads that array
through zarr.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from typing import Any

import numpy as np
import numpy.typing as npt
from xarray.backends import BackendArray
from xarray.core import indexing

from virtualizarr.errors import ChunkReadError, VirtualiZarrError
from virtualizarr.io.files import FileCache
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.reading.decode import Decoder, decoder_for

__all__ = ["MAX_GAP", "MAX_SPAN", "NativeArray", "coalesce"]

MAX_GAP = 64 * 1024
"""Default largest gap (bytes) between two ranges of a file that are read as one."""
MAX_SPAN = 16 * 1024 * 1024
"""Default largest merged range (bytes)."""


def coalesce(
    offsets: Sequence[int], lengths: Sequence[int], max_gap: int, max_span: int
) -> list[tuple[int, int, list[int]]]:
    """Merge byte ranges of one file that are close into fewer, larger reads.

    Parameters
    ----------
    offsets, lengths : sequence of int
        The ranges, in any order.
    max_gap : int
        Ranges separated by at most this many bytes are merged.
    max_span : int
        No merged range grows beyond this many bytes (a single larger range stays whole).

    Returns
    -------
    list of (start, end, members)
        Each merged range and the indices of the ranges it holds, by ascending offset.

    Examples
    --------
    >>> coalesce([100, 0, 10], [10, 10, 10], max_gap=0, max_span=1000)
    [(0, 20, [1, 2]), (100, 110, [0])]
    """
    out: list[tuple[int, int, list[int]]] = []
    members: list[int] = []
    start = end = 0
    for i in sorted(range(len(offsets)), key=offsets.__getitem__):
        off, n = int(offsets[i]), int(lengths[i])
        if members and off - end <= max_gap and (off + n <= end or off + n - start <= max_span):
            end = max(end, off + n)
            members.append(i)
            continue
        if members:
            out.append((start, end, members))
        members, start, end = [i], off, off + n
    if members:
        out.append((start, end, members))
    return out


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                workers = min(32, (os.cpu_count() or 1) + 4)
                _pool = ThreadPoolExecutor(workers, thread_name_prefix="virtualizarr-read")
    return _pool


def _reset_pool_after_fork() -> None:  # pragma: no cover - runs in forked children
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


_DECODE_BATCH = 8
"""Chunks decoded per thread-pool task (a merged read may hold many)."""


def _run_parallel(
    runs: list[tuple[str, int, int, list[int]]],
    fetch: Callable[[str, int, int, list[int]], memoryview],
    decode: Callable[[str, memoryview, int, list[int]], None],
) -> None:
    """Read merged ranges on the pool; as each arrives, decode its chunks in batches.

    Only this (calling) thread submits work, so pool threads never wait on each other.
    Every task has finished when this returns or raises, so none still writes output.
    """
    pool = _get_pool()
    reads = {pool.submit(fetch, *r): r for r in runs}
    decodes: list[Future[None]] = []
    try:
        for fut in as_completed(reads):
            data = fut.result()
            url, start, _, members = reads[fut]
            for i in range(0, len(members), _DECODE_BATCH):
                batch = members[i : i + _DECODE_BATCH]
                decodes.append(pool.submit(decode, url, data, start, batch))
        for done in as_completed(decodes):
            done.result()
    finally:
        tasks: list[Future[Any]] = [*reads, *decodes]
        for task in tasks:
            task.cancel()
        wait(tasks)


# ---------------------------------------------------------------------- regions
_Sel = tuple[slice, ...]


class _Axis:
    """Where the chunks of one axis start: arithmetic for a regular axis (no array of one
    entry per chunk -- a time axis of 292,000 one-step chunks is common), the cumulative
    lengths for a rectilinear one."""

    __slots__ = ("bounds", "size")

    def __init__(self, chunks: int | tuple[int, ...]) -> None:
        self.size = chunks if isinstance(chunks, int) else 0
        self.bounds: npt.NDArray[np.int64] | None = None
        if not isinstance(chunks, int):
            self.bounds = np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)])

    def index(self, i: Any) -> Any:
        """The chunk holding element ``i`` (an int or an array of them)."""
        if self.bounds is None:
            return i // self.size
        return np.searchsorted(self.bounds, i, side="right") - 1

    def start(self, c: int) -> int:
        """The first element of chunk ``c``."""
        return c * self.size if self.bounds is None else int(self.bounds[c])

    def length(self, c: int) -> int:
        """The stored length of chunk ``c``."""
        return self.size if self.bounds is None else self.start(c + 1) - self.start(c)

    def all_bounds(self, extent: int) -> npt.NDArray[np.int64]:
        """Every chunk's start, and the end of the last."""
        if self.bounds is not None:
            return self.bounds
        n = -(-extent // self.size) if self.size else 0
        return np.arange(n + 1, dtype=np.int64) * self.size


def _axis_plan(
    axis: _Axis, start: int, count: int, step: int
) -> tuple[list[int], list[slice], list[slice]]:
    """Chunks of one axis hit by ``start + step * arange(count)``: indices, slices.

    Returns the chunk indices, and per chunk the slice of the output and the slice of
    the chunk that correspond.
    """
    chunks: list[int] = []
    out_sl: list[slice] = []
    in_sl: list[slice] = []
    if step == 1:
        stop = start + count
        c0, c1 = int(axis.index(start)), int(axis.index(stop - 1))
        for c in range(c0, c1 + 1):
            b = axis.start(c)
            lo, hi = max(start, b), min(stop, axis.start(c + 1))
            chunks.append(c)
            out_sl.append(slice(lo - start, hi - start))
            in_sl.append(slice(lo - b, hi - b))
        return chunks, out_sl, in_sl
    idx = start + step * np.arange(count, dtype=np.int64)
    uniq, first = np.unique(axis.index(idx), return_index=True)
    ends = [*first[1:].tolist(), count]
    for c, f, g in zip(uniq.tolist(), first.tolist(), ends, strict=True):
        b = axis.start(c)
        chunks.append(c)
        out_sl.append(slice(f, g))
        in_sl.append(slice(int(idx[f]) - b, int(idx[g - 1]) - b + 1, step))
    return chunks, out_sl, in_sl


def _points_plan(
    axis: _Axis, points: npt.NDArray[np.int64]
) -> tuple[list[int], list[slice], list[Any]]:
    """Like :func:`_axis_plan` for sorted, distinct indices (the chunk part is an array)."""
    uniq, first = np.unique(axis.index(points), return_index=True)
    ends = [*first[1:].tolist(), len(points)]
    chunks: list[int] = uniq.tolist()
    out_sl = [slice(f, g) for f, g in zip(first.tolist(), ends, strict=True)]
    in_sel = [points[sl] - axis.start(c) for c, sl in zip(chunks, out_sl, strict=True)]
    return chunks, out_sl, in_sel


def _select(chunk: npt.NDArray[Any], in_sel: tuple[Any, ...]) -> npt.NDArray[Any]:
    """``chunk`` indexed orthogonally by slices and integer arrays (one per axis)."""
    arrays = [(ax, sel) for ax, sel in enumerate(in_sel) if not isinstance(sel, slice)]
    if not arrays:
        selected: npt.NDArray[Any] = chunk[in_sel]
        return selected
    chunk = chunk[tuple(sel if isinstance(sel, slice) else slice(None) for sel in in_sel)]
    for ax, sel in arrays:
        chunk = np.take(chunk, sel, axis=ax)
    return chunk


class NativeArray(BackendArray):
    """An xarray backend array that reads a virtual array's chunks directly.

    Parameters
    ----------
    array : ManifestArray
        The virtual array.
    decoder : Decoder
        From :func:`~virtualizarr.reading.decode.decoder_for` (or
        :func:`~virtualizarr.reading.decode.chunk_decoder`) on the array's metadata.
    files : FileCache
        Descriptors shared with the other arrays of a dataset.
    name : str, optional
        The variable's path, used in chunk keys of error messages.
    max_gap, max_span : int, optional
        Coalescing limits (see :func:`coalesce`).

    Examples
    --------
    >>> arr = NativeArray(marr, decoder_for(marr.metadata), FileCache())  # doctest: +SKIP
    >>> arr[indexing.BasicIndexer((slice(0, 2),))]  # doctest: +SKIP
    """

    def __init__(
        self,
        array: ManifestArray,
        decoder: Decoder,
        files: FileCache,
        *,
        name: str = "",
        max_gap: int = MAX_GAP,
        max_span: int = MAX_SPAN,
    ) -> None:
        self.array = array
        self.decoder = decoder
        self.files = files
        self.name = name
        self.max_gap = max_gap
        self.max_span = max_span
        self.shape = array.shape
        self.dtype = decoder.dtype
        self._axes = [_Axis(c) for c in array.chunk_sizes]
        self._fill = np.asarray(array.metadata.fill_value, dtype=self.dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "array": self.array,
            "name": self.name,
            "gap": self.max_gap,
            "span": self.max_span,
            "storage_options": self.files.storage_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["array"],
            decoder_for(state["array"].metadata),
            FileCache(storage_options=state.get("storage_options")),
            name=state["name"],
            max_gap=state["gap"],
            max_span=state["span"],
        )

    @property
    def read_chunk_sizes(self) -> tuple[tuple[int, ...], ...]:
        """Per axis, the chunk lengths clipped to the array's extent (dask's convention)."""
        out = []
        for n, axis in zip(self.shape, self._axes, strict=True):
            b = axis.all_bounds(n)
            clipped = np.minimum(b[1:], n) - b[:-1]
            out.append(tuple(int(x) for x in clipped[clipped > 0]))
        return tuple(out)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> npt.NDArray[Any]:
        """Read the values that an xarray indexer selects."""
        return indexing.explicit_indexing_adapter(  # type: ignore[no-any-return]
            key, self.shape, indexing.IndexingSupport.OUTER, self.read
        )

    def read(self, key: tuple[Any, ...]) -> npt.NDArray[Any]:
        """Read an outer selection: per axis an integer, a slice or an integer array.

        Only the chunks holding selected elements are read, whatever the selection's
        order or repetitions.

        Parameters
        ----------
        key : tuple of int, slice or array of int

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ChunkReadError
            If a referenced chunk cannot be read.
        IndexError
            If an index is out of bounds.
        """
        key = tuple(key) + (slice(None),) * (len(self.shape) - len(key))
        plans: list[tuple[list[int], list[slice], list[Any]]] = []
        counts: list[int] = []
        post: list[Any] = []
        for ax, (k, n) in enumerate(zip(key, self.shape, strict=True)):
            axis = self._axes[ax]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                count = len(range(start, stop, step))
                if step < 0:  # read ascending, then reverse the axis
                    start, step = start + (count - 1) * step, -step
                    post.append(slice(None, None, -1))
                else:
                    post.append(slice(None))
                plans.append(_axis_plan(axis, start, count, step) if count else ([], [], []))
            elif np.ndim(k) == 0:
                i = int(k)
                start = i + n if i < 0 else i
                if not 0 <= start < n:
                    raise IndexError(f"index {i} is out of bounds for axis {ax} with size {n}")
                count = 1
                post.append(0)
                plans.append(_axis_plan(axis, start, 1, 1))
            else:
                idx = np.asarray(k, dtype=np.int64).ravel()
                idx = np.where(idx < 0, idx + n, idx)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise IndexError(f"index out of bounds for axis {ax} with size {n}")
                points, inverse = np.unique(idx, return_inverse=True)
                count = len(points)
                post.append(inverse)
                plans.append(_points_plan(axis, points) if count else ([], [], []))
            counts.append(count)
        out = np.empty(tuple(counts), dtype=self.dtype)
        if out.size:
            self._fill_region(out, plans)
        for ax, p in enumerate(post):  # order and repeat the distinct indices read
            if isinstance(p, np.ndarray):
                out = np.take(out, p, axis=ax)
        # reverse descending slices, drop integer-indexed axes
        return out[tuple(slice(None) if isinstance(p, np.ndarray) else p for p in post)]

    def _fill_region(
        self, out: npt.NDArray[Any], plans: list[tuple[list[int], list[slice], list[Any]]]
    ) -> None:
        grid_idx = np.ix_(*(p[0] for p in plans)) if plans else ()
        m = self.array.manifest
        ids = np.asarray(m.path_ids[grid_idx]).ravel()
        offs = np.asarray(m.offsets[grid_idx]).ravel()
        lens = np.asarray(m.lengths[grid_idx]).ravel()
        sub_shape = tuple(len(p[0]) for p in plans)
        # per referenced path id, the flat positions (in sub-grid order) of its chunks
        runs: list[tuple[str, int, int, list[int]]] = []
        ref = np.flatnonzero(ids >= 0)
        if ref.size:
            for pid in np.unique(ids[ref]).tolist():
                pos = ref[ids[ref] == pid]
                url = m.paths[pid]
                for start, end, members in coalesce(
                    offs[pos].tolist(), lens[pos].tolist(), self.max_gap, self.max_span
                ):
                    runs.append((url, start, end, pos[members].tolist()))

        def locate(flat: int) -> tuple[tuple[int, ...], _Sel, tuple[Any, ...], tuple[int, ...]]:
            cell = np.unravel_index(flat, sub_shape) if sub_shape else ()
            coords = tuple(plans[a][0][i] for a, i in enumerate(cell))
            out_sel = tuple(plans[a][1][i] for a, i in enumerate(cell))
            in_sel = tuple(plans[a][2][i] for a, i in enumerate(cell))
            shape = tuple(self._axes[a].length(c) for a, c in enumerate(coords))
            return coords, out_sel, in_sel, shape

        def fetch(url: str, start: int, end: int, members: list[int]) -> memoryview:
            try:
                return memoryview(self.files.read(url, start, end - start))
            except ChunkReadError as e:
                # name the first chunk that fails on its own (a merged read fails as a whole)
                for f in members:
                    try:
                        self.files.read(url, int(offs[f]), int(lens[f]))
                    except ChunkReadError as e1:
                        raise ChunkReadError(f"chunk {self._key(locate(f)[0])!r}: {e1}") from e1
                raise ChunkReadError(f"chunk {self._key(locate(members[0])[0])!r}: {e}") from e

        def decode(url: str, data: memoryview, start: int, members: list[int]) -> None:
            for f in members:
                coords, out_sel, in_sel, shape = locate(f)
                o = int(offs[f]) - start
                self._put(out, out_sel, data[o : o + int(lens[f])], in_sel, shape, coords, url)

        for f in np.flatnonzero(ids < 0).tolist():
            coords, out_sel, in_sel, shape = locate(f)
            pid = int(ids[f])
            if pid == MISSING:
                out[out_sel] = self._fill
            else:
                self._put(out, out_sel, m.inline[-2 - pid], in_sel, shape, coords, "inline")

        if len(runs) == 1 and len(runs[0][3]) <= _DECODE_BATCH:
            url, start, _, members = runs[0]
            decode(url, fetch(*runs[0]), start, members)
        elif runs:
            _run_parallel(runs, fetch, decode)

    def _put(
        self,
        out: npt.NDArray[Any],
        out_sel: _Sel,
        data: Any,
        in_sel: tuple[Any, ...],
        shape: tuple[int, ...],
        coords: tuple[int, ...],
        where: str,
    ) -> None:
        try:
            chunk = self.decoder.decode(data, shape)
        except VirtualiZarrError:
            raise
        except Exception as e:
            raise ChunkReadError(
                f"chunk {self._key(coords)!r} ({where}) could not be decoded: "
                f"{type(e).__name__}: {e}. Its bytes are not what the array's codecs expect, "
                "so the source is corrupt or has changed since it was virtualized; "
                "virtualizarr.verify(refs) compares the sources with their recorded identity."
            ) from e
        out[out_sel] = _select(chunk, in_sel)

    def _key(self, coords: tuple[int, ...]) -> str:
        tail = "/".join(map(str, coords))
        return f"{self.name}/c/{tail}" if coords else f"{self.name}/c"
