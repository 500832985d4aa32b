"""The HDF5 / netCDF4 reader: chunk locations and Zarr metadata from h5py.

For each dataset of a group we record where its chunks are (large chunk indexes are read
from the file's bytes with NumPy by :mod:`~virtualizarr.readers._hdf5_chunk_index`, small
or unusual ones with one ``chunk_iter`` pass), map its filter pipeline to Zarr v3 codecs,
and name its dimensions and convert its attributes exactly as ``xr.open_dataset(path,
engine="netcdf4")`` (netCDF-C) does. Data that cannot be referenced byte for byte -- compact
datasets, strings, filters without a matching codec, chunks written with a skipped
optional filter -- are read and stored inline in the manifest, within limits.

Layouts
    chunked (missing chunks read as the HDF5 fill value), contiguous (one chunk; never
    written -> missing), compact (inline), virtual and external (inline when small).
Types
    integers and floats of either byte order, enums and h5py booleans (as their base
    integer type, as netCDF-C shows them), ``char`` arrays (``S1``), fixed- and
    variable-length strings (inline, ``vlen-utf8``). Compounds are refused.
    References and opaque datasets are skipped, as netCDF-C skips them.
"""

from __future__ import annotations

import itertools
import math
import os
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import h5py
import numcodecs
import numpy as np
import numpy.typing as npt
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr import io
from virtualizarr.errors import (
    FileFormatError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.manifests import (
    MISSING,
    ChunkManifest,
    ManifestArray,
    cf_encoding_attrs,
    make_array_metadata,
)
from virtualizarr.readers._hdf5_attrs import ObjAttrs, plain_dtype
from virtualizarr.readers._hdf5_chunk_index import ChunkColumns, read_chunk_index
from virtualizarr.readers._hdf5_dims import (
    NON_COORD_PREFIX,
    DimInfo,
    FileDims,
    H5Var,
    scan_dims,
)
from virtualizarr.readers._hdf5_filters import (
    CodecConfig,
    pipeline_codecs,
    reencode_chunk,
)
from virtualizarr.readers._hdf5_heap_guard import heap_guard_for, object_address
from virtualizarr.readers.base import (
    VirtualGroup,
    VirtualVariable,
    check_grid_cells,
    register_reader,
)

__all__ = ["DEFAULT_INLINE_THRESHOLD", "HDF5_SIGNATURE", "HDF5Reader"]

HDF5_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
"""The eight bytes an HDF5 superblock starts with."""

DEFAULT_INLINE_THRESHOLD: Final = 1 << 20
"""Largest uncompressed size (bytes) of a variable we read and inline when its bytes
cannot be referenced (unmappable filter, virtual or external layout, compound type)."""

_Data = tuple[ArrayV3Metadata, ChunkManifest]
"""A variable's Zarr array metadata and chunk manifest."""

_LAYOUT_COMPACT: Final = 0
_LAYOUT_CONTIGUOUS: Final = 1
_LAYOUT_CHUNKED: Final = 2


# ---------------------------------------------------------------------- file access seam
def local_path(path: str) -> str:
    """The local filesystem path of ``path`` (a plain path or a ``file://`` URI).

    Parameters
    ----------
    path : str

    Returns
    -------
    str

    Raises
    ------
    UnsupportedFeatureError
        For remote URLs, which this reader does not open yet.
    """
    parsed = urllib.parse.urlparse(path)
    if parsed.scheme == "file":
        return urllib.request.url2pathname(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise UnsupportedFeatureError(
            f"the HDF5 reader opens local files only; got {path!r}. Copy the file locally "
            "or use a reader that supports this protocol."
        )
    return path


def source_uri(path: str) -> str:
    """The absolute ``file://`` URI recorded in manifests for ``path``.

    Parameters
    ----------
    path : str
        A local path (relative ones resolve against the working directory) or URI.

    Returns
    -------
    str

    Examples
    --------
    >>> source_uri("/data/a b.nc")
    'file:///data/a%20b.nc'
    """
    if not io.is_local(path):
        return path
    return Path(local_path(path)).resolve().as_uri()


def open_h5(path: str, storage_options: dict[str, Any] | None = None) -> h5py.File:
    """Open ``path`` with h5py for reading; the one place that turns a path into a file.

    Remote URLs are handed to h5py as an fsspec file object whose reads are served from
    large cached blocks (:func:`virtualizarr.io.open_remote`), so parsing the metadata
    costs a few ranged requests, not one per HDF5 object.

    Parameters
    ----------
    path : str
        Local path, ``file://`` URI or fsspec URL (``s3://``, ``https://``, ...).
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    h5py.File

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FileFormatError
        If it exists but is not a readable HDF5 file.
    """
    return _open_h5(path, storage_options)[0]


class FileBytes:
    """Reads of the file h5py has open, for the chunk-index parser: ``os.pread`` on a
    local file (opened again on first use), ``seek`` and ``read`` on the fsspec file object
    h5py reads a remote file through (h5py seeks before each of its own reads too).
    """

    def __init__(self, path: str | None = None, fobj: Any = None) -> None:
        self._path, self._fobj, self._fd = path, fobj, -1
        self.size = -1
        """The file's size in bytes (-1 until :meth:`open` succeeds)."""

    def open(self) -> bool:
        """Get ready to read; False if the file cannot be read this way."""
        try:
            if self.size < 0 and self._path is not None and hasattr(os, "pread"):
                self._fd = os.open(self._path, os.O_RDONLY)
                self.size = os.fstat(self._fd).st_size
            elif self.size < 0 and self._fobj is not None:
                self.size = int(self._fobj.size)
        except (OSError, AttributeError, TypeError, ValueError):
            self.close()
        return self.size >= 0

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer at the end of the file)."""
        if self._fd >= 0:
            return os.pread(self._fd, size, offset)
        self._fobj.seek(offset)
        return bytes(self._fobj.read(size))

    def close(self) -> None:
        """Close the local file descriptor (the remote file object belongs to h5py)."""
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self.size = -1, -1


def _open_h5(
    path: str, storage_options: dict[str, Any] | None = None
) -> tuple[h5py.File, FileBytes]:
    """:func:`open_h5`, also returning the :class:`FileBytes` of the same file."""
    try:
        if not io.is_local(path):
            fobj = io.open_remote(path, storage_options)
            try:
                h5 = h5py.File(fobj, "r")
            except BaseException:
                fobj.close()
                raise
            weakref.finalize(h5, fobj.close)
            return h5, FileBytes(fobj=fobj)
        local = local_path(path)
        return h5py.File(local, "r"), FileBytes(path=local)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileFormatError(
            f"{path} is not a readable HDF5/netCDF4 file ({e}). Check that it is complete "
            "(not truncated by an interrupted download) and really HDF5; pass filetype= "
            "to choose another reader."
        ) from None


# ---------------------------------------------------------------------- the reader
class HDF5Reader:
    """Reader for HDF5 files, netCDF4 files included.

    Options accepted by :meth:`open`: ``drop_variables`` and ``inline_threshold``
    (bytes; default :data:`DEFAULT_INLINE_THRESHOLD`).

    Examples
    --------
    >>> HDF5Reader().guess_can_open(b"\\x89HDF\\r\\n\\x1a\\n", "x.nc")
    True
    """

    name = "hdf5"

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True if ``magic`` (a file's first bytes) is the HDF5 signature.

        Files with a user block put the signature at byte 512, 1024, ...; open those
        with ``filetype="hdf5"``.

        Parameters
        ----------
        magic : bytes
            The file's first bytes (at least eight).
        path : str
            The file's path or URI (unused: HDF5 files carry many suffixes).

        Returns
        -------
        bool
        """
        return magic[:8] == HDF5_SIGNATURE

    def open(
        self,
        path: str,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] | str | None = None,
        inline_threshold: int = DEFAULT_INLINE_THRESHOLD,
        storage_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> VirtualGroup:
        """Describe one group of an HDF5 file as virtual variables.

        Parameters
        ----------
        path : str
            Local path or ``file://`` URI.
        group : str, optional
            Path of the group to open (``"a/b"``); the root group by default.
        drop_variables : str or iterable of str, optional
            Variables to leave out (nothing is read for them).
        inline_threshold : int
            Largest uncompressed size in bytes of a variable that is read and stored
            inline when its chunks cannot be referenced.
        storage_options : dict, optional
            fsspec options for a remote ``path`` (credentials, endpoint).
        **options
            Not accepted: unknown options raise ``TypeError``.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        FileFormatError
            If the file is not readable HDF5, or ``group`` does not exist.
        UnsupportedFeatureError
            If a variable uses a filter or type that can be neither referenced nor
            inlined; the message names the variable and the way out.
        """
        if options:
            raise UnexpectedOptionError(
                f"HDF5Reader.open() got unexpected options {sorted(options)}; it accepts "
                "group, drop_variables, inline_threshold and storage_options."
            )
        drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
        uri = source_uri(path)
        h5, source = _open_h5(path, storage_options)
        with h5 as f:
            try:
                return _read_group(f, path, uri, group, drop, inline_threshold, source)
            except VirtualiZarrError:
                raise
            except _H5_ERRORS as e:
                raise FileFormatError(
                    f"{path}: could not read the HDF5 metadata ({type(e).__name__}: {e}). "
                    "The file may be truncated or corrupt; check it with h5dump or ncdump."
                ) from e
            finally:
                source.close()


_H5_ERRORS: Final = (OSError, RuntimeError, KeyError, TypeError, ValueError, IndexError)
"""What h5py raises for corrupt metadata: HDF5 errors map to OSError/KeyError/
RuntimeError/ValueError, and type conversion of a damaged datatype to TypeError/ValueError."""


def _find_group(f: h5py.File, path: str, group: str | None) -> h5py.Group:
    if group in (None, "", "/"):
        return f
    name = "/" + str(group).strip("/")
    obj = f.get(name)
    if isinstance(obj, h5py.Group):
        return obj
    found: list[str] = []
    f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Group) else None)
    raise FileFormatError(
        f"{path} has no group {group!r}; its groups are {['/', *found]}. Pass one of them "
        "as group=."
    )


