"""The netCDF3 header (CDF-1, CDF-2 and CDF-5), parsed as a pure function of bytes.

The header grammar is the netCDF classic format specification's::

    header    = magic numrecs dim_list gatt_list var_list
    dim_list  = ABSENT | NC_DIMENSION nelems [dim ...]
    gatt_list = att_list
    att_list  = ABSENT | NC_ATTRIBUTE nelems [attr ...]
    var_list  = ABSENT | NC_VARIABLE nelems [var ...]
    dim       = name dim_length
    attr      = name nc_type nelems [values ...]          (values padded to 4 bytes)
    var       = name nelems [dimid ...] vatt_list nc_type vsize begin
    name      = nelems namestring                         (padded to 4 bytes)

All integers are big-endian. Tags and ``nc_type`` are 4 bytes; counts, lengths, dimension
ids and ``vsize`` are 4 bytes in CDF-1/2 and 8 in CDF-5; ``begin`` is 4 bytes in CDF-1 and
8 in CDF-2/5.

:func:`parse_header` never allocates more than the bytes it was given: every count read
from the header is checked against the bytes left in the file before anything is built
from it. :func:`compute_layout` then derives, with NumPy and no loop per record, where
every chunk of every variable lives, following netCDF-C's own rules (record size, the
packing of a single record variable, streaming ``numrecs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import FileFormatError

__all__ = [
    "MAGICS",
    "NC_TYPES",
    "NeedMoreBytes",
    "NetCDF3Dimension",
    "NetCDF3Header",
    "NetCDF3Variable",
    "VariableLayout",
    "compute_layout",
    "default_fill_value",
    "parse_header",
]

MAGICS: Final = {b"CDF\x01": 1, b"CDF\x02": 2, b"CDF\x05": 5}

_ZERO: Final = 0
_NC_DIMENSION: Final = 0x0A
_NC_VARIABLE: Final = 0x0B
_NC_ATTRIBUTE: Final = 0x0C

NC_TYPES: Final[dict[int, tuple[str, np.dtype[Any]]]] = {
    1: ("NC_BYTE", np.dtype("i1")),
    2: ("NC_CHAR", np.dtype("S1")),
    3: ("NC_SHORT", np.dtype(">i2")),
    4: ("NC_INT", np.dtype(">i4")),
    5: ("NC_FLOAT", np.dtype(">f4")),
    6: ("NC_DOUBLE", np.dtype(">f8")),
    7: ("NC_UBYTE", np.dtype("u1")),
    8: ("NC_USHORT", np.dtype(">u2")),
    9: ("NC_UINT", np.dtype(">u4")),
    10: ("NC_INT64", np.dtype(">i8")),
    11: ("NC_UINT64", np.dtype(">u8")),
}
"""netCDF3 type codes to (name, big-endian NumPy dtype of the stored values)."""

_NC_CHAR: Final = 2

_DEFAULT_FILLS: Final[dict[int, Any]] = {
    1: np.int8(-127),
    2: b"\x00",
    3: np.int16(-32767),
    4: np.int32(-2147483647),
    5: np.float32(9.9692099683868690e36),
    6: np.float64(9.9692099683868690e36),
    7: np.uint8(255),
    8: np.uint16(65535),
    9: np.uint32(4294967295),
    10: np.int64(-9223372036854775806),
    11: np.uint64(18446744073709551614),
}


def default_fill_value(nc_type: int) -> Any:
    """The netCDF default fill value (``NC_FILL_*``) of a netCDF3 type code.

    Parameters
    ----------
    nc_type : int
        A type code, 1 (``NC_BYTE``) to 11 (``NC_UINT64``).

    Returns
    -------
    numpy scalar or bytes
        ``b"\\x00"`` for ``NC_CHAR``, a NumPy scalar of the type otherwise.

    Examples
    --------
    >>> int(default_fill_value(3))
    -32767
    """
    return _DEFAULT_FILLS[nc_type]


class NeedMoreBytes(Exception):
    """The header continues past the bytes given; ``needed`` bytes in all are required."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


@dataclass(frozen=True, slots=True)
class NetCDF3Dimension:
    """One dimension of a netCDF3 file.

    Attributes
    ----------
    name : str
    length : int
        The stored length; 0 for the record (unlimited) dimension.
    """

    name: str
    length: int

    @property
    def is_record(self) -> bool:
        """True for the record (unlimited) dimension."""
        return self.length == 0


