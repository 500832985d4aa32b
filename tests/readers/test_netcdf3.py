"""Tests of the netCDF3 reader on real files (netCDF-C via netCDF4-python, and scipy) and on
hand-made headers, including corrupt ones."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import netcdf_file

from virtualizarr.errors import (
    FileFormatError,
    UnsupportedFeatureError,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import VirtualGroup, VirtualVariable
from virtualizarr.readers import READERS, Probe
from virtualizarr.readers.netcdf3 import NetCDF3Reader, read_header
from virtualizarr.readers.netcdf3.header import (
    NC_TYPES,
    NeedMoreBytes,
    compute_layout,
    parse_header,
)

# the engine xr.open_dataset picks for netCDF3 files when netCDF4 is installed (named, so
# that xarray takes its fast path and loads no other engine's entry point)
NC4 = "netcdf4"
NC4_FORMATS = ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]
CLASSIC_TYPES = ["i1", "i2", "i4", "f4", "f8"]
CDF5_TYPES = [*CLASSIC_TYPES, "u1", "u2", "u4", "i8", "u8"]


# ------------------------------------------------------------------------ the oracle
def chunk_values(path: Path, var: VirtualVariable) -> np.ndarray:
    """Assemble a variable's values by reading each chunk's byte range from its manifest."""
    arr = var.data
    manifest = arr.manifest
    dtype = arr.metadata.data_type
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    chunks = tuple(int(c) for c in arr.metadata.chunk_grid.chunk_shape)
    out = np.zeros(arr.shape, dtype=dtype)
    assert manifest.paths == (path.resolve().as_uri(),)
    raw = path.read_bytes()
    # (np.ndindex rather than manifest.iter_keys, which refuses 0-d grids as of 6754c31)
    for coords in np.ndindex(*manifest.shape_chunk_grid):
        entry = manifest.get_chunk(coords)
        assert isinstance(entry, dict)
        start, n = entry["offset"], entry["length"]
        assert start + n <= len(raw)
        block = np.frombuffer(raw[start : start + n], dtype=dtype)
        sel = tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(coords, chunks, arr.shape, strict=True)
        )
        out[sel] = block.reshape(out[sel].shape)
    return out.astype(out.dtype.newbyteorder("="))


def raw_dataset(path: Path, group: VirtualGroup) -> xr.Dataset:
    """The virtual group as an in-memory dataset of the stored (undecoded) values."""
    return xr.Dataset(
        {
            name: xr.Variable(v.dims, chunk_values(path, v), v.attrs)
            for name, v in group.variables.items()
        },
        attrs=group.attrs,
    )


def check_against_netcdf4(path: Path) -> VirtualGroup:
    """Values, dtypes, dims and attributes match what netCDF4 and xarray show."""
    group = NetCDF3Reader().open(Location.of(path))
    ours = raw_dataset(path, group)
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        nc.set_auto_chartostring(False)
        assert list(group.variables) == list(nc.variables)
        for name, ncvar in nc.variables.items():
            expected = np.asarray(ncvar[...])
            got = ours[name].values
            assert got.shape == expected.shape, name
            assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("="), name
            np.testing.assert_array_equal(got, expected, err_msg=name)
            assert ours[name].dims == ncvar.dimensions
    with xr.open_dataset(path, engine=NC4, decode_cf=False) as raw:
        assert_identical_with_dtypes(ours, raw.load())
        for name in raw.variables:
            assert_attrs_same_types(ours[name].attrs, raw[name].attrs)
        assert_attrs_same_types(ours.attrs, raw.attrs)
    with xr.open_dataset(path, engine=NC4) as decoded:
        assert_identical_with_dtypes(xr.decode_cf(ours), decoded.load())
    return group


def assert_attrs_same_types(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert type(a[k]) is type(b[k]), (k, a[k], b[k])
        if isinstance(a[k], np.ndarray | np.generic):
            assert a[k].dtype == b[k].dtype, k


# ------------------------------------------------------------------------ real files
def values_for(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


def write_netcdf4(path: Path, fmt: str, nrec: int = 3) -> Path:
    """Every type as fixed and record variables, chars, scalars, fills, packing."""
    types = CDF5_TYPES if fmt == "NETCDF3_64BIT_DATA" else CLASSIC_TYPES
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        ds.createDimension("y", 5)
        ds.createDimension("strlen", 7)
        ds.title = "all types"
        ds.version = np.int32(3)
        ds.scales = np.array([1.5, 2.5], "f8")
        ds.flags = np.array([1, 2, 3], "i1")
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 2000-01-01"
        time[:nrec] = np.arange(nrec)
        for t in types:
            fixed = ds.createVariable(f"fixed_{t}", t, ("x", "y"))
            fixed[:] = values_for(t, (3, 5))
            fixed.long_name = f"fixed {t}"
            fixed.valid_range = np.array([0, 10], t)
            rec = ds.createVariable(f"rec_{t}", t, ("time", "y"))
            rec[:nrec] = values_for(t, (nrec, 5), seed=1)
            # odd lengths: padding between records for 1- and 2-byte types
            odd = ds.createVariable(f"odd_{t}", t, ("time", "x"), fill_value=values_for(t, ())[()])
            odd[: max(nrec - 1, 0)] = values_for(t, (max(nrec - 1, 0), 3), seed=2)
            odd.missing_value = odd._FillValue
            scalar = ds.createVariable(f"scalar_{t}", t, ())
            scalar.assignValue(values_for(t, (), seed=3)[()])
        chars = ds.createVariable("names", "S1", ("x", "strlen"))
        chars[:] = netCDF4.stringtochar(np.array(["a", "bcd", "efghijk"], "S7"))
        chars.comment = "fixed-size char"
        rchars = ds.createVariable("rnames", "S1", ("time", "strlen"), fill_value=b"?")
        rchars[:nrec] = netCDF4.stringtochar(np.array([f"r{i}" for i in range(nrec)], "S7"))
        packed = ds.createVariable("packed", "i2", ("time", "x"), fill_value=np.int16(-999))
        packed.scale_factor = np.float32(0.5)
        packed.add_offset = np.float32(10.0)
        packed.set_auto_maskandscale(False)
        packed[:nrec] = values_for("i2", (nrec, 3), seed=4)
    return path


def write_scipy(path: Path, version: int, nrec: int = 3) -> Path:
    with netcdf_file(path, "w", version=version) as f:
        f.history = b"made by scipy"
        f.count = 4
        f.latin1 = b"caf\xe9"  # not UTF-8: netCDF4 shows a replacement character
        f.nulls = b"x\x00y\x00"  # netCDF4 drops NUL characters
        f.empty = b""
        f.no_ints = np.array([], "i4")
        f.createDimension("time", None)
        f.createDimension("x", 3)
        f.createDimension("len", 5)
        t = f.createVariable("time", "d", ("time",))
        t[:] = np.arange(nrec, dtype="f8")
        t.units = b"hours since 2001-01-01"
        for code in "bhifd":
            v = f.createVariable(f"rec_{code}", code, ("time", "x"))
            v[:] = values_for(np.dtype(code).str, (nrec, 3))
            w = f.createVariable(f"fixed_{code}", code, ("x",))
            w[:] = values_for(np.dtype(code).str, (3,), seed=5)
            w.missing_value = w[:][0]
        c = f.createVariable("chars", "c", ("time", "len"))
        c[:] = np.array([list(b"hello"), list(b"ab\x00\x00\x00"), list(b"xyz\x00\x00")])[:nrec]
        s = f.createVariable("packed", "h", ("x",))
        s[:] = [1, 2, 3]
        s.scale_factor = np.float32(2.0)
        s.add_offset = np.float32(1.0)
    return path


@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_netcdf4_written_files(tmp_path: Path, fmt: str) -> None:
    path = write_netcdf4(tmp_path / "a.nc", fmt)
    group = check_against_netcdf4(path)
    rec = group.variables["rec_i2"].data
    assert rec.chunk_sizes == (1, 5)
    assert rec.manifest.shape_chunk_grid == (3, 1)
    assert group.variables["fixed_f8"].data.manifest.shape_chunk_grid == (1, 1)
    assert group.variables["scalar_f4"].data.shape == ()
    assert group.variables["names"].data.dtype == np.dtype("S1")
    assert group.variables["names"].dims == ("x", "strlen")


@pytest.mark.parametrize("version", [1, 2])
def test_scipy_written_files(tmp_path: Path, version: int) -> None:
    path = write_scipy(tmp_path / "s.nc", version)
    group = check_against_netcdf4(path)
    assert group.attrs["count"] == np.int32(4)
    assert group.attrs["history"] == "made by scipy"
    assert group.attrs["latin1"] == "caf\ufffd"
    assert group.attrs["nulls"] == "xy"


@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_zero_records(tmp_path: Path, fmt: str) -> None:
    path = write_netcdf4(tmp_path / "z.nc", fmt, nrec=0)
    group = check_against_netcdf4(path)
    assert group.variables["rec_i4"].data.shape == (0, 5)
    assert group.variables["rec_i4"].data.manifest.shape_chunk_grid == (0, 1)


@pytest.mark.parametrize("fmt", NC4_FORMATS)
@pytest.mark.parametrize("dtype", ["i1", "S1", "i2", "f8"])
def test_single_record_variable_is_packed(tmp_path: Path, fmt: str, dtype: str) -> None:
    """With one record variable, records are not padded to 4 bytes."""
    path = tmp_path / "one.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        ds.createDimension("n", 3)
        ds.createDimension("m", 2)
        fixed = ds.createVariable("fixed", "i2", ("m",))
        fixed[:] = [7, 8]
        v = ds.createVariable("v", dtype, ("t", "n"))
        if dtype == "S1":
            v[:5] = np.array([list(b"abc")] * 5, "S1")
        else:
            v[:5] = values_for(dtype, (5, 3))
    group = check_against_netcdf4(path)
    itemsize = np.dtype(dtype).itemsize
    offsets = group.variables["v"].data.manifest.offsets.ravel()
    assert np.all(np.diff(offsets) == 3 * itemsize)
    assert np.all(group.variables["v"].data.manifest.lengths == 3 * itemsize)


@pytest.mark.parametrize("version", [1, 2])
def test_scipy_single_record_variable(tmp_path: Path, version: int) -> None:
    path = tmp_path / "one.nc"
    with netcdf_file(path, "w", version=version) as f:
        f.createDimension("t", None)
        f.createDimension("n", 3)
        v = f.createVariable("v", "b", ("t", "n"))
        v[:] = np.arange(12, dtype="i1").reshape(4, 3)
    check_against_netcdf4(path)


@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_multiple_padded_record_variables(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "pad.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        ds.createDimension("odd", 3)
        ds.createDimension("one", 1)
        for i, dt in enumerate(["i2", "S1", "i1", "f4", "i2"]):
            v = ds.createVariable(f"v{i}", dt, ("t", "odd" if i % 2 == 0 else "one"))
            n = 3 if i % 2 == 0 else 1
            if dt == "S1":
                v[:4] = np.array([[b"q"]] * 4, "S1")
            else:
                v[:4] = values_for(dt, (4, n), seed=i)
    group = check_against_netcdf4(path)
    # padded per-record sizes: 8 + 4 + 4 + 4 + 8
    recsize = 28
    for v in group.variables.values():
        assert np.all(np.diff(v.data.manifest.offsets.ravel()) == recsize)


@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_streaming_numrecs(tmp_path: Path, fmt: str) -> None:
    path = write_netcdf4(tmp_path / "stream.nc", fmt, nrec=4)
    expected = raw_dataset(path, NetCDF3Reader().open(Location.of(path)))
    data = bytearray(path.read_bytes())
    width = 8 if fmt == "NETCDF3_64BIT_DATA" else 4
    data[4 : 4 + width] = b"\xff" * width
    path.write_bytes(bytes(data))
    header = parse_header(bytes(data))
    assert header.numrecs is None
    numrecs, _ = compute_layout(header, len(data))
    assert numrecs == 4
    group = NetCDF3Reader().open(Location.of(path))
    xr.testing.assert_identical(raw_dataset(path, group), expected)


def test_paths_and_uris(tmp_path: Path) -> None:
    path = write_scipy(tmp_path / "u.nc", 1)
    for given_path in (str(path), path.as_uri()):
        group = NetCDF3Reader().open(Location.of(given_path))
        for v in group.variables.values():
            assert v.data.manifest.paths == (path.resolve().as_uri(),)


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_scipy(tmp_path / "rel.nc", 2)
    monkeypatch.chdir(tmp_path)
    group = NetCDF3Reader().open(Location.of("rel.nc"))
    assert group.variables["time"].data.manifest.paths == (
        (tmp_path / "rel.nc").resolve().as_uri(),
    )


def test_reader_interface(tmp_path: Path) -> None:
    reader = READERS["netcdf3"]
    assert isinstance(reader, NetCDF3Reader)

    def probe(head: bytes) -> Probe:
        (tmp_path / "head").write_bytes(head)
        return Probe(Location.of(tmp_path / "head"))

    for magic in (b"CDF\x01", b"CDF\x02", b"CDF\x05"):
        assert reader.guess_can_open(probe(magic + b"\x00" * 4))
    for magic in (b"\x89HDF\r\n\x1a\n", b"CDF\x03", b"CD", b""):
        assert not reader.guess_can_open(probe(magic))
    path = write_scipy(tmp_path / "g.nc", 1)
    assert reader.open(Location.of(path), group="/").variables
    with pytest.raises(UnsupportedFeatureError, match="no groups"):
        reader.open(Location.of(path), group="sub")
    with pytest.raises(TypeError, match=r"only the option drop_variables.*bogus"):
        reader.open(Location.of(path), bogus=1)
    kept = reader.open(Location.of(path), drop_variables={"time", "rec_b"}).variables
    assert "time" not in kept and "rec_b" not in kept and "rec_h" in kept


def test_fill_value_metadata(tmp_path: Path) -> None:
    path = write_netcdf4(tmp_path / "f.nc", "NETCDF3_64BIT_DATA")
    group = NetCDF3Reader().open(Location.of(path))
    odd = group.variables["odd_u2"]
    assert odd.data.metadata.fill_value == odd.attrs["_FillValue"]
    # no _FillValue attribute: netCDF's default fill, and no attribute is invented
    assert "_FillValue" not in group.variables["fixed_i4"].attrs
    assert int(group.variables["fixed_i4"].data.metadata.fill_value) == -2147483647
    assert group.variables["rnames"].data.metadata.fill_value == b"?"
    assert group.variables["names"].data.metadata.fill_value == b"\x00"


def test_long_header_grows_the_read(tmp_path: Path) -> None:
    path = tmp_path / "long.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("x", 2)
        ds.history = "h" * 150_000
        for i in range(50):
            v = ds.createVariable(f"v{i}", "i4", ("x",))
            v.comment = "c" * 2000
            v[:] = [i, i + 1]
    header, size = read_header(Location.of(path), first_read=100)
    assert size == path.stat().st_size
    assert header == parse_header(path.read_bytes())
    assert header.size > 64 * 1024
    check_against_netcdf4(path)


def test_need_more_bytes_when_file_is_longer() -> None:
    data = build_header(1, dims=[("x", 2)], variables=[("v", [0], [], 4, 8, 100)])
    with pytest.raises(NeedMoreBytes) as info:
        parse_header(data[:20], file_size=1000)
    assert 20 < info.value.needed <= len(data)


# ------------------------------------------------------------------------ hand-made headers
def _int(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big", signed=value < 0)


def _name(s: str | bytes, width: int) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return _int(len(b), width) + b + b"\x00" * (-len(b) % 4)


Attr = tuple[str, int, bytes, int]  # name, nc_type, value bytes (unpadded), nelems
Var = tuple[str, Sequence[int], Sequence[Attr], int, int, int]  # + nc_type, vsize, begin


def _attrs(attrs: Sequence[Attr], width: int) -> bytes:
    if not attrs:
        return b"\x00" * (4 + width)
    out = _int(0x0C, 4) + _int(len(attrs), width)
    for name, t, raw, n in attrs:
        out += _name(name, width) + _int(t, 4) + _int(n, width) + raw + b"\x00" * (-len(raw) % 4)
    return out


def build_header(
    version: int = 1,
    numrecs: int = 0,
    dims: Sequence[tuple[str, int]] = (),
    gattrs: Sequence[Attr] = (),
    variables: Sequence[Var] = (),
) -> bytes:
    """A netCDF3 header from its fields (test helper: the spec's grammar, directly)."""
    w = 8 if version == 5 else 4
    bw = 4 if version == 1 else 8
    out = b"CDF" + bytes([version]) + _int(numrecs, w)
    if dims:
        out += _int(0x0A, 4) + _int(len(dims), w)
        out += b"".join(_name(n, w) + _int(length, w) for n, length in dims)
    else:
        out += b"\x00" * (4 + w)
    out += _attrs(gattrs, w)
    if variables:
        out += _int(0x0B, 4) + _int(len(variables), w)
        for name, ids, attrs, t, vsize, begin in variables:
            out += _name(name, w) + _int(len(ids), w) + b"".join(_int(i, w) for i in ids)
            out += _attrs(attrs, w) + _int(t, 4) + _int(vsize, w) + _int(begin, bw)
    else:
        out += b"\x00" * (4 + w)
    return out


def test_parse_minimal_headers() -> None:
    for version in (1, 2, 5):
        h = parse_header(build_header(version))
        assert (h.version, h.numrecs, h.dimensions, h.attrs, h.variables) == (
            version,
            0,
            (),
            {},
            (),
        )
        assert h.size == len(build_header(version))


def test_parse_hand_made_header() -> None:
    data = build_header(
        2,
        numrecs=2,
        dims=[("time", 0), ("x", 3)],
        gattrs=[("title", 2, b"t\x00", 2), ("n", 3, b"\x00\x05\xff\xff", 2)],
        variables=[
            ("a", [1], [("units", 2, b"m", 1)], 5, 12, 0),
            ("b", [0, 1], [("f", 6, np.array(2.5, ">f8").tobytes(), 1)], 3, 8, 0),
        ],
    )
    header = parse_header(data)
    assert header.attrs["title"] == "t"
    np.testing.assert_array_equal(header.attrs["n"], np.array([5, -1], np.int16))
    a, b = header.variables
    assert a.attrs == {"units": "m"}
    assert b.attrs["f"] == np.float64(2.5) and type(b.attrs["f"]) is np.float64
    assert header.record_dimension == "time"


def test_layout_of_hand_made_file() -> None:
    """Two record variables (int16 x3 -> 6 bytes padded to 8; char x1 -> 4), 2 records."""
    h0 = build_header(
        1,
        numrecs=2,
        dims=[("t", 0), ("n", 3)],
        variables=[
            ("s", [0, 1], [], 3, 8, 0),
            ("c", [0], [], 2, 4, 0),
            ("f", [1], [], 4, 12, 0),
        ],
    )
    hsize = len(h0)
    f_begin, s_begin = hsize, hsize + 12
    data = build_header(
        1,
        numrecs=2,
        dims=[("t", 0), ("n", 3)],
        variables=[
            ("s", [0, 1], [], 3, 8, s_begin),
            ("c", [0], [], 2, 4, s_begin + 8),
            ("f", [1], [], 4, 12, f_begin),
        ],
    )
    size = s_begin + 2 * 12
    header = parse_header(data, file_size=size)
    numrecs, layouts = compute_layout(header, size)
    assert numrecs == 2
    np.testing.assert_array_equal(layouts["s"].offsets.ravel(), [s_begin, s_begin + 12])
    np.testing.assert_array_equal(layouts["s"].lengths.ravel(), [6, 6])
    np.testing.assert_array_equal(layouts["c"].offsets.ravel(), [s_begin + 8, s_begin + 20])
    np.testing.assert_array_equal(layouts["c"].lengths.ravel(), [1, 1])
    assert layouts["f"].offsets.shape == (1,) and int(layouts["f"].offsets[0]) == f_begin
    assert layouts["s"].chunks == (1, 3) and layouts["f"].chunks == (3,)
    # the last record may end early: the padding after the last variable is not needed
    compute_layout(header, size - 3)
    with pytest.raises(FileFormatError, match="needs bytes up to"):
        compute_layout(header, size - 4)


def test_two_record_dimensions_and_a_scalar() -> None:
    data = build_header(
        5,
        dims=[("z", 0), ("e", 0)],
        variables=[],
    )
    with pytest.raises(FileFormatError, match="at most one record"):
        parse_header(data)
    data = build_header(5, dims=[("x", 4)], variables=[("s", [], [], 6, 8, 0)])
    begin = len(data)
    data = build_header(5, dims=[("x", 4)], variables=[("s", [], [], 6, 8, begin)])
    _, layouts = compute_layout(parse_header(data), begin + 8)
    assert layouts["s"].shape == () and layouts["s"].offsets.shape == ()


NAME = st.text(alphabet="abcxyz_0123é", min_size=1, max_size=9)


@st.composite
def headers(draw: st.DrawFn) -> tuple[int, int, list[Any], list[Attr], list[Var]]:
    version = draw(st.sampled_from([1, 2, 5]))
    numrecs = draw(st.integers(0, 1000))
    dim_names = draw(st.lists(NAME, max_size=4, unique=True))
    lengths = draw(
        st.lists(st.integers(1, 10**6), min_size=len(dim_names), max_size=len(dim_names))
    )
    dims = list(zip(dim_names, lengths, strict=True))
    types = list(NC_TYPES) if version == 5 else [1, 2, 3, 4, 5, 6]

    def attr_list() -> list[Attr]:
        out: list[Attr] = []
        for name in draw(st.lists(NAME, max_size=4, unique=True)):
            t = draw(st.sampled_from(types))
            n = draw(st.integers(0, 5))
            raw = draw(
                st.binary(
                    min_size=n * NC_TYPES[t][1].itemsize, max_size=n * NC_TYPES[t][1].itemsize
                )
            )
            out.append((name, t, raw, n))
        return out

    gattrs = attr_list()
    variables: list[Var] = []
    for name in draw(st.lists(NAME, max_size=4, unique=True)):
        ids = draw(st.lists(st.integers(0, len(dims) - 1), max_size=3)) if dims else []
        t = draw(st.sampled_from(types))
        variables.append(
            (
                name,
                ids,
                attr_list(),
                t,
                draw(st.integers(0, 2**31)),
                draw(st.integers(0, 2**31 - 1)),
            )
        )
    return version, numrecs, dims, gattrs, variables


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers())
def test_parse_header_round_trips_fields(
    fields: tuple[int, int, list[Any], list[Attr], list[Var]],
) -> None:
    version, numrecs, dims, gattrs, variables = fields
    data = build_header(version, numrecs, dims, gattrs, variables)
    header = parse_header(data)
    assert header.size == len(data)
    assert (header.version, header.numrecs) == (version, numrecs)
    assert [(d.name, d.length) for d in header.dimensions] == dims
    for (name, t, ids, attrs, vsize, begin), v in zip(
        [(n, t, i, a, vs, b) for n, i, a, t, vs, b in variables], header.variables, strict=True
    ):
        assert (v.name, v.nc_type, v.dim_ids, v.vsize, v.begin) == (
            name,
            t,
            tuple(ids),
            vsize,
            begin,
        )
        check_attrs(attrs, v.attrs)
    check_attrs(gattrs, header.attrs)
    # every strict prefix is refused as truncated, or asks for more bytes
    for k in sorted({0, 3, 4, len(data) // 2, len(data) - 1}):
        with pytest.raises(FileFormatError):
            parse_header(data[:k])
        with pytest.raises(NeedMoreBytes):
            parse_header(data[:k], file_size=len(data))


def check_attrs(spec: Sequence[Attr], parsed: dict[str, Any]) -> None:
    assert list(parsed) == [a[0] for a in spec]
    for name, t, raw, n in spec:
        value = parsed[name]
        if t == 2:
            if name == "_FillValue":
                assert value == raw
            else:
                assert value == raw.decode("utf-8", "replace").replace("\x00", "")
        else:
            expected = np.frombuffer(raw, NC_TYPES[t][1]).astype(NC_TYPES[t][1].newbyteorder("="))
            if n == 1:
                assert isinstance(value, np.generic) and value.dtype == expected.dtype
                assert value.tobytes() == expected[0].tobytes()
            else:
                assert isinstance(value, np.ndarray) and value.dtype == expected.dtype
                assert value.tobytes() == expected.tobytes()


# ------------------------------------------------------------------------ bad input
def small_file(tmp_path: Path, fmt: str = "NETCDF3_64BIT_OFFSET") -> Path:
    path = tmp_path / "small.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        ds.createDimension("x", 2)
        ds.title = "small"
        v = ds.createVariable("v", "i2", ("t", "x"), fill_value=np.int16(-1))
        v.units = "m"
        v[:2] = [[1, 2], [3, 4]]
        w = ds.createVariable("w", "f8", ("x",))
        w[:] = [0.5, 1.5]
    return path


@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_truncation_at_every_offset_of_the_header(tmp_path: Path, fmt: str) -> None:
    path = small_file(tmp_path, fmt)
    data = path.read_bytes()
    size = parse_header(data).size
    for k in range(size):
        with pytest.raises(FileFormatError, match=r"truncated|expected a netCDF3 file"):
            parse_header(data[:k])
    # and through the reader, on truncated files (header and data)
    for k in [*range(0, size, 7), size, len(data) - 1]:
        cut = tmp_path / f"cut{k}.nc"
        cut.write_bytes(data[:k])
        with pytest.raises(FileFormatError) as info:
            NetCDF3Reader().open(Location.of(cut))
        assert "truncated" in str(info.value) or "expected a netCDF3" in str(info.value)


def test_not_netcdf3() -> None:
    with pytest.raises(FileFormatError, match=r"expected a netCDF3 file.*\\x89HDF"):
        parse_header(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)


def test_unknown_tag() -> None:
    data = bytearray(build_header(1, dims=[("x", 2)]))
    data[8:12] = _int(0x0D, 4)
    with pytest.raises(
        FileFormatError, match=r"expected the dimensions tag 0x0000000A.*0x0000000D"
    ):
        parse_header(bytes(data))
    # ABSENT must have a zero count
    data = bytearray(build_header(1, dims=[("x", 2)]))
    data[8:12] = b"\x00" * 4
    with pytest.raises(FileFormatError, match="ABSENT"):
        parse_header(bytes(data))


def test_unknown_type() -> None:
    data = build_header(1, gattrs=[("a", 12, b"\x00" * 8, 1)])
    with pytest.raises(FileFormatError, match=r"type code 1 to 11.*found 12"):
        parse_header(data)


def test_huge_counts_are_refused_without_allocating() -> None:
    cases = [
        # 2**30 dimensions
        b"CDF\x01" + _int(0, 4) + _int(0x0A, 4) + _int(2**30, 4) + b"\x00" * 64,
        # an attribute with 2**60 doubles (CDF-5)
        build_header(5)[:-24]
        + _int(0x0C, 4)
        + _int(1, 8)
        + _name("a", 8)
        + _int(6, 4)
        + _int(2**60, 8)
        + b"\x00" * 64,
        # a name of 2**31 - 1 bytes
        b"CDF\x02" + _int(0, 4) + _int(0x0A, 4) + _int(1, 4) + _int(2**31 - 1, 4) + b"x" * 64,
        # 2**40 dimension ids
        build_header(5, dims=[("x", 1)])[:-12]
        + _int(0x0B, 4)
        + _int(1, 8)
        + _name("v", 8)
        + _int(2**40, 8)
        + b"\x00" * 64,
    ]
    for data in cases:
        tracemalloc.start()
        try:
            with pytest.raises(FileFormatError, match=r"claims \d+ entries.*only \d+ bytes remain"):
                parse_header(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000


def patched_header_file(tmp_path: Path, **changes: int) -> Path:
    """A CDF-1 file with one fixed variable ``v(x)`` of int32, fields overridden."""
    fields = {"xlen": 4, "numrecs": 0, "begin": -1, "extra": 0}
    fields.update(changes)
    dims = [("x", fields["xlen"])]
    probe = build_header(1, fields["numrecs"], dims, variables=[("v", [0], [], 4, 16, 0)])
    begin = len(probe) if fields["begin"] < 0 else fields["begin"]
    data = build_header(1, fields["numrecs"], dims, variables=[("v", [0], [], 4, 16, begin)])
    path = tmp_path / "p.nc"
    path.write_bytes(data + b"\x00" * (16 + fields["extra"]))
    return path


def test_lying_sizes(tmp_path: Path) -> None:
    NetCDF3Reader().open(Location.of(patched_header_file(tmp_path)))  # the honest file
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"needs bytes up to \d+.*only \d+ bytes"):
            NetCDF3Reader().open(Location.of(patched_header_file(tmp_path, xlen=2**31)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    with pytest.raises(FileFormatError, match="needs bytes up to"):
        NetCDF3Reader().open(Location.of(patched_header_file(tmp_path, begin=10**6)))
    with pytest.raises(FileFormatError, match="inside the header"):
        NetCDF3Reader().open(Location.of(patched_header_file(tmp_path, begin=8)))


def test_lying_numrecs_is_refused_without_allocating(tmp_path: Path) -> None:
    path = small_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[4:8] = _int(2**31 - 1, 4)
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"over 2147483647 records"):
            NetCDF3Reader().open(Location.of(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_bad_dimension_references() -> None:
    with pytest.raises(FileFormatError, match=r"dimension ids \[3\].*only 1 dimensions"):
        parse_header(build_header(1, dims=[("x", 2)], variables=[("v", [3], [], 4, 8, 100)]))
    with pytest.raises(FileFormatError, match="only as the first dimension"):
        parse_header(
            build_header(1, dims=[("t", 0), ("x", 2)], variables=[("v", [1, 0], [], 4, 8, 100)])
        )
    with pytest.raises(FileFormatError, match="two variables are named"):
        parse_header(build_header(1, dims=[("x", 2)], variables=[("v", [0], [], 4, 8, 100)] * 2))
    with pytest.raises(FileFormatError, match="dimension names must be unique"):
        parse_header(build_header(1, dims=[("x", 2), ("x", 3)]))


def test_bad_names_and_offsets() -> None:
    with pytest.raises(FileFormatError, match="must be UTF-8"):
        parse_header(build_header(1, dims=[(b"\xff\xfe", 2)]))  # type: ignore[list-item]
    data = bytearray(build_header(1, dims=[("x", 2)], variables=[("v", [0], [], 4, 8, 100)]))
    data[-4:] = b"\xff\xff\xff\xf0"
    with pytest.raises(FileFormatError, match="non-negative offset"):
        parse_header(bytes(data))


# ------------------------------------------------------------------------ round trips
def open_refs(refs: dict[str, Any]) -> xr.Dataset:
    return xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": refs}},
    )


def assert_identical_with_dtypes(
    actual: xr.Dataset, expected: xr.Dataset, skip_dtype: Sequence[str] = ()
) -> None:
    """``assert_identical``, which ignores dtypes, plus a dtype check per variable."""
    xr.testing.assert_identical(actual, expected)
    for name, var in expected.variables.items():
        if name not in skip_dtype:
            assert actual[name].dtype == var.dtype, (name, actual[name].dtype, var.dtype)


def float32_packed(ds: xr.Dataset) -> list[str]:
    """Variables packed with float32 scale_factor/add_offset (see the xfail below)."""
    return [
        str(k)
        for k, v in ds.variables.items()
        if isinstance(v.encoding.get("scale_factor", v.encoding.get("add_offset")), np.float32)
    ]


def round_trip(path: Path) -> None:
    """open_virtual_dataset -> kerchunk refs -> xarray gives what xr.open_dataset gives."""
    from virtualizarr import open_virtual_dataset

    vds = open_virtual_dataset(str(path), loadable_variables=[])
    refs = vds.virtualize.to_kerchunk(format="dict")
    with open_refs(refs) as actual, xr.open_dataset(path, engine=NC4) as expected:
        assert_identical_with_dtypes(actual.load(), expected.load(), float32_packed(expected))


@pytest.mark.parametrize("fmt", NC4_FORMATS)
@pytest.mark.parametrize("nrec", [0, 3])
def test_round_trip_netcdf4_written(tmp_path: Path, fmt: str, nrec: int) -> None:
    round_trip(write_netcdf4(tmp_path / "a.nc", fmt, nrec=nrec))


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_scipy_written(tmp_path: Path, version: int) -> None:
    round_trip(write_scipy(tmp_path / "s.nc", version))


def test_round_trip_default_fill_values_are_not_masked(tmp_path: Path) -> None:
    """Values equal to netCDF's default fill, with no _FillValue attribute, stay values."""
    path = tmp_path / "fill.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("t", None)
        ds.createDimension("x", 2)
        a = ds.createVariable("a", "f4", ("t", "x"))
        a[:2] = [[9.969209968386869e36, 1], [2, 3]]
        b = ds.createVariable("b", "i4", ("x",))
        b[:] = [-2147483647, 5]
        c = ds.createVariable("c", "i2", ("x",), fill_value=np.int16(5))
        c[:] = [5, 6]
    round_trip(path)


def write_series(path: Path, fmt: str, t0: int, nrec: int, chars: bool = False) -> Path:
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        ds.createDimension("strlen", 4)
        ds.source = "series"
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "hours since 2020-01-01"
        time[:nrec] = np.arange(t0, t0 + nrec)
        lat = ds.createVariable("lat", "f4", ("x",))
        lat[:] = [10, 20, 30]
        air = ds.createVariable("air", "i2", ("time", "x"), fill_value=np.int16(-32767))
        air.scale_factor = 0.1  # float64: see test_round_trip_float32_packing
        air.add_offset = 250.0
        air.set_auto_maskandscale(False)
        vals = values_for("i2", (nrec, 3), seed=t0)
        vals[0, 0] = -32767
        air[:nrec] = vals
        if chars:
            tag = ds.createVariable("tag", "S1", ("time", "strlen"))
            tag[:nrec] = netCDF4.stringtochar(np.array([f"t{t0 + i}" for i in range(nrec)], "S4"))
    return path


CONCAT_KWARGS: dict[str, Any] = {
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
    "combine_attrs": "override",
}


def concat_round_trip(tmp_path: Path, chars: bool) -> None:
    """Three files (one per format, 2 + 3 + 1 records) concatenated along ``time``."""
    from virtualizarr import open_virtual_dataset

    files = [
        write_series(tmp_path / f"f{i}.nc", fmt, t0, nrec, chars)
        for i, (fmt, t0, nrec) in enumerate(zip(NC4_FORMATS, [0, 2, 5], [2, 3, 1], strict=True))
    ]
    virtual = [open_virtual_dataset(str(p)) for p in files]
    combined = xr.concat(virtual, dim="time", **CONCAT_KWARGS)
    assert combined["air"].data.manifest.shape_chunk_grid == (6, 1)
    assert len(combined["air"].data.manifest.paths) == 3
    refs = combined.virtualize.to_kerchunk(format="dict")
    with (
        open_refs(refs) as actual,
        xr.open_mfdataset(files, combine="nested", concat_dim="time", **CONCAT_KWARGS) as expected,
    ):
        assert_identical_with_dtypes(actual.load(), expected.load())


def test_concatenate_files_along_records(tmp_path: Path) -> None:
    concat_round_trip(tmp_path, chars=False)


def test_concatenate_char_record_variables(tmp_path: Path) -> None:
    concat_round_trip(tmp_path, chars=True)


def test_round_trip_float32_packing(tmp_path: Path) -> None:
    """float32 packing decodes to float32 through our engine, exactly as the file does.

    Through plain fsspec + xarray's zarr engine it cannot: JSON numbers come back as Python
    floats and xarray then picks float64 (pinned here so a change is noticed).
    """
    from virtualizarr import open_virtual_dataset

    path = tmp_path / "f32.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("x", 3)
        v = ds.createVariable("v", "i2", ("x",))
        v.scale_factor = np.float32(0.1)
        v.add_offset = np.float32(250)
        v.set_auto_maskandscale(False)
        v[:] = [1, 2, 3]
    refs = open_virtual_dataset(str(path), loadable_variables=[]).virtualize.to_kerchunk(
        format="dict"
    )
    with (
        xr.open_dataset(refs, engine="virtualizarr") as actual,
        open_refs(refs) as plain,
        xr.open_dataset(path, engine=NC4) as expected,
    ):
        assert actual["v"].dtype == expected["v"].dtype == np.float32
        xr.testing.assert_identical(actual.load(), expected.load())
        assert plain["v"].dtype == np.float64
        np.testing.assert_allclose(plain["v"].values, expected["v"].values, rtol=1e-6)


def test_importing_the_package_does_not_import_h5py_until_an_hdf5_file_is_opened(
    tmp_path,
) -> None:
    """netCDF3 and reference users do not pay h5py's import; HDF5 files still open."""
    import subprocess
    import sys

    import netCDF4

    nc4 = tmp_path / "a.nc"
    with netCDF4.Dataset(nc4, "w") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("v", "i4", ("x",))[:] = [1, 2]
    script = (
        "import sys, virtualizarr\n"
        "from virtualizarr.readers import READERS\n"
        "print('h5py' in sys.modules, list(READERS))\n"
        f"ds = virtualizarr.open_virtual_dataset({str(nc4)!r})\n"
        "print('h5py' in sys.modules, 'not loaded' not in repr(READERS['hdf5']), list(READERS))\n"
        "print(ds['v'].data.manifest.shape_chunk_grid)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after, grid = done.stdout.splitlines()
    # the registered readers (whatever formats exist) are the same before and after
    readers = before.removeprefix("False ")
    assert before.startswith("False ['hdf5', 'netcdf3', ")
    assert after == f"True True {readers}"
    assert grid == "(1,)"
