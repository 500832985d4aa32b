"""Reader for netCDF3 files: classic (CDF-1), 64-bit offset (CDF-2) and 64-bit data (CDF-5).

netCDF3 stores every variable uncompressed and big-endian, so virtualizing a file needs
only its header (parsed by :mod:`virtualizarr.readers._netcdf3_header`, a pure function
of bytes) and its size:

* a fixed-size variable is one chunk, its whole shape, at ``begin``;
* a record variable (first dimension unlimited) is one chunk per record, of shape
  ``(1, *rest)``, at ``begin + i * recsize`` — records of all record variables
  interleave in the file.

Character arrays (``NC_CHAR``) stay ``S1`` arrays with the string-length dimension, as
the file stores them, so xarray's own decoding turns them into the strings
``xr.open_dataset`` shows. Attributes keep the file's types and values.

Only the header is read: 64 KiB first, then more if the header is longer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np

from virtualizarr import io
from virtualizarr.errors import UnexpectedOptionError, UnsupportedFeatureError
from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    cf_encoding_attrs,
    make_array_metadata,
)
from virtualizarr.readers._netcdf3_header import (
    MAGICS,
    NetCDF3Header,
    NetCDF3Variable,
    VariableLayout,
    _NeedMoreBytes,
    compute_layout,
    default_fill_value,
    parse_header,
)
from virtualizarr.readers.base import VirtualGroup, VirtualVariable, register_reader

__all__ = ["NetCDF3Reader", "parse_header", "read_header", "virtualize_header"]

FIRST_READ: Final = 64 * 1024
"""Bytes read first; most netCDF3 headers are far smaller."""


def _local_path(path: str) -> Path:
    """The local filesystem path of ``path`` (a plain path or a ``file://`` URI)."""
    if not io.is_local(path):
        raise UnsupportedFeatureError(
            f"the netCDF3 reader reads local files only for now; got {path!r}. Download the "
            "file, or pass a local path or a file:// URI."
        )
    return Path(io.local_path(path))


def _file_size(path: str, storage_options: dict[str, Any] | None = None) -> int:
    if not io.is_local(path):
        return int(io.file_info(path, storage_options)["size"])
    return _local_path(path).stat().st_size


def _read_range(
    path: str, offset: int, length: int, storage_options: dict[str, Any] | None = None
) -> bytes:
    """Read exactly ``length`` bytes at ``offset`` of ``path`` (through :mod:`virtualizarr.io`)."""
    if not io.is_local(path):
        return io.read_range(path, offset, length, **(storage_options or {}))
    return io.read_range(io.to_uri(_local_path(path)), offset, length)


def _uri(path: str) -> str:
    """The absolute URI recorded in manifests for ``path``."""
    if not io.is_local(path):
        return path
    return io.to_uri(_local_path(path))


def read_header(
    path: str, first_read: int = FIRST_READ, storage_options: dict[str, Any] | None = None
) -> tuple[NetCDF3Header, int]:
    """Read and parse the header of a netCDF3 file, reading no more than it needs.

    Parameters
    ----------
    path : str
        A local path or a ``file://`` URI.
    first_read : int, optional
        Bytes to read first; the read grows (at least doubling) while the header is
        longer.
    storage_options : dict, optional
        fsspec options for a remote ``path``.

    Returns
    -------
    header : NetCDF3Header
    file_size : int

    Raises
    ------
    FileFormatError
        If the file is not a well-formed netCDF3 file.
    """
    size = _file_size(path, storage_options)
    data = _read_range(path, 0, min(max(first_read, 4), size), storage_options)
    while True:
        try:
            return parse_header(data, size), size
        except _NeedMoreBytes as more:
            want = min(max(more.needed, 2 * len(data)), size)
            data += _read_range(path, len(data), want - len(data), storage_options)


def _zarr_fill_value(v: NetCDF3Variable) -> Any:
    """The Zarr fill value: the file's ``_FillValue`` if usable, else netCDF's default.

    netCDF3 has no missing chunks, so this never shows in values read back.
    """
    dtype = v.dtype
    fv = v.attrs.get("_FillValue")
    if fv is not None:
        if dtype.kind == "S":
            if isinstance(fv, bytes) and len(fv) >= 1:
                return fv[:1]
        else:
            arr = np.asarray(fv)
            if arr.size >= 1 and arr.dtype == dtype.newbyteorder("="):
                return arr.ravel()[0]
    return default_fill_value(v.nc_type)


def virtualize_header(
    header: NetCDF3Header, file_size: int, uri: str, drop_variables: Iterable[str] = ()
) -> VirtualGroup:
    """Turn a parsed header into a :class:`VirtualGroup` whose chunks live in ``uri``.

    Parameters
    ----------
    header : NetCDF3Header
    file_size : int
        Size of the file in bytes.
    uri : str
        The absolute URI recorded for every chunk.
    drop_variables : iterable of str, optional
        Variables to leave out.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    FileFormatError
        If a variable's data lies outside the file.
    """
    _, layouts = compute_layout(header, file_size)
    drop = set(drop_variables)
    variables: dict[str, VirtualVariable] = {}
    for v in header.variables:
        if v.name in drop:
            continue
        lay: VariableLayout = layouts[v.name]
        metadata = make_array_metadata(
            shape=lay.shape,
            dtype=v.dtype,
            chunks=lay.chunks,
            fill_value=_zarr_fill_value(v),
            codecs=(),
            dimension_names=lay.dims,
        )
        manifest = ChunkManifest(
            paths=[uri],
            path_ids=np.zeros(lay.offsets.shape, np.int32),
            offsets=lay.offsets,
            lengths=lay.lengths,
        )
        data = ManifestArray(
            metadata, manifest, name=v.name, encoding_attrs=cf_encoding_attrs(v.attrs)
        )
        variables[v.name] = VirtualVariable(dims=lay.dims, data=data, attrs=dict(v.attrs))
    return VirtualGroup(variables=variables, attrs=dict(header.attrs))


class NetCDF3Reader:
    """Virtualize netCDF3 files (``CDF\\x01``, ``CDF\\x02``, ``CDF\\x05``).

    Examples
    --------
    >>> NetCDF3Reader().guess_can_open(b"CDF\\x02\\x00\\x00\\x00\\x00", "a.nc")
    True
    """

    name = "netcdf3"

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True if ``magic`` (the file's first bytes) starts a netCDF3 file.

        Parameters
        ----------
        magic : bytes
            The file's first bytes (at least 4).
        path : str
            The file's path (unused: netCDF3 is recognised by its magic bytes alone).

        Returns
        -------
        bool
        """
        return bytes(magic[:4]) in MAGICS

    def open(
        self,
        path: str,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        storage_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> VirtualGroup:
        """Read the header of the netCDF3 file ``path`` and describe its variables.

        Only the header's byte range is read (64 KiB first, more while it is longer).

        Parameters
        ----------
        path : str
            A local path, a ``file://`` URI or an fsspec URL (``s3://``, ``https://``).
        group : str, optional
            Must be None, ``""`` or ``"/"``: netCDF3 files have no groups.
        drop_variables : iterable of str, optional
            Variables to leave out.
        storage_options : dict, optional
            fsspec options for a remote ``path``.
        **options
            No other options exist; any given raise ``TypeError``.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileFormatError
            If the file is not a well-formed netCDF3 file.
        UnsupportedFeatureError
            If a group other than the root is asked for.
        TypeError
            For unknown options.
        """
        if group not in (None, "", "/"):
            raise UnsupportedFeatureError(
                f"netCDF3 files have no groups, so group={group!r} cannot be opened in {path}; "
                "pass group=None."
            )
        if options:
            raise UnexpectedOptionError(
                "the netCDF3 reader takes only the option drop_variables; got "
                f"{sorted(options)}. Remove them."
            )
        header, size = read_header(path, storage_options=storage_options)
        return virtualize_header(header, size, _uri(path), drop_variables)


register_reader(NetCDF3Reader())
