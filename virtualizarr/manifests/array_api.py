"""NumPy functions xarray needs, implemented on manifests (never on bytes).

``np.concatenate`` joins chunk grids (a Zarr v3 rectilinear grid when lengths are not
whole chunks), ``np.stack`` and ``np.expand_dims`` add length-one chunk axes,
``np.broadcast_to`` repeats references, and ``np.result_type`` answers from dtypes.
Every combination first checks :func:`~virtualizarr.manifests.compat.check_combinable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from virtualizarr.errors import IncompatibleArraysError, UnsupportedOperationError
from virtualizarr.manifests.array import ManifestArray, _with_chunks, implements
from virtualizarr.manifests.combine import check_combinable
from virtualizarr.manifests.concat import concatenate_manifests, stack_manifests
from virtualizarr.manifests.metadata import AxisChunks, axis_edges

__all__ = ["broadcast_to", "concatenate", "expand_dims", "result_type", "stack"]


def _as_manifest_arrays(arrays: Sequence[Any], func: str) -> list[ManifestArray]:
    arrs = list(arrays)
    if not arrs:
        raise ValueError(f"np.{func} needs at least one array")
    bad = [type(a).__name__ for a in arrs if not isinstance(a, ManifestArray)]
    if bad:
        raise UnsupportedOperationError(
            f"np.{func} cannot mix virtual arrays with {sorted(set(bad))}: a variable is "
            "virtual in some datasets and loaded in others. Open all of them with the same "
            "loadable_variables=[...]."
        )
    return arrs


def _normalize_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


@implements(np.concatenate)
def concatenate(
    arrays: Sequence[ManifestArray], /, axis: int | None = 0, **kwargs: Any
) -> ManifestArray:
    """Concatenate virtual arrays along an existing axis by joining their manifests.

    Raises
    ------
    IncompatibleArraysError
        If the arrays differ in dtype, codecs, chunking off ``axis``, fill value or CF
        encoding, or if a padded (partial) chunk would end up inside the result.
    """
    if kwargs.get("out") is not None:
        raise UnsupportedOperationError("np.concatenate(out=...) is not supported")
    arrs = _as_manifest_arrays(arrays, "concatenate")
    first = arrs[0]
    if axis is None:
        raise UnsupportedOperationError("np.concatenate(axis=None) would flatten chunks")
    ax = _normalize_axis(axis, first.ndim)
    check_combinable(arrs, ax)
    arrs = [a for a in arrs if a.shape[ax] > 0] or arrs[:1]
    edges: list[int] = []
    for i, a in enumerate(arrs):
        e = axis_edges(a.shape[ax], a.chunk_sizes[ax])
        if i < len(arrs) - 1 and sum(e) != a.shape[ax]:
            raise IncompatibleArraysError(
                f"cannot concatenate variable {a.name or '?'!r} along axis {ax}: array {i} has "
                f"length {a.shape[ax]}, which its chunks ({_fmt(a.chunk_sizes[ax])}) cover "
                f"only with a padded last chunk of {e[-1]} stored elements; such a chunk can "
                "only come last. Concatenate in another order, or load the variable."
            )
        edges.extend(e)
    length = sum(a.shape[ax] for a in arrs)
    chunk0 = first.chunk_sizes[ax]
    new_axis: AxisChunks
    if isinstance(chunk0, int) and all(e == chunk0 for e in edges):
        new_axis = chunk0
    else:
        new_axis = tuple(edges)
    chunks = tuple(new_axis if i == ax else c for i, c in enumerate(first.chunk_sizes))
    shape = tuple(length if i == ax else s for i, s in enumerate(first.shape))
    manifest = concatenate_manifests((a.manifest for a in arrs), axis=ax)
    return _with_chunks(first, shape, chunks, manifest, first.metadata.dimension_names)


def _fmt(c: AxisChunks) -> str:
    return str(c) if isinstance(c, int) else f"rectilinear {list(c)[:6]}..."


@implements(np.stack)
def stack(arrays: Sequence[ManifestArray], /, axis: int = 0, **kwargs: Any) -> ManifestArray:
    """Stack virtual arrays along a new length-one-chunked axis."""
    arrs = _as_manifest_arrays(arrays, "stack")
    first = arrs[0]
    ax = _normalize_axis(axis, first.ndim + 1)
    check_combinable(arrs, None)
    if any(a.shape != first.shape for a in arrs):
        raise IncompatibleArraysError(
            f"cannot stack variable {first.name or '?'!r}: shapes differ "
            f"({sorted({a.shape for a in arrs})})."
        )
    manifest = stack_manifests((a.manifest for a in arrs), axis=ax)
    shape = (*first.shape[:ax], len(arrs), *first.shape[ax:])
    chunks = (*first.chunk_sizes[:ax], 1, *first.chunk_sizes[ax:])
    return _with_chunks(first, shape, chunks, manifest, None)


@implements(np.expand_dims)
def expand_dims(x: ManifestArray, /, axis: int | Sequence[int] = 0) -> ManifestArray:
    """Insert length-one axes (each one chunk long)."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    out_ndim = x.ndim + len(axes)
    norm = sorted(_normalize_axis(a, out_ndim) for a in axes)
    key: list[Any] = []
    it = iter(range(x.ndim))
    for i in range(out_ndim):
        if i in norm:
            key.append(None)
        else:
            next(it)
            key.append(slice(None))
    return x[tuple(key)]