def _read_group(
    f: h5py.File,
    path: str,
    uri: str,
    group: str | None,
    drop: set[str],
    inline_threshold: int,
    source: FileBytes | None = None,
) -> VirtualGroup:
    grp = _find_group(f, path, group)
    try:
        file_dims = scan_dims(f, heap_guard_for(f, path, source))
    except VirtualiZarrError:
        raise
    except _H5_ERRORS as e:
        raise FileFormatError(
            f"{path}: could not resolve the dimensions of its variables: reading the groups, "
            f"datasets and dimension scales failed ({type(e).__name__}: {e}). The file is "
            "probably truncated or corrupt; check it with h5dump or ncdump."
        ) from e
    variables: dict[str, VirtualVariable] = {}
    gpath = grp.name
    for obj in file_dims.members.get(gpath, []):
        name = obj.path.rsplit("/", 1)[-1].removeprefix(NON_COORD_PREFIX)
        if name in drop:
            continue
        try:
            var = _read_variable(obj, name, path, uri, file_dims, inline_threshold, source)
        except VirtualiZarrError:
            raise
        except _H5_ERRORS as e:
            raise FileFormatError(
                f"variable {name!r} ({obj.path}) of {path}: could not read its HDF5 metadata "
                f"or chunk index ({type(e).__name__}: {e}). The file is probably truncated or "
                f"corrupt (check it with h5dump); pass drop_variables=[{name!r}] to open the "
                "rest."
            ) from e
        if var is not None:
            variables[name] = var
    group_attrs = file_dims.group_attrs.get(gpath)
    if group_attrs is None:  # a group reached through a soft link: not scanned
        group_attrs = ObjAttrs(grp.id, grp.id.get_create_plist(), f"{gpath!r} of {path}")
    return VirtualGroup(variables, group_attrs.convert(file_dims.enum_types))


