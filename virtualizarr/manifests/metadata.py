"""Zarr v3 array metadata for virtual arrays: construction and chunk-grid helpers.

Virtual arrays carry :class:`~virtualizarr.manifests.array_metadata.ArrayMetadata`, our
own frozen copy of zarr-python's ``ArrayV3Metadata`` (same ``zarr.json`` document, no zarr
import), so whatever we write is exactly what Zarr readers expect. This module builds it
from the facts readers find (NumPy dtype, shape, chunk sizes, codec configurations, fill
value) and answers chunk-grid questions for both regular and rectilinear grids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.chunk_grids import (
    ChunkGrid,
    RectilinearChunkGrid,
    RegularChunkGrid,
    rectilinear_grids,
)

__all__ = [
    "AxisChunks",
    "axis_edges",
    "chunk_grid_shape",
    "codecs_to_json",
    "grid_metadata",
    "make_array_metadata",
    "metadata_chunks",
    "rectilinear_grids",
]

AxisChunks = int | tuple[int, ...]
"""Chunking of one axis: a regular chunk size, or explicit chunk lengths (rectilinear)."""


def _serializer(dtype: np.dtype[Any]) -> dict[str, Any]:
    if dtype.kind in "OT":
        return {"name": "vlen-utf8", "configuration": {}}
    if dtype.fields:  # a record type: the byte order of its multi-byte numbers
        orders = {
            f[0].byteorder
            for f in dtype.fields.values()
            if f[0].itemsize > 1 and f[0].byteorder != "|"
        }
        orders = {"<" if o == "=" and np.little_endian else ">" if o == "=" else o for o in orders}
        if len(orders) > 1:
            return {"name": "bytes"}
        big = orders == {">"}
        return {"name": "bytes", "configuration": {"endian": "big" if big else "little"}}
    if dtype.itemsize > 1 and dtype.kind in "iufcmM":
        endian = (
            "big"
            if dtype.byteorder == ">" or (dtype.byteorder == "=" and not np.little_endian)
            else "little"
        )
        return {"name": "bytes", "configuration": {"endian": endian}}
    if dtype.fields is not None and any(f[0].itemsize > 1 for f in dtype.fields.values()):
        # a structured dtype's multi-byte fields are stored little-endian (readers repack
        # big-endian ones): say so, as zarr expects
        return {"name": "bytes", "configuration": {"endian": "little"}}
    return {"name": "bytes"}


def make_array_metadata(
    *,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunks: Sequence[AxisChunks],
    fill_value: Any,
    codecs: Sequence[Mapping[str, Any]] = (),
    dimension_names: Sequence[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    array_codecs: Sequence[Mapping[str, Any]] = (),
    data_type: np.dtype[Any] | None = None,
) -> ArrayMetadata:
    """Build Zarr v3 metadata for a virtual array.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    dtype : numpy.dtype
        The dtype of the *stored* bytes; its byte order picks the ``bytes`` codec's
        endianness (big-endian netCDF3 data stays big-endian on disk).
    chunks : sequence of int or tuple of int
        Per axis: a regular chunk size, or explicit chunk lengths (rectilinear grid).
    fill_value : scalar
        The value a missing chunk reads as (the source's own fill value).
    codecs : sequence of mapping
        Bytes-to-bytes codec configurations applied after serialization, in encoding
        order (e.g. ``{"name": "numcodecs.zlib", "configuration": {"level": 4}}``).
    dimension_names : sequence of str, optional
    attributes : mapping, optional
    array_codecs : sequence of mapping, optional
        Array-to-array codec configurations applied *before* serialization, in encoding
        order (``transpose``, ``numcodecs.delta``, ``numcodecs.fixedscaleoffset``...):
        the filters of Zarr stores and FITS scaling that transform values rather than
        bytes. When they change the type, ``dtype`` is what they encode to (the stored
        dtype) and ``data_type`` what the array holds.
    data_type : numpy.dtype, optional
        The array's data type when ``array_codecs`` change it (default: ``dtype``).

    Returns
    -------
    ArrayMetadata
        Frozen; identical requests (without attributes) share one instance.

    Raises
    ------
    UnsupportedFeatureError
        If Zarr has no data type or codec for what was asked.

    Examples
    --------
    >>> meta = make_array_metadata(shape=(10,), dtype=np.dtype(">i2"), chunks=(5,),
    ...     fill_value=-1, codecs=[{"name": "numcodecs.zlib", "configuration": {"level": 4}}])
    >>> [c["name"] for c in meta.codecs], meta.dtype
    (['bytes', 'numcodecs.zlib'], dtype('int16'))
    """
    args = (
        tuple(int(s) for s in shape),
        dtype,
        tuple(c if isinstance(c, int) else tuple(c) for c in chunks),
        fill_value,
        tuple(dict(c) for c in codecs),
        tuple(dimension_names) if dimension_names is not None else None,
        tuple(dict(c) for c in array_codecs),
    )
    try:
        if attributes:
            return _build_metadata(*args, attributes=dict(attributes), data_type=data_type)
        # Files of an archive repeat the same arrays: identical requests share one frozen
        # instance (and its normalized codec chain).
        key = json.dumps(
            [
                args[0],
                dtype.descr,  # tells record dtypes of one size apart
                dtype.kind,
                args[2],
                _fill_key(fill_value),
                args[4],
                args[5],
                args[6],
                None if data_type is None else np.dtype(data_type).descr,
            ],
            sort_keys=True,
            default=repr,
        )
        cached = _METADATA_CACHE.get(key)
        if cached is None:
            if len(_METADATA_CACHE) >= 4096:
                _METADATA_CACHE.clear()
            cached = _METADATA_CACHE[key] = _build_metadata(
                *args, attributes={}, data_type=data_type
            )
        return cached
    except (ValueError, TypeError, KeyError) as e:
        raise UnsupportedFeatureError(
            f"cannot describe an array of dtype {dtype} with codecs "
            f"{[c.get('name') for c in (*array_codecs, *codecs)]} as Zarr v3 metadata: {e}"
        ) from e


_METADATA_CACHE: dict[str, ArrayMetadata] = {}


def _fill_key(value: Any) -> list[str]:
    """A key that tells fill values apart by type, bits and value (NaN payloads too)."""
    arr = np.asarray(value)
    return [type(value).__name__, arr.dtype.str, arr.tobytes().hex(), repr(value)]


def _build_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[AxisChunks, ...],
    fill_value: Any,
    codecs: tuple[dict[str, Any], ...],
    dimension_names: tuple[str, ...] | None,
    array_codecs: tuple[dict[str, Any], ...] = (),
    *,
    attributes: dict[str, Any],
    data_type: np.dtype[Any] | None = None,
) -> ArrayMetadata:
    return ArrayMetadata(
        shape=shape,
        data_type=np.dtype(data_type) if data_type is not None else dtype,
        chunk_grid=grid_metadata(chunks),
        fill_value=fill_value,
        codecs=(*array_codecs, _serializer(dtype), *codecs),
        attributes=attributes,
        dimension_names=dimension_names,
    )


def grid_metadata(chunks: Sequence[AxisChunks]) -> ChunkGrid:
    """Chunk-grid metadata for per-axis chunking (regular unless an axis lists lengths).

    Examples
    --------
    >>> grid_metadata((4, (3, 1))).to_dict()["name"]
    'rectilinear'
    """
    if all(isinstance(c, int | np.integer) for c in chunks):
        return RegularChunkGrid(tuple(int(c) for c in chunks))  # type: ignore[arg-type]
    return RectilinearChunkGrid(tuple(chunks))


def metadata_chunks(metadata: ArrayMetadata) -> tuple[AxisChunks, ...]:
    """Per-axis chunking of an array (ints for regular axes, tuples for rectilinear).

    Examples
    --------
    >>> metadata_chunks(make_array_metadata(shape=(5,), dtype=np.dtype("u1"),
    ...     chunks=((3, 2),), fill_value=0))
    ((3, 2),)
    """
    grid = metadata.chunk_grid
    if isinstance(grid, RegularChunkGrid):
        return grid.chunk_shape
    return grid.chunk_shapes


def axis_edges(extent: int, chunks: AxisChunks) -> tuple[int, ...]:
    """Stored lengths of the chunks along one axis.

    For a regular axis every chunk is stored whole, the last one padded past ``extent``
    (as Zarr and HDF5 store edge chunks); a rectilinear axis lists its lengths, whose sum
    may also pass ``extent`` by a padded last chunk.
    """
    if isinstance(chunks, int):
        return (chunks,) * math.ceil(extent / chunks)
    return tuple(chunks)


def chunk_grid_shape(shape: Sequence[int], chunks: Sequence[AxisChunks]) -> tuple[int, ...]:
    """Number of chunks along each axis."""
    return tuple(
        (math.ceil(s / c) if isinstance(c, int) else len(c))
        for s, c in zip(shape, chunks, strict=True)
    )


def codecs_to_json(metadata: ArrayMetadata) -> list[dict[str, Any]]:
    """The codec pipeline as JSON-style dicts, each with a ``configuration`` (for comparison
    and writing).

    Examples
    --------
    >>> codecs_to_json(make_array_metadata(shape=(2,), dtype=np.dtype("u1"), chunks=(2,),
    ...     fill_value=0))
    [{'name': 'bytes', 'configuration': {}}]
    """
    return [
        {"name": c["name"], "configuration": dict(c.get("configuration") or {})}
        for c in metadata.codecs
    ]
