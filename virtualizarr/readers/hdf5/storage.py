"""How an HDF5 dataset's values are stored, as a chunk manifest and Zarr metadata.

Chunked datasets: chunk locations from the file's chunk index -- large indexes read from
the bytes with NumPy by :mod:`~virtualizarr.readers.hdf5.chunk_index` (cross-checked
against libhdf5 on one chunk), small or unusual ones from one ``chunk_iter`` pass; chunks
written with a skipped optional filter are re-encoded and inlined. Contiguous datasets are
one chunk (never written: missing). Compact datasets, external and virtual layouts, and
filters without a byte-compatible codec are read and inlined, within
``inline_threshold``. Missing chunks read as the HDF5 fill value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, Final

import h5py
import numcodecs
import numpy as np
import numpy.typing as npt

from virtualizarr.errors import FileFormatError, UnsupportedFeatureError
from virtualizarr.manifests import MISSING, ArrayMetadata, ChunkManifest, make_array_metadata
from virtualizarr.readers.base import check_grid_cells
from virtualizarr.readers.hdf5.chunk_index import ChunkColumns, read_chunk_index
from virtualizarr.readers.hdf5.dims import DimInfo, H5Var
from virtualizarr.readers.hdf5.filters import CodecConfig, pipeline_codecs, reencode_chunk
from virtualizarr.readers.hdf5.heap_guard import object_address
from virtualizarr.readers.hdf5.objects import H5_ERRORS

__all__ = [
    "DEFAULT_INLINE_THRESHOLD",
    "ByteReader",
    "compound_layout",
    "inline_strings",
    "numeric_data",
    "stored_dtype",
]

DEFAULT_INLINE_THRESHOLD: Final = 1 << 20
"""Largest uncompressed size (bytes) of a variable we read and inline when its bytes
cannot be referenced (unmappable filter, virtual or external layout)."""

_Data = tuple[ArrayMetadata, ChunkManifest]
"""A variable's Zarr array metadata and chunk manifest."""

_LAYOUT_COMPACT: Final = 0
_LAYOUT_CONTIGUOUS: Final = 1
_LAYOUT_CHUNKED: Final = 2


class ByteReader:
    """Reads of the open HDF5 file at absolute offsets, for the parsers that read the
    file's bytes themselves (chunk index, heap guard).

    Parameters
    ----------
    read : callable
        ``read(offset, size)``: up to ``size`` bytes (fewer at the end of the file).
    size_of : callable
        Returns the file's size in bytes; may raise ``OSError``.
    """

    def __init__(self, read: Callable[[int, int], bytes], size_of: Callable[[], int]) -> None:
        self.read = read
        self._size_of = size_of
        self.size = -1
        """The file's size in bytes (-1 until :meth:`open` succeeds)."""

    def open(self) -> bool:
        """Get ready to read; False if the file cannot be read this way."""
        if self.size < 0:
            try:
                self.size = int(self._size_of())
            except (OSError, AttributeError, TypeError, ValueError):
                return False
        return True


def stored_dtype(h5dtype: np.dtype[Any], tid: Any, cls: int) -> np.dtype[Any]:
    """The dtype of the bytes on disk (enums and booleans as their base integer type)."""
    if cls == h5py.h5t.ENUM:
        base: np.dtype[Any] = np.dtype(tid.get_super().dtype.str)
        return base
    if cls == h5py.h5t.STRING:
        return np.dtype("S1")
    plain: np.dtype[Any] = np.dtype(h5dtype.str)
    return plain