@dataclass(frozen=True, slots=True)
class NetCDF3Variable:
    """One variable as its header entry describes it.

    Attributes
    ----------
    name : str
    dim_ids : tuple of int
        Indices into the header's dimensions.
    attrs : dict
        Attributes, typed as ``netCDF4.Dataset`` returns them.
    nc_type : int
        Type code (1 to 11).
    vsize : int
        The ``vsize`` field as stored (informative only: it saturates for large variables,
        so layouts are computed from the shape instead, as netCDF-C does).
    begin : int
        Byte offset of the variable's data (of its first record, for record variables).
    """

    name: str
    dim_ids: tuple[int, ...]
    attrs: dict[str, Any]
    nc_type: int
    vsize: int
    begin: int

    @property
    def dtype(self) -> np.dtype[Any]:
        """Big-endian NumPy dtype of the stored values (``S1`` for ``NC_CHAR``)."""
        return NC_TYPES[self.nc_type][1]


@dataclass(frozen=True, slots=True)
class NetCDF3Header:
    """A parsed netCDF3 header.

    Attributes
    ----------
    version : int
        1 (classic), 2 (64-bit offset) or 5 (64-bit data).
    numrecs : int or None
        Number of records, or None when the file says ``STREAMING`` (derive it from the
        file size with :func:`compute_layout`).
    dimensions : tuple of NetCDF3Dimension
    attrs : dict
        Global attributes.
    variables : tuple of NetCDF3Variable
    size : int
        Number of header bytes (where the header ends).
    """

    version: int
    numrecs: int | None
    dimensions: tuple[NetCDF3Dimension, ...]
    attrs: dict[str, Any]
    variables: tuple[NetCDF3Variable, ...]
    size: int

    @property
    def record_dimension(self) -> str | None:
        """Name of the record dimension, if the file has one."""
        for d in self.dimensions:
            if d.is_record:
                return d.name
        return None


class _Cursor:
    """Reads big-endian fields from ``data``, a prefix of a file of ``file_size`` bytes."""

    __slots__ = ("data", "file_size", "pos", "version", "wide")

    def __init__(self, data: bytes | memoryview, file_size: int, version: int) -> None:
        self.data = memoryview(data)
        self.file_size = file_size
        self.pos = 0
        self.version = version
        self.wide = version == 5  # 8-byte counts and sizes

    def take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            if end > self.file_size:
                raise FileFormatError(
                    f"netCDF3 header truncated: reading {what} needs bytes {self.pos} to {end}, "
                    f"but the file has only {self.file_size} bytes. The file is incomplete or "
                    "not a netCDF3 file; re-download or regenerate it."
                )
            raise NeedMoreBytes(end)
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def remaining(self) -> int:
        return self.file_size - self.pos

    def uint(self, nbytes: int, what: str) -> int:
        return int.from_bytes(self.take(nbytes, what), "big", signed=False)

    def tag(self, what: str) -> int:
        return self.uint(4, what)

    def non_neg(self, what: str) -> int:
        """A count or size: 4 bytes (CDF-1/2) or 8 (CDF-5), unsigned."""
        return self.uint(8 if self.wide else 4, what)

    def offset(self, what: str) -> int:
        n = 4 if self.version == 1 else 8
        at = self.pos
        value = int.from_bytes(self.take(n, what), "big", signed=True)
        if value < 0:
            raise FileFormatError(
                f"netCDF3 header: {what} at byte {at} must be a non-negative offset; found "
                f"{value}. The file is corrupt."
            )
        return value

    def check_count(self, count: int, min_bytes_each: int, what: str) -> None:
        """Refuse a count whose entries could not fit in the rest of the file."""
        if count * min_bytes_each > self.remaining():
            raise FileFormatError(
                f"netCDF3 header at byte {self.pos}: {what} claims {count} entries of at "
                f"least {min_bytes_each} bytes each, but only {self.remaining()} bytes remain "
                "in the file. The header is corrupt or the file truncated."
            )

    def padded(self, n: int, what: str) -> memoryview:
        """``n`` bytes followed by padding to a multiple of 4."""
        self.check_count(n, 1, what)
        out = self.take(n, what)
        self.take(-n % 4, what)
        return out

    def name(self, what: str) -> str:
        n = self.non_neg(f"the length of {what}")
        raw = self.padded(n, what)
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FileFormatError(
                f"netCDF3 header: {what} must be UTF-8; found {bytes(raw)[:40]!r} ({e}). The "
                "file is corrupt."
            ) from None

    def list_header(self, expected_tag: int, what: str) -> int:
        """Read a list's tag and count; ``ABSENT`` (zero tag, zero count) gives 0."""
        at = self.pos
        tag = self.tag(f"the {what} tag")
        count = self.non_neg(f"the number of {what}")
        if tag == expected_tag or (tag == _ZERO and count == 0):
            return count
        raise FileFormatError(
            f"netCDF3 header at byte {at}: expected the {what} tag 0x{expected_tag:08X} or "
            f"ABSENT (0x00000000 and a zero count); found tag 0x{tag:08X} with count {count}. "
            "The file is corrupt or not a netCDF3 file."
        )

    def nc_type(self, what: str) -> int:
        at = self.pos
        t = self.tag(f"the type of {what}")
        if t not in NC_TYPES:
            raise FileFormatError(
                f"netCDF3 header at byte {at}: the type of {what} must be a netCDF3 type code "
                f"1 to 11 (NC_BYTE ... NC_UINT64); found {t}. The file is corrupt or uses "
                "a type netCDF3 does not have."
            )
        return t


