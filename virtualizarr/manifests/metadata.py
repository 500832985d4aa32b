"""Zarr v3 array metadata for virtual arrays: construction and chunk-grid helpers.

Virtual arrays carry zarr-python's own :class:`~zarr.core.metadata.v3.ArrayV3Metadata`,
so whatever we write is exactly what Zarr readers expect. This module builds it from the
facts readers find (NumPy dtype, shape, chunk sizes, codec configurations, fill value)
and answers chunk-grid questions for both regular and rectilinear grids.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import zarr
from zarr.core.dtype import VariableLengthUTF8, get_data_type_from_native_dtype
from zarr.core.metadata.v3 import (
    ArrayV3Metadata,
    RectilinearChunkGridMetadata,
    RegularChunkGridMetadata,
)

from virtualizarr.errors import UnsupportedFeatureError

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


@functools.lru_cache(maxsize=256)
def _zarr_dtype(dtype: np.dtype[Any]) -> Any:
    """zarr's data type for a NumPy dtype (cached: zarr's registry lookup is slow)."""
    if dtype.kind in "OT":
        return VariableLengthUTF8()
    with warnings.catch_warnings():
        # zarr flags fixed-length bytes/strings as not yet in the v3 spec; we know.
        warnings.simplefilter("ignore")
        return get_data_type_from_native_dtype(dtype.newbyteorder("="))


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
) -> ArrayV3Metadata:
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
    zarr.core.metadata.v3.ArrayV3Metadata

    Raises
    ------
    UnsupportedFeatureError
        If zarr has no data type or codec for what was asked.
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
        # Files of an archive repeat the same arrays: building zarr's metadata costs ~1 ms
        # (codec parsing and validation), so identical requests share one frozen instance.
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


_METADATA_CACHE: dict[str, ArrayV3Metadata] = {}


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
) -> ArrayV3Metadata:
    return ArrayV3Metadata(
        shape=shape,
        data_type=_zarr_dtype(np.dtype(data_type) if data_type is not None else dtype),
        chunk_grid=grid_metadata(chunks),
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
        fill_value=fill_value,
        codecs=[*array_codecs, _serializer(dtype), *codecs],
        attributes=attributes,
        dimension_names=dimension_names,
    )


def grid_metadata(
    chunks: Sequence[AxisChunks],
) -> RegularChunkGridMetadata | RectilinearChunkGridMetadata:
    """Chunk-grid metadata for per-axis chunking (regular unless an axis lists lengths)."""
    if all(isinstance(c, int) for c in chunks):
        return RegularChunkGridMetadata(chunk_shape=tuple(int(c) for c in chunks))  # type: ignore[arg-type]
    return RectilinearChunkGridMetadata(chunk_shapes=tuple(chunks))


def metadata_chunks(metadata: ArrayV3Metadata) -> tuple[AxisChunks, ...]:
    """Per-axis chunking of an array (ints for regular axes, tuples for rectilinear)."""
    grid = metadata.chunk_grid
    if isinstance(grid, RegularChunkGridMetadata):
        return tuple(int(c) for c in grid.chunk_shape)
    return tuple(grid.chunk_shapes)


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


def codecs_to_json(metadata: ArrayV3Metadata) -> list[dict[str, Any]]:
    """The codec pipeline as JSON-style dicts (for comparison and writing)."""
    out: list[dict[str, Any]] = []
    for c in metadata.codecs:
        d: dict[str, Any] = dict(c.to_dict())
        out.append({"name": d["name"], "configuration": dict(d.get("configuration") or {})})
    return out


_rectilinear_lock = threading.Lock()
_rectilinear_users = 0
_rectilinear_saved: Any = None


@contextlib.contextmanager
def rectilinear_grids() -> Iterator[None]:
    """A context in which zarr reads and writes rectilinear chunk-grid metadata.

    Zarr 3.4 refuses metadata with a ``rectilinear`` chunk grid unless its
    ``array.rectilinear_chunks`` option is on. Our readers and the engine turn it on
    around what needs it -- parsing a stored ``zarr.json``, opening a virtual array
    through zarr -- and back to the caller's setting after, so callers never have to
    configure zarr and their own configuration is left as it was. Nested and concurrent
    uses (threads reading stores at once) share one activation: the option stays on until
    the last of them ends. (zarr's configuration is process-wide: another thread reading
    metadata meanwhile sees the option on too.)

    Yields
    ------
    None

    Examples
    --------
    >>> with rectilinear_grids():
    ...     zarr.config.get("array.rectilinear_chunks")
    True
    """
    global _rectilinear_users, _rectilinear_saved
    with _rectilinear_lock:
        if _rectilinear_users == 0:
            _rectilinear_saved = zarr.config.get("array.rectilinear_chunks")
            zarr.config.set({"array.rectilinear_chunks": True})
        _rectilinear_users += 1
    try:
        yield
    finally:
        with _rectilinear_lock:
            _rectilinear_users -= 1
            if _rectilinear_users == 0:
                zarr.config.set({"array.rectilinear_chunks": _rectilinear_saved})