def compound_layout(h5dtype: np.dtype[Any], where: str, name: str) -> tuple[np.dtype[Any], bool]:
    """How a compound dataset's values can be described: ``(dtype, referencable)``.

    h5py already gives complex numbers stored its way (compound ``{r, i}`` of two equal
    floats) as ``complex64``/``complex128``: their bytes are exactly NumPy's, so they are
    referenced. A compound of plain fields (integers, floats, fixed-length bytes, with
    no nesting) is a structured dtype; its bytes can be referenced when the fields are
    packed in order with no padding and stored little-endian (what Zarr's v2 and v3
    structured types describe). Otherwise the values are read and stored inline as that
    packed little-endian dtype (``referencable`` False).

    Parameters
    ----------
    h5dtype : numpy.dtype
        The dataset's dtype as h5py translates it (file offsets and byte orders).
    where, name : str
        The variable, for messages.

    Returns
    -------
    (numpy.dtype, bool)

    Raises
    ------
    UnsupportedFeatureError
        For fields that are variable-length (their values live in the global heap, not
        in byte ranges), nested compounds or arrays, or of other classes.
    """
    if h5dtype.kind == "c":
        return h5dtype, True
    fields: list[tuple[str, np.dtype[Any]]] = []
    for field, (ftype, _offset, *_rest) in (h5dtype.fields or {}).items():
        if ftype.hasobject or ftype.kind not in "iufcSb" or ftype.subdtype is not None:
            what = (
                "variable-length (its values live in HDF5's global heap, not in byte ranges)"
                if ftype.hasobject
                else f"of type {ftype}"
            )
            raise UnsupportedFeatureError(
                f"{where} has a compound type whose field {field!r} is {what}, which a Zarr "
                f"structured type cannot describe. Pass drop_variables=[{name!r}], or read "
                "it with h5py."
            )
        fields.append((field, ftype.newbyteorder("<") if ftype.itemsize > 1 else ftype))
    packed = np.dtype(fields)
    return packed, bool(h5dtype == packed and h5dtype.itemsize == packed.itemsize)


def _fill_value(h5dtype: np.dtype[Any], dcpl: Any, stored: np.dtype[Any]) -> Any:
    """What unwritten chunks read as, as ``stored``: ``h5py.Dataset.fillvalue``, or zeros.

    With fill time "never" HDF5 leaves the reader's buffer as it was for chunks never
    written; h5py's buffers start as zeros, and netCDF-C shows zeros too, so those chunks
    read as zeros rather than the declared fill value.
    """
    arr = np.zeros((1,), dtype=h5dtype)
    if dcpl.get_fill_time() != h5py.h5d.FILL_TIME_NEVER:
        dcpl.get_fill_value(arr)
    fv = arr[0]
    if stored.kind == "S":
        return bytes(np.asarray(fv, dtype=stored).tobytes())
    if stored.fields is not None:
        return np.asarray(fv).astype(stored)[()]
    return np.asarray(fv).astype(stored).item()


def _check_stored_size(
    where: str, how: str, size: int, shape: tuple[int, ...], stored: np.dtype[Any]
) -> None:
    """Refuse a single-block layout whose byte count does not match shape and type."""
    expected = math.prod(shape) * stored.itemsize
    if size != expected:
        raise FileFormatError(
            f"{where} is stored {how} in {size} bytes, but its shape {shape} and type "
            f"{stored} need {expected}. The file is corrupt (its dataspace or layout message "
            "is damaged); check it with h5dump."
        )


def _chunks_for(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(1, s) for s in shape)


def _grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))


def _single(
    shape: tuple[int, ...], target: tuple[int, ...], chunk: bytes | None
) -> tuple[tuple[int, ...], ChunkManifest]:
    """One inline chunk covering the stored shape, padded with missing chunks."""
    chunks = _chunks_for(shape)
    cells = np.full(_grid(target, chunks), None, dtype=object)
    if chunk is not None and cells.size and all(shape):
        cells[(0,) * len(shape)] = chunk
    return chunks, ChunkManifest.inlined(cells)