def _attr_value(name: str, nc_type: int, raw: memoryview, count: int) -> Any:
    """An attribute value typed as ``netCDF4`` (and so ``xr.open_dataset``) shows it."""
    if nc_type == _NC_CHAR:
        b = bytes(raw)
        if name == "_FillValue":
            return np.bytes_(b)
        return b.decode("utf-8", errors="replace").replace("\x00", "")
    dtype = NC_TYPES[nc_type][1]
    arr = np.frombuffer(raw, dtype=dtype, count=count).astype(dtype.newbyteorder("="))
    if count == 1:
        return arr[0]
    return arr


def _attributes(cur: _Cursor, owner: str) -> dict[str, Any]:
    count = cur.list_header(_NC_ATTRIBUTE, f"attributes of {owner}")
    width = 8 if cur.wide else 4
    cur.check_count(count, 2 * width + 4, f"the attribute list of {owner}")
    attrs: dict[str, Any] = {}
    for _ in range(count):
        name = cur.name(f"an attribute name of {owner}")
        what = f"attribute {name!r} of {owner}"
        nc_type = cur.nc_type(what)
        nelems = cur.non_neg(f"the number of values of {what}")
        itemsize = NC_TYPES[nc_type][1].itemsize
        cur.check_count(nelems, itemsize, f"the values of {what}")
        raw = cur.padded(nelems * itemsize, f"the values of {what}")
        if name in attrs:
            raise FileFormatError(
                f"netCDF3 header: {owner} has two attributes named {name!r}; expected unique "
                "names. The file is corrupt."
            )
        attrs[name] = _attr_value(name, nc_type, raw, nelems)
    return attrs