@implements(np.broadcast_to)
def broadcast_to(x: ManifestArray, /, shape: Sequence[int], **kwargs: Any) -> ManifestArray:
    """Broadcast by adding leading axes and repeating length-one, chunk-one axes."""
    target = tuple(int(s) for s in shape)
    if len(target) < x.ndim:
        raise ValueError(f"cannot broadcast shape {x.shape} to {target}")
    arr = x[(None,) * (len(target) - x.ndim) + (Ellipsis,)] if len(target) > x.ndim else x
    grid = list(arr.manifest.shape_chunk_grid)
    chunks = list(arr.chunk_sizes)
    for i, (have, want) in enumerate(zip(arr.shape, target, strict=True)):
        if have == want:
            continue
        if have != 1 or chunks[i] != 1:
            raise UnsupportedOperationError(
                f"cannot broadcast a virtual array of shape {x.shape} to {target}: axis {i} "
                "would have to repeat part of a chunk. Load the variable instead."
            )
        grid[i] = want
    if tuple(grid) == arr.manifest.shape_chunk_grid:
        return arr
    manifest = arr.manifest.broadcast_to(grid)
    return _with_chunks(arr, target, tuple(chunks), manifest, None)


@implements(np.result_type)
def result_type(*arrays_and_dtypes: Any) -> np.dtype[Any]:
    """The dtype NumPy would give, computed from dtypes alone."""
    return np.result_type(
        *(a.dtype if isinstance(a, ManifestArray) else a for a in arrays_and_dtypes)
    )


@implements(np.array_equal)
def array_equal(a: Any, b: Any, equal_nan: bool = False) -> bool:
    """True if both virtual arrays reference the same bytes for every element."""
    if not (isinstance(a, ManifestArray) and isinstance(b, ManifestArray)):
        return False
    return a.shape == b.shape and bool(np.all(a == b))


@implements(np.shape)
def shape(a: ManifestArray) -> tuple[int, ...]:
    """The array's shape."""
    return a.shape


@implements(np.ndim)
def ndim(a: ManifestArray) -> int:
    """The array's number of dimensions."""
    return a.ndim


@implements(np.size)
def size(a: ManifestArray) -> int:
    """The array's number of elements."""
    return a.size


@implements(np.full_like)
def full_like(
    a: ManifestArray, fill_value: Any, dtype: Any = None, **kwargs: Any
) -> np.ndarray[Any, Any]:
    """A NumPy array shaped like ``a`` (xarray uses it for masks such as ``isnull``)."""
    return np.full(a.shape, fill_value, dtype=dtype if dtype is not None else a.dtype)