# ---------------------------------------------------------------------- one variable
def _read_variable(
    var: H5Var,
    name: str,
    path: str,
    uri: str,
    file_dims: FileDims,
    inline_threshold: int,
    source: FileBytes | None = None,
) -> VirtualVariable | None:
    tid, cls = var.tid, var.cls
    if cls in (h5py.h5t.REFERENCE, h5py.h5t.OPAQUE):
        return None  # netCDF-C does not show these either
    where = f"variable {name!r} ({var.path}) of {path}"
    if var.shape is None:
        raise UnsupportedFeatureError(
            f"{where} has an empty (null) dataspace: it holds no values and netCDF cannot "
            f"represent it (netCDF-C refuses the whole file). Pass drop_variables=[{name!r}]."
        )
    shape = tuple(int(s) for s in var.shape)
    dims = file_dims.by_path.get(var.path) or DimInfo(
        tuple(f"phony_dim_{i}" for i in range(len(shape))), shape
    )
    attrs = var.attrs.convert(file_dims.enum_types)

    string_info = h5py.check_string_dtype(var.dsid.dtype) if cls == h5py.h5t.STRING else None
    if (
        cls == h5py.h5t.STRING
        and string_info is not None
        and (string_info.length is None or string_info.length > 1)
    ):
        data = _inline_strings(h5py.Dataset(var.dsid), shape, dims, where, inline_threshold)
    elif cls == h5py.h5t.COMPOUND:
        raise UnsupportedFeatureError(
            f"{where} has a compound (structured) type {var.dsid.dtype}, which the Zarr "
            f"references cannot describe yet. Pass drop_variables=[{name!r}], or read it "
            "with h5py."
        )
    elif cls in (h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.ENUM, h5py.h5t.STRING):
        h5dtype = plain_dtype(tid, cls) or var.dsid.dtype  # the cached translation
        stored = _stored_dtype(h5dtype, tid, cls)
        data = _numeric(var, h5dtype, stored, shape, dims, uri, where, inline_threshold, source)
    else:
        raise UnsupportedFeatureError(
            f"{where} has an HDF5 type ({var.dsid.dtype}) that netCDF and Zarr cannot "
            "describe. "
            f"Pass drop_variables=[{name!r}]."
        )
    meta, manifest = data
    array = ManifestArray(meta, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims.names, array, attrs)


