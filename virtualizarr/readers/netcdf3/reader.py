"""Reader for netCDF3 files: classic (CDF-1), 64-bit offset (CDF-2) and 64-bit data (CDF-5).

netCDF3 stores every variable uncompressed and big-endian, so virtualizing a file needs
only its header (parsed by :mod:`virtualizarr.readers.netcdf3.header`, a pure function
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
from typing import Any, Final

import numpy as np

from virtualizarr.errors import UnexpectedOptionError, UnsupportedFeatureError
from virtualizarr.io.objects import Location
from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    make_array_metadata,
)
from virtualizarr.readers.base import Probe, Source, require_location
from virtualizarr.readers.netcdf3.header import (
    MAGICS,
    NeedMoreBytes,
    NetCDF3Header,
    NetCDF3Variable,
    VariableLayout,
    compute_layout,
    default_fill_value,
    parse_header,
)

__all__ = ["NetCDF3Reader", "parse_header", "read_header", "virtualize_header"]

FIRST_READ: Final = 64 * 1024
"""Bytes read first; most netCDF3 headers are far smaller."""


def read_header(location: Location, first_read: int = FIRST_READ) -> tuple[NetCDF3Header, int]:
    """Read and parse the header of a netCDF3 file, reading no more than it needs.

    Parameters
    ----------
    location : Location
        The file, local or remote.
    first_read : int, optional
        Bytes to read first; the read grows (at least doubling) while the header is
        longer.

    Returns
    -------
    header : NetCDF3Header
    file_size : int

    Raises
    ------
    FileFormatError
        If the file is not a well-formed netCDF3 file.
    """
    size = location.size()
    data = location.read_range(0, min(max(first_read, 4), size))
    while True:
        try:
            return parse_header(data, size), size
        except NeedMoreBytes as more:
            want = min(max(more.needed, 2 * len(data)), size)
            data += location.read_range(len(data), want - len(data))


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
    aliases: tuple[str, ...] = ()
    references = False

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the probed file starts with a netCDF3 magic number.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        return bytes(probe.head[:4]) in MAGICS

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Read the header of the netCDF3 file ``path`` and describe its variables.

        Only the header's byte range is read (64 KiB first, more while it is longer).

        Parameters
        ----------
        source : Location
            The file, local or remote (its storage options reach it).
        group : str, optional
            Must be None, ``""`` or ``"/"``: netCDF3 files have no groups.
        drop_variables : iterable of str, optional
            Variables to leave out.
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
        location = require_location(source, "netCDF3")
        if group not in (None, "", "/"):
            raise UnsupportedFeatureError(
                f"netCDF3 files have no groups, so group={group!r} cannot be opened in "
                f"{location.url}; pass group=None."
            )
        if options:
            raise UnexpectedOptionError(
                "the netCDF3 reader takes only the option drop_variables; got "
                f"{sorted(options)}. Remove them."
            )
        header, size = read_header(location)
        return virtualize_header(header, size, location.url, drop_variables)


READER = NetCDF3Reader()
"""The registered netCDF3 reader."""