def inline_strings(
    dset: h5py.Dataset,
    shape: tuple[int, ...],
    dims: DimInfo,
    where: str,
    inline_threshold: int,
) -> _Data:
    # at least a pointer per element in memory: bound the read before h5py allocates it
    nbytes = math.prod(shape) * max(dset.dtype.itemsize, 8)
    if nbytes > inline_threshold:
        raise UnsupportedFeatureError(
            f"{where} holds {math.prod(shape)} strings, which are stored inline, and at "
            f"{nbytes} bytes or more they exceed inline_threshold={inline_threshold}. Pass "
            f"drop_variables=[{dset.name.rsplit('/', 1)[-1]!r}] or raise inline_threshold."
        )
    values = np.asarray(dset.asstr(errors="replace")[()], dtype=object).reshape(shape)
    chunk = bytes(numcodecs.VLenUTF8().encode(values)) if values.size else None
    chunks, manifest = _single(shape, dims.shape, chunk)
    meta = make_array_metadata(
        shape=dims.shape,
        dtype=np.dtype("O"),
        chunks=chunks,
        fill_value="",
        dimension_names=dims.names,
    )
    return meta, manifest


def _inline_values(
    dset: h5py.Dataset,
    stored: np.dtype[Any],
    shape: tuple[int, ...],
    dims: DimInfo,
    where: str,
    inline_threshold: int,
    why: str,
) -> _Data:
    nbytes = math.prod(shape) * stored.itemsize
    if nbytes > inline_threshold:
        raise UnsupportedFeatureError(
            f"{where} uses {why}, which no Zarr codec reads from the original bytes, and "
            f"at {nbytes} bytes it is larger than inline_threshold={inline_threshold}. Pass "
            f"drop_variables=[{dset.name.rsplit('/', 1)[-1]!r}], load it as a loadable "
            "variable, or raise inline_threshold to store its values in the references."
        )
    raw = np.asarray(dset[()])
    if stored.fields is not None:  # repack field by field (h5py gives the file's layout)
        values = np.empty(raw.shape, dtype=stored)
        for field in stored.fields:
            values[field] = raw[field]
    else:
        values = np.ascontiguousarray(raw.astype(stored, copy=False))
    chunks, manifest = _single(shape, dims.shape, values.tobytes() if values.size else None)
    meta = make_array_metadata(
        shape=dims.shape,
        dtype=stored,
        chunks=chunks,
        fill_value=_fill_value(dset.dtype, dset.id.get_create_plist(), stored),
        dimension_names=dims.names,
    )
    return meta, manifest


def numeric_data(
    var: H5Var,
    h5dtype: np.dtype[Any],
    stored: np.dtype[Any],
    shape: tuple[int, ...],
    dims: DimInfo,
    uri: str,
    where: str,
    inline_threshold: int,
    source: ByteReader | None = None,
) -> _Data:
    dsid, dcpl = var.dsid, var.dcpl
    layout = dcpl.get_layout()
    if dcpl.get_external_count() > 0:
        return _inline_values(
            h5py.Dataset(dsid), stored, shape, dims, where, inline_threshold, "external storage"
        )
    if stored.fields is not None and (h5dtype != stored or h5dtype.itemsize != stored.itemsize):
        why = "a compound type with padding between fields or big-endian fields"
        return _inline_values(h5py.Dataset(dsid), stored, shape, dims, where, inline_threshold, why)
    codecs: tuple[CodecConfig, ...] = ()
    if layout == _LAYOUT_CHUNKED:
        filters = [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())]
        pipeline = pipeline_codecs(
            [(int(fid), tuple(cd)) for fid, _, cd in filters], stored.itemsize
        )
        if pipeline.unmappable is not None:
            label = f"the HDF5 filter {pipeline.unmappable.describe()}"
            return _inline_values(
                h5py.Dataset(dsid), stored, shape, dims, where, inline_threshold, label
            )
        codecs = pipeline.codecs
        chunks = tuple(int(c) for c in dcpl.get_chunk())
        manifest = _chunked_manifest(var, shape, dims.shape, chunks, uri, codecs, source)
    elif layout == _LAYOUT_CONTIGUOUS:
        chunks = _chunks_for(shape)
        offset = dsid.get_offset()
        size = dsid.get_storage_size()
        grid = _grid(dims.shape, chunks)
        ids = np.full(grid, MISSING, np.int32)
        offsets = np.zeros(grid, np.uint64)
        lengths = np.zeros(grid, np.uint64)
        if offset is not None and size and all(shape):
            _check_stored_size(where, "contiguously", size, shape, stored)
            ids[(0,) * len(grid)] = 0
            offsets[(0,) * len(grid)] = offset
            lengths[(0,) * len(grid)] = size
        manifest = ChunkManifest([uri], ids, offsets, lengths)
    elif layout == _LAYOUT_COMPACT:
        _check_stored_size(where, "compactly", dsid.get_storage_size(), shape, stored)
        values = np.asarray(h5py.Dataset(dsid)[()]).astype(stored, copy=False)
        values = np.ascontiguousarray(values)
        chunks, manifest = _single(shape, dims.shape, values.tobytes() if values.size else None)
    else:
        return _inline_values(
            h5py.Dataset(dsid), stored, shape, dims, where, inline_threshold, "a virtual layout"
        )
    meta = make_array_metadata(
        shape=dims.shape,
        dtype=stored,
        chunks=chunks,
        fill_value=_fill_value(h5dtype, dcpl, stored),
        codecs=codecs,
        dimension_names=dims.names,
    )
    return meta, manifest