def parse_header(data: bytes | memoryview, file_size: int | None = None) -> NetCDF3Header:
    """Parse a netCDF3 header from the first bytes of a file.

    Parameters
    ----------
    data : bytes
        The file's first bytes (all of them, or at least the whole header).
    file_size : int, optional
        The file's total size; defaults to ``len(data)`` (``data`` is the whole file).
        When larger than ``len(data)`` and the header runs past ``data``, a private
        ``NeedMoreBytes`` carrying the number of bytes needed is raised so the caller
        can read more and parse again.

    Returns
    -------
    NetCDF3Header

    Raises
    ------
    FileFormatError
        If the bytes are not a well-formed netCDF3 header: wrong magic, truncated, an
        unknown tag or type, or a count that would need more bytes than the file has.

    Examples
    --------
    >>> h = parse_header(b"CDF\\x01" + b"\\x00" * 28)
    >>> (h.version, h.numrecs, h.variables)
    (1, 0, ())
    """
    size = len(data) if file_size is None else max(int(file_size), len(data))
    magic = bytes(data[:4])
    if len(magic) < 4 and size > len(magic):
        raise NeedMoreBytes(4)
    if magic not in MAGICS:
        raise FileFormatError(
            f"expected a netCDF3 file starting with b'CDF\\x01', b'CDF\\x02' or b'CDF\\x05'; "
            f"found {magic!r}. Pass the right filetype= or check the file is netCDF3 "
            "(netCDF4/HDF5 files start with b'\\x89HDF')."
        )
    version = MAGICS[magic]
    cur = _Cursor(data, size, version)
    cur.pos = 4
    raw_numrecs = cur.non_neg("numrecs")
    numrecs: int | None = raw_numrecs
    if raw_numrecs == (1 << (64 if cur.wide else 32)) - 1:
        numrecs = None  # STREAMING
    width = 8 if cur.wide else 4
    begin_width = 4 if version == 1 else 8

    # dimensions
    ndims = cur.list_header(_NC_DIMENSION, "dimensions")
    cur.check_count(ndims, 2 * width, "the dimension list")
    dims: list[NetCDF3Dimension] = []
    for _ in range(ndims):
        name = cur.name("a dimension name")
        length = cur.non_neg(f"the length of dimension {name!r}")
        dims.append(NetCDF3Dimension(name, length))
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise FileFormatError(
            f"netCDF3 header: dimension names must be unique; found {names}. The file is corrupt."
        )
    n_rec = sum(d.is_record for d in dims)
    if n_rec > 1:
        raise FileFormatError(
            "netCDF3 files have at most one record (unlimited) dimension; found "
            f"{[d.name for d in dims if d.is_record]} with length 0. The file is corrupt."
        )

    gattrs = _attributes(cur, "the file (global attributes)")

    # variables
    nvars = cur.list_header(_NC_VARIABLE, "variables")
    # name length, ndims, an ABSENT attribute list (tag, count), nc_type, vsize, begin
    cur.check_count(nvars, 4 * width + 8 + begin_width, "the variable list")
    variables: list[NetCDF3Variable] = []
    seen: set[str] = set()
    for _ in range(nvars):
        name = cur.name("a variable name")
        what = f"variable {name!r}"
        nd = cur.non_neg(f"the number of dimensions of {what}")
        cur.check_count(nd, width, f"the dimension ids of {what}")
        raw_ids = cur.take(nd * width, f"the dimension ids of {what}")
        ids = tuple(int(i) for i in np.frombuffer(raw_ids, dtype=">u8" if cur.wide else ">u4"))
        bad = [i for i in ids if i >= ndims]
        if bad:
            raise FileFormatError(
                f"netCDF3 header: {what} refers to dimension ids {bad}, but the file defines "
                f"only {ndims} dimensions (ids 0 to {ndims - 1}). The file is corrupt."
            )
        rec_pos = [k for k, i in enumerate(ids) if dims[i].is_record]
        if rec_pos and rec_pos != [0]:
            raise FileFormatError(
                f"netCDF3 header: {what} uses the record dimension at position(s) {rec_pos}; "
                "netCDF3 allows it only as the first dimension. The file is corrupt."
            )
        attrs = _attributes(cur, what)
        nc_type = cur.nc_type(what)
        vsize = cur.non_neg(f"vsize of {what}")
        begin = cur.offset(f"begin of {what}")
        if name in seen:
            raise FileFormatError(
                f"netCDF3 header: two variables are named {name!r}; expected unique names. "
                "The file is corrupt."
            )
        seen.add(name)
        variables.append(NetCDF3Variable(name, ids, attrs, nc_type, vsize, begin))

    return NetCDF3Header(
        version=version,
        numrecs=numrecs,
        dimensions=tuple(dims),
        attrs=gattrs,
        variables=tuple(variables),
        size=cur.pos,
    )


