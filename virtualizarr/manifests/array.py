"""``ManifestArray``: a NumPy-like duck array that never holds data.

It pairs a :class:`~virtualizarr.manifests.manifest.ChunkManifest` (where the chunks
are) with Zarr v3 array metadata (how to decode them). xarray wraps it in variables, and
its NumPy protocol hooks (``__array_function__``) turn ``xr.concat``, ``xr.merge``,
``isel`` and friends into manifest operations. Operations that would need the values
themselves raise :class:`~virtualizarr.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import InvalidMetadataError, UnsupportedOperationError
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.manifest import ChunkEntry, ChunkManifest, resolve_chunks
from virtualizarr.manifests.metadata import (
    axis_edges,
    chunk_grid_shape,
    grid_metadata,
    metadata_chunks,
)

__all__ = ["ManifestArray", "as_array_metadata"]

_HANDLED: dict[Callable[..., Any], Callable[..., Any]] = {}


def implements(np_function: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
    """Register an implementation of a NumPy function for ManifestArray."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _HANDLED[np_function] = func
        return func

    return decorator


class ManifestArray:
    """A virtual array: chunk locations plus Zarr v3 metadata, no data.

    Parameters
    ----------
    metadata : ArrayMetadata, zarr.core.metadata.v3.ArrayV3Metadata or mapping
        Shape, dtype, chunk grid, codecs and fill value of the stored array. zarr's
        metadata class and a ``zarr.json`` array document are converted to
        :class:`~virtualizarr.manifests.ArrayMetadata`.
    manifest : ChunkManifest
        Where each chunk lives; its grid shape must match the metadata's chunk grid.
    name : str, optional
        The variable name, used only in error messages.
    encoding_attrs : mapping, optional
        CF attributes that change how values decode (``scale_factor``, ``_FillValue``,
        time ``units``...). Arrays whose encoding attributes differ refuse to combine.
    chunkmanifest : ChunkManifest or mapping, optional
        VirtualiZarr 2.x's name for ``manifest``. As there, ``metadata`` may also be a
        Zarr v3 array document (a dict) and the manifest a dict of chunk entries.

    Examples
    --------
    >>> import numpy as np
    >>> from virtualizarr.manifests import ChunkManifest, make_array_metadata
    >>> meta = make_array_metadata(shape=(4,), dtype=np.dtype("<i4"), chunks=(2,), fill_value=0)
    >>> man = ChunkManifest(["file:///a.bin"], [0, 0], [0, 8], [8, 8])
    >>> arr = ManifestArray(meta, man)
    >>> np.concatenate([arr, arr]).shape
    (8,)
    """

    __slots__ = ("_dtype", "_encoding_attrs", "_manifest", "_metadata", "_shape", "name")

    def __init__(
        self,
        metadata: ArrayMetadata | Mapping[str, Any] | Any,
        manifest: ChunkManifest | Mapping[str, ChunkEntry] | None = None,
        *,
        name: str | None = None,
        encoding_attrs: Mapping[str, Any] | None = None,
        chunkmanifest: ChunkManifest | Mapping[str, ChunkEntry] | None = None,
    ) -> None:
        if chunkmanifest is not None:  # VirtualiZarr 2.x's name
            if manifest is not None:
                raise TypeError("pass the manifest once: as manifest or as chunkmanifest.")
            manifest = chunkmanifest
        if manifest is None:
            raise TypeError("ManifestArray needs a manifest (a ChunkManifest).")
        metadata = as_array_metadata(metadata)
        if not isinstance(manifest, ChunkManifest):  # {"0.0": {"path": ...}}, as 2.x
            manifest = ChunkManifest(entries=manifest, shape=None)
        expected = chunk_grid_shape(metadata.shape, metadata_chunks(metadata))
        if manifest.shape_chunk_grid != expected:
            raise ValueError(
                f"the manifest's chunk grid {manifest.shape_chunk_grid} does not match the "
                f"grid {expected} implied by shape {metadata.shape} and chunks "
                f"{metadata_chunks(metadata)}" + (f" for variable {name!r}" if name else "")
            )
        self._metadata = metadata
        self._manifest = manifest
        self.name = name
        self._encoding_attrs: dict[str, Any] = dict(encoding_attrs or {})
        # asked for constantly by xarray and by combining; the metadata is frozen
        self._shape = tuple(int(s) for s in metadata.shape)
        self._dtype: np.dtype[Any] = metadata.data_type

    # ------------------------------------------------------------------ properties
    @property
    def metadata(self) -> ArrayMetadata:
        """The Zarr v3 array metadata (``.to_zarr()`` gives zarr-python's class)."""
        return self._metadata

    @property
    def manifest(self) -> ChunkManifest:
        """The chunk manifest."""
        return self._manifest

    @property
    def encoding_attrs(self) -> dict[str, Any]:
        """CF attributes that control decoding (compared when combining)."""
        return dict(self._encoding_attrs)

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self._shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The NumPy dtype values decode to."""
        return self._dtype

    @property
    def chunk_sizes(self) -> tuple[int | tuple[int, ...], ...]:
        """Per axis: the regular chunk size, or explicit chunk lengths (rectilinear)."""
        return metadata_chunks(self._metadata)

    @property
    def nbytes(self) -> int:
        """Size of the data this array stands for, once decoded (as NumPy reports it)."""
        return self.size * self.dtype.itemsize

    @property
    def nbytes_virtual(self) -> int:
        """Memory the references take (the manifest), not the data they stand for.

        VirtualiZarr 2.x's name; ``ds.virtualize.nbytes`` sums it over a dataset.
        """
        return self._manifest.nbytes

    @property
    def T(self) -> ManifestArray:
        """Transposition needs the data; refused unless the array is 1-D."""
        if self.ndim <= 1:
            return self
        raise UnsupportedOperationError(
            "transposing a virtual array would reorder bytes inside chunks; load the variable "
            "(loadable_variables=[...]) instead."
        )

    def replace(
        self,
        *,
        metadata: ArrayMetadata | Mapping[str, Any] | Any = None,
        manifest: ChunkManifest | None = None,
        name: str | None = None,
    ) -> ManifestArray:
        """A copy with some parts replaced."""
        return ManifestArray(
            metadata if metadata is not None else self._metadata,
            manifest if manifest is not None else self._manifest,
            name=name if name is not None else self.name,
            encoding_attrs=self._encoding_attrs,
        )

    def rename_paths(self, new: Mapping[str, str] | Callable[[str], str]) -> ManifestArray:
        """A copy whose manifest paths are rewritten by a mapping or a callable."""
        return self.replace(manifest=self._manifest.rename_paths(new))

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        return (
            f"ManifestArray<shape={self.shape}, dtype={self.dtype}, "
            f"chunk_sizes={self.chunk_sizes}, {self._manifest!r}>"
        )

    def _repr_inline_(self, max_width: int) -> str:
        text = f"ManifestArray<{self.dtype}, chunks={self.chunk_sizes}>"
        return text if len(text) <= max_width else text[: max(max_width - 3, 0)] + "..."

    # ------------------------------------------------------------------ protocols
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        raise UnsupportedOperationError(
            "a ManifestArray holds chunk references, not values, so it cannot become a NumPy "
            "array. Write references with ds.virtualize.to_kerchunk(...) and open them with "
            "xarray, or list the variable in loadable_variables=[...] when opening."
        )

    def __array_function__(
        self,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if func not in _HANDLED:
            raise UnsupportedOperationError(
                f"np.{getattr(func, '__name__', func)} is not supported on virtual arrays "
                "(it would need the values). Supported: "
                f"{sorted(f.__name__ for f in _HANDLED)}. Load the variable "
                "(loadable_variables=[...]) to compute with it."
            )
        return _HANDLED[func](*args, **kwargs)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if ufunc is np.isnan and method == "__call__" and len(inputs) == 1:
            # A reference is never NaN: needed by xarray's equality checks.
            return np.zeros(self.shape, dtype=bool)
        if ufunc is np.equal and method == "__call__" and len(inputs) == 2:
            return _elementwise_equal(inputs[0], inputs[1])
        raise UnsupportedOperationError(
            f"the ufunc np.{ufunc.__name__} is not supported on virtual arrays (it would need "
            "the values). Load the variable (loadable_variables=[...]) to compute with it."
        )

    def __eq__(self, other: object) -> Any:  # elementwise, like NumPy
        return _elementwise_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # mutable-style equality, like ndarray

    def astype(self, dtype: Any, *, copy: bool = True) -> ManifestArray:
        """Only a no-op cast is possible without the values.

        An unsized flexible dtype of the same kind (``"S"`` for ``"S1"``, as ``xr.concat``
        asks for char arrays) counts as no-op.
        """
        target = np.dtype(dtype)
        if target == self.dtype or (
            target.kind == self.dtype.kind and target.kind in "SUV" and target.itemsize == 0
        ):
            return self
        what = f"variable {self.name!r}" if self.name else "a virtual array"
        paths = self._manifest.paths
        where = f" (from {paths[0]}{' and more' if len(paths) > 1 else ''})" if paths else ""
        raise UnsupportedOperationError(
            f"cannot cast {what}{where} from {self.dtype} to {target} without its values; "
            "xarray asks for this when combining files whose dtypes of it differ, which one "
            "virtual array cannot hold. Load the variable (loadable_variables=[...]) or drop it."
        )

    def __getitem__(self, key: Any) -> ManifestArray:
        return _getitem(self, key)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d virtual array")
        return self.shape[0]


# ---------------------------------------------------------------------- helpers
def as_array_metadata(metadata: Any) -> ArrayMetadata:
    """Our metadata for ours, zarr-python's ``ArrayV3Metadata`` or a ``zarr.json`` document.

    Raises
    ------
    InvalidMetadataError
        If ``metadata`` is none of those, or not valid Zarr v3 array metadata.
    """
    if isinstance(metadata, ArrayMetadata):
        return metadata
    if isinstance(metadata, Mapping):  # a zarr.json array document, as VirtualiZarr 2.x
        return ArrayMetadata.from_dict(metadata)
    if hasattr(metadata, "to_dict"):  # zarr's ArrayV3Metadata (zarr is imported already)
        return ArrayMetadata.from_zarr(metadata)
    raise InvalidMetadataError(
        f"expected Zarr v3 array metadata (ArrayMetadata, zarr's ArrayV3Metadata or a "
        f"zarr.json document); found {type(metadata).__name__}."
    )


def _elementwise_equal(a: Any, b: Any) -> npt.NDArray[np.bool_]:
    """Elementwise equality: elements are equal where their chunks are the same bytes."""
    if not (isinstance(a, ManifestArray) and isinstance(b, ManifestArray)):
        shape = a.shape if isinstance(a, ManifestArray) else np.shape(a)
        return np.zeros(shape, dtype=bool)
    if a.shape != b.shape:
        return np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
    if (
        a.chunk_sizes != b.chunk_sizes
        or a.dtype != b.dtype
        or a.metadata.codecs != b.metadata.codecs
    ):
        return np.zeros(a.shape, dtype=bool)
    ma, mb = a.manifest, b.manifest
    same = (ma.offsets == mb.offsets) & (ma.lengths == mb.lengths)
    pa = _chunk_identity(ma)
    pb = _chunk_identity(mb)
    same &= pa == pb
    out = same
    for ax, (extent, spec) in enumerate(zip(a.shape, a.chunk_sizes, strict=True)):
        edges = np.array(axis_edges(extent, spec), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(edges)[:-1]])
        clipped = np.clip(np.minimum(edges, extent - starts), 0, None)
        out = np.repeat(out, clipped, axis=ax)
    return np.asarray(out, dtype=bool)


def _chunk_identity(m: ChunkManifest) -> npt.NDArray[np.object_]:
    return resolve_chunks(m.path_ids, m.paths, m.inline)


def _axis_edges_of(arr: ManifestArray, axis: int) -> tuple[int, ...]:
    return axis_edges(arr.shape[axis], arr.chunk_sizes[axis])


def _with_chunks(
    arr: ManifestArray,
    shape: tuple[int, ...],
    chunks: tuple[int | tuple[int, ...], ...],
    manifest: ChunkManifest,
    dimension_names: tuple[str | None, ...] | None = None,
) -> ManifestArray:
    meta = dataclasses.replace(
        arr.metadata,
        shape=shape,
        chunk_grid=grid_metadata(chunks),
        dimension_names=dimension_names,
    )
    return ManifestArray(meta, manifest, name=arr.name, encoding_attrs=arr.encoding_attrs)


def _getitem(arr: ManifestArray, key: Any) -> ManifestArray:
    """Chunk-aligned indexing: slices on chunk boundaries, ``None`` and ``...``."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:i] + (slice(None),) * (arr.ndim - n_real) + key[i + 1 :]
    n_real = sum(1 for k in key if k is not None)
    if n_real > arr.ndim:
        raise IndexError(f"too many indices for a {arr.ndim}-d virtual array: {key!r}")
    key = key + (slice(None),) * (arr.ndim - n_real)

    shape: list[int] = []
    chunks: list[int | tuple[int, ...]] = []
    grid_key: list[slice] = []
    grid_shape: list[int] = []
    ax = 0
    for k in key:
        if k is None:
            shape.append(1)
            chunks.append(1)
            grid_shape.append(1)
            continue
        extent, spec = arr.shape[ax], arr.chunk_sizes[ax]
        edges = axis_edges(extent, spec)
        bounds = np.concatenate([[0], np.cumsum(edges)]).astype(np.int64)
        if isinstance(k, int | np.integer):
            i = int(k) + (extent if k < 0 else 0)
            if not 0 <= i < extent:
                raise IndexError(f"index {k} is out of bounds for axis {ax} with size {extent}")
            ci = int(np.searchsorted(bounds, i, side="right") - 1)
            if bounds[ci] != i or min(int(bounds[ci + 1]), extent) != i + 1:
                raise UnsupportedOperationError(
                    f"integer index {k} on axis {ax} selects part of a chunk of length "
                    f"{edges[ci]}; only whole chunks can be selected virtually. Load the "
                    "variable (loadable_variables=[...]) to index it freely."
                )
            grid_key.append(slice(ci, ci + 1))
            ax += 1
            continue  # axis dropped
        if not isinstance(k, slice):
            raise UnsupportedOperationError(
                f"virtual arrays support only slices, integers, None and ... as indices; "
                f"found {type(k).__name__} on axis {ax}. Load the variable "
                "(loadable_variables=[...]) for fancy indexing."
            )
        start, stop, step = k.indices(extent)
        if step != 1:
            raise UnsupportedOperationError(
                f"slice step {step} on axis {ax} is not supported on virtual arrays; only "
                "contiguous whole-chunk selections are."
            )
        stop = max(stop, start)
        ends = np.minimum(bounds, extent)
        if start not in bounds or (stop not in ends and stop != start):
            raise UnsupportedOperationError(
                f"slice [{start}:{stop}] on axis {ax} does not fall on chunk boundaries "
                f"(chunk boundaries: {_short(bounds.tolist())}); only whole chunks can be "
                "selected virtually. Load the variable (loadable_variables=[...]) instead."
            )
        c0 = int(np.searchsorted(bounds, start))
        c1 = c0 if stop == start else int(np.nonzero(ends == stop)[0][0])
        sel_edges = edges[c0:c1]
        grid_key.append(slice(c0, c1))
        grid_shape.append(c1 - c0)
        shape.append(stop - start)
        if isinstance(spec, int):
            chunks.append(spec)
        else:
            chunks.append(tuple(sel_edges) if sel_edges else (1,))
        ax += 1
    sub = arr.manifest[tuple(grid_key)].reshape(grid_shape)
    dims = arr.metadata.dimension_names
    new_dims: tuple[str | None, ...] | None = None
    if dims is not None:
        it = iter(dims)
        names: list[str | None] = []
        for k in key:
            if k is None:
                names.append(None)
            elif isinstance(k, int | np.integer):
                next(it)
            else:
                names.append(next(it))
        new_dims = tuple(names)
    return _with_chunks(arr, tuple(shape), tuple(chunks), sub, new_dims)


def _short(values: list[int]) -> str:
    return str(values) if len(values) <= 8 else f"[{values[0]}, {values[1]}, ..., {values[-1]}]"