def _chunked_manifest(
    var: H5Var,
    shape: tuple[int, ...],
    target: tuple[int, ...],
    chunks: tuple[int, ...],
    uri: str,
    codecs: tuple[CodecConfig, ...],
    source: ByteReader | None = None,
) -> ChunkManifest:
    """Chunk locations as grid-shaped NumPy arrays.

    Many chunks are read from the file's chunk index with NumPy
    (:mod:`~virtualizarr.readers.hdf5.chunk_index`); few, or an index that module does
    not read, come from one ``chunk_iter`` pass.
    """
    grid = _grid(target, chunks)
    stored = _grid(shape, chunks)
    columns = None
    if source is not None and all(shape) and math.prod(stored) > _INDEX_MIN_CHUNKS:
        columns = _index_columns(var, shape, chunks, source)
    infos: list[Any] = []
    if columns is None and all(shape):
        var.dsid.chunk_iter(infos.append)
    n = len(columns) if columns is not None else len(infos)
    check_grid_cells(grid, n, f"variable {var.path!r} of {uri}", FileFormatError)
    ids = np.full(grid, MISSING, np.int32)
    offsets = np.zeros(grid, np.uint64)
    lengths = np.zeros(grid, np.uint64)
    if not n:
        return ChunkManifest([uri], ids, offsets, lengths)
    if columns is None and n <= _FEW_CHUNKS:
        return _few_chunks(var, infos, shape, chunks, uri, codecs, (ids, offsets, lengths))
    if columns is None:
        columns = _infos_columns(infos, len(shape))
    coords, masks = columns.coords, columns.filter_mask
    byte_offsets, sizes = columns.byte_offset, columns.size
    index = np.empty_like(coords)
    inside = sizes > 0
    for d, c in enumerate(chunks):  # column by column: a shift for powers of two
        index[:, d] = (
            coords[:, d] >> (c.bit_length() - 1) if c & (c - 1) == 0 else coords[:, d] // c
        )
        inside &= index[:, d] < stored[d]
    plain = inside & (masks == 0)
    take = slice(None) if plain.all() else plain  # commonly all: no copies of the columns
    flat = np.ravel_multi_index(tuple(index[take].T), grid)
    ids.reshape(-1)[flat] = 0
    offsets.reshape(-1)[flat] = byte_offsets[take]
    lengths.reshape(-1)[flat] = sizes[take]
    inline: list[bytes] = []
    for i in np.flatnonzero(inside & (masks != 0)):
        # an optional filter was skipped for this chunk: re-encode it with all filters
        mask, raw = var.dsid.read_direct_chunk(tuple(int(c) for c in coords[i]))
        ids[tuple(index[i])] = -2 - len(inline)
        inline.append(reencode_chunk(bytes(raw), int(mask), codecs))
    return ChunkManifest([uri], ids, offsets, lengths, inline)