@dataclass(frozen=True, slots=True)
class VariableLayout:
    """Where the chunks of one variable live.

    Attributes
    ----------
    name : str
    dims : tuple of str
    shape : tuple of int
    chunks : tuple of int
        The full shape for a fixed-size variable, ``(1, *rest)`` for a record variable
        (zero-length axes get chunk length 1, so their grid has no cells).
    offsets, lengths : ndarray of uint64
        Per chunk, shaped like the chunk grid.
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    offsets: npt.NDArray[np.uint64]
    lengths: npt.NDArray[np.uint64]


def compute_layout(header: NetCDF3Header, file_size: int) -> tuple[int, dict[str, VariableLayout]]:
    """Locate every chunk of every variable, as netCDF-C does.

    Fixed-size variables are one chunk at ``begin``. Record variables have one chunk per
    record at ``begin + i * recsize``, where ``recsize`` is the sum of the record
    variables' per-record sizes padded to 4 bytes, except that a file whose record holds
    a single variable packs it (``recsize`` is then the unpadded size).

    Parameters
    ----------
    header : NetCDF3Header
    file_size : int
        Size of the file in bytes (used for ``STREAMING`` numrecs and bounds checks).

    Returns
    -------
    numrecs : int
        The number of records (derived from the file size when streaming).
    layouts : dict of str to VariableLayout
        In the header's variable order.

    Raises
    ------
    FileFormatError
        If a variable's data would start before the end of the header or end past the
        end of the file.

    Examples
    --------
    >>> h = parse_header(b"CDF\\x01" + b"\\x00" * 28)
    >>> compute_layout(h, 32)
    (0, {})
    """
    dims = header.dimensions
    # per-record (or whole) sizes: unpadded and padded to 4 bytes, netCDF-C's varp->len
    inner: dict[str, tuple[int, int]] = {}
    recvars: list[NetCDF3Variable] = []
    for v in header.variables:
        is_rec = bool(v.dim_ids) and dims[v.dim_ids[0]].is_record
        extents = [dims[i].length for i in (v.dim_ids[1:] if is_rec else v.dim_ids)]
        nbytes = math.prod(extents) * v.dtype.itemsize
        inner[v.name] = (nbytes, nbytes + (-nbytes % 4))
        if is_rec:
            recvars.append(v)
    recsize = sum(inner[v.name][1] for v in recvars)
    if recvars and recsize == inner[recvars[0].name][1]:
        recsize = inner[recvars[0].name][0]  # a single record variable is packed

    numrecs = header.numrecs
    if numrecs is None:
        begin_rec = recvars[0].begin if recvars else file_size
        numrecs = max(file_size - begin_rec, 0) // recsize if recsize else 0

    layouts: dict[str, VariableLayout] = {}
    rec_names = {v.name for v in recvars}
    for v in header.variables:
        vdims = tuple(dims[i].name for i in v.dim_ids)
        unpadded = inner[v.name][0]
        if v.name in rec_names:
            shape = (numrecs, *(dims[i].length for i in v.dim_ids[1:]))
            last_end = v.begin + (numrecs - 1) * recsize + unpadded
            nonempty = numrecs > 0 and unpadded > 0
        else:
            shape = tuple(dims[i].length for i in v.dim_ids)
            last_end = v.begin + unpadded
            nonempty = unpadded > 0
        if nonempty:
            _check_extent(v, header, last_end, file_size, numrecs if v.name in rec_names else 1)
        chunks = (1, *shape[1:]) if v.name in rec_names else shape
        chunks = tuple(c if c > 0 else 1 for c in chunks)
        grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        if math.prod(grid) == 0:  # no chunks (numrecs may still be huge: allocate nothing)
            offsets = np.zeros(grid, dtype=np.uint64)
        elif v.name in rec_names:
            starts = v.begin + np.arange(grid[0], dtype=np.uint64) * np.uint64(recsize)
            offsets = np.broadcast_to(starts.reshape((-1,) + (1,) * (len(grid) - 1)), grid)
            offsets = np.ascontiguousarray(offsets)
        else:
            offsets = np.full(grid, v.begin, dtype=np.uint64)
        lengths = np.full(grid, unpadded, dtype=np.uint64)
        layouts[v.name] = VariableLayout(v.name, vdims, shape, chunks, offsets, lengths)
    return numrecs, layouts


def _check_extent(
    v: NetCDF3Variable, header: NetCDF3Header, end: int, file_size: int, nrecs: int
) -> None:
    if v.begin < header.size:
        raise FileFormatError(
            f"netCDF3 header: variable {v.name!r} claims its data begins at byte {v.begin}, "
            f"inside the header (which ends at byte {header.size}). The file is corrupt."
        )
    if end > file_size:
        rec = f" over {nrecs} records" if nrecs != 1 else ""
        raise FileFormatError(
            f"netCDF3 file: variable {v.name!r} (begin {v.begin}{rec}) needs bytes up to {end}, "
            f"but the file has only {file_size} bytes. The file is truncated or its header "
            "lies (dimension lengths, numrecs or begin); re-download or regenerate it."
        )