def _stored_dtype(h5dtype: np.dtype[Any], tid: Any, cls: int) -> np.dtype[Any]:
    """The dtype of the bytes on disk (enums and booleans as their base integer type)."""
    if cls == h5py.h5t.ENUM:
        base: np.dtype[Any] = np.dtype(tid.get_super().dtype.str)
        return base
    if cls == h5py.h5t.STRING:
        return np.dtype("S1")
    plain: np.dtype[Any] = np.dtype(h5dtype.str)
    return plain


def _fill_value(h5dtype: np.dtype[Any], dcpl: Any, stored: np.dtype[Any]) -> Any:
    """The dataset's fill value as ``h5py.Dataset.fillvalue`` reads it, as ``stored``."""
    arr = np.zeros((1,), dtype=h5dtype)
    dcpl.get_fill_value(arr)
    fv = arr[0]
    if stored.kind == "S":
        return bytes(np.asarray(fv, dtype=stored).tobytes())
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


def _inline_strings(
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
    values = np.ascontiguousarray(np.asarray(dset[()]).astype(stored, copy=False))
    chunks, manifest = _single(shape, dims.shape, values.tobytes() if values.size else None)
    meta = make_array_metadata(
        shape=dims.shape,
        dtype=stored,
        chunks=chunks,
        fill_value=_fill_value(dset.dtype, dset.id.get_create_plist(), stored),
        dimension_names=dims.names,
    )
    return meta, manifest


def _numeric(
    var: H5Var,
    h5dtype: np.dtype[Any],
    stored: np.dtype[Any],
    shape: tuple[int, ...],
    dims: DimInfo,
    uri: str,
    where: str,
    inline_threshold: int,
    source: FileBytes | None = None,
) -> _Data:
    dsid, dcpl = var.dsid, var.dcpl
    layout = dcpl.get_layout()
    if dcpl.get_external_count() > 0:
        return _inline_values(
            h5py.Dataset(dsid), stored, shape, dims, where, inline_threshold, "external storage"
        )
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
    source: FileBytes | None = None,
) -> ChunkManifest:
    """Chunk locations as grid-shaped NumPy arrays.

    Many chunks are read from the file's chunk index with NumPy
    (:mod:`~virtualizarr.readers._hdf5_chunk_index`); few, or an index that module does
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
    var: H5Var, shape: tuple[int, ...], chunks: tuple[int, ...], source: FileBytes
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
    except _H5_ERRORS:
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
    except _H5_ERRORS:
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


register_reader(HDF5Reader())