def _infos_columns(infos: list[Any], ndim: int) -> ChunkColumns:
    """``chunk_iter``'s ``StoreInfo`` tuples as columns, transposed in C."""
    n = len(infos)
    # StoreInfo is a named tuple (chunk_offset, filter_mask, byte_offset, size)
    columns = list(zip(*infos, strict=True))
    flat = itertools.chain.from_iterable(columns[0])
    raw = np.fromiter(flat, np.uint64, n * ndim).reshape(n, ndim)
    # offsets past 2**63 (a damaged B-tree key) stay out of the grid, not negative
    coords = np.minimum(raw, np.uint64(2**63 - 1)).astype(np.int64)
    return ChunkColumns(
        coords,
        np.fromiter(columns[1], np.uint32, n),
        np.fromiter(columns[2], np.uint64, n),
        np.fromiter(columns[3], np.uint64, n),
    )


_INDEX_MIN_CHUNKS: Final = 256
"""Chunk grids larger than this are read from the chunk index by our own parser; below,
``chunk_iter`` (a few microseconds per chunk) costs less than the parser's set-up."""


def _index_columns(
    var: H5Var, shape: tuple[int, ...], chunks: tuple[int, ...], source: ByteReader
) -> ChunkColumns | None:
    """The dataset's chunks read by :func:`read_chunk_index`, or None to use chunk_iter.

    The parser's first chunk is checked against HDF5's own lookup of it
    (``get_chunk_info_by_coord``, which walks the index in order: the first chunk costs
    microseconds, the last as much as chunk_iter); any difference means None.
    """
    dsid = var.dsid
    try:
        if not source.open():
            return None
        address = object_address(dsid)
        fid = h5py.h5i.get_file_id(dsid)
        userblock = int(fid.get_create_plist().get_userblock())
        maxdims = dsid.get_space().get_simple_extent_dims(True)
    except H5_ERRORS:
        return None
    maxshape = [None if m == h5py.h5s.UNLIMITED else int(m) for m in maxdims]
    try:
        columns = read_chunk_index(
            source.read,
            header_address=address,
            superblock_at=userblock,
            file_size=source.size,
            shape=shape,
            maxshape=maxshape,
            chunks=chunks,
        )
    except OSError:  # a failed read: let HDF5 try (and report) it
        return None
    if columns is None or not len(columns) or columns.kind == "earray-swizzled":
        # HDF5 2.0 maps chunk coordinates wrongly for an extensible array whose unlimited
        # dimension is not the first, in chunk_iter and get_chunk_info_by_coord alike
        # (its reads and writes agree with the parser: the tests check it on the data)
        return columns
    try:
        info = dsid.get_chunk_info_by_coord(tuple(int(c) for c in columns.coords[0]))
    except H5_ERRORS:
        return None
    first = (int(columns.byte_offset[0]), int(columns.size[0]), int(columns.filter_mask[0]))
    return columns if (info.byte_offset, info.size, info.filter_mask) == first else None


_FEW_CHUNKS: Final = 64
"""Up to this many chunks a plain loop beats a dozen NumPy calls (many small files)."""


def _few_chunks(
    var: H5Var,
    infos: list[Any],
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    uri: str,
    codecs: tuple[CodecConfig, ...],
    arrays: tuple[npt.NDArray[np.int32], npt.NDArray[np.uint64], npt.NDArray[np.uint64]],
) -> ChunkManifest:
    """:func:`_chunked_manifest` for a few chunks: the same result, one chunk at a time."""
    ids, offsets, lengths = arrays
    stored = _grid(shape, chunks)
    inline: list[bytes] = []
    for coord, mask, byte_offset, size in infos:
        index = tuple(int(c) // ch for c, ch in zip(coord, chunks, strict=True))
        if not size or any(i >= g for i, g in zip(index, stored, strict=True)):
            continue
        if mask == 0:
            ids[index] = 0
            offsets[index] = byte_offset
            lengths[index] = size
        else:  # an optional filter was skipped for this chunk: re-encode it
            fmask, raw = var.dsid.read_direct_chunk(tuple(int(c) for c in coord))
            ids[index] = -2 - len(inline)
            inline.append(reencode_chunk(bytes(raw), int(fmask), codecs))
    return ChunkManifest([uri], ids, offsets, lengths, inline)
