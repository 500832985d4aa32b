"""Tests of the HDF5/netCDF4 reader on real files written by netCDF4-python and h5py.

Two independent checks per file: a byte-level oracle (read each chunk's bytes from the
manifest, decode with numcodecs, compare with netCDF-C's raw values, dims and attributes)
and the full round trip through kerchunk references, compared with ``xr.open_dataset``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import netCDF4
import numcodecs
import numpy as np
import pytest
import xarray as xr

from tests.readers import hdf5_cases as cases
from virtualizarr import open_virtual_dataset
from virtualizarr.errors import FileFormatError, UnsupportedFeatureError
from virtualizarr.io.objects import Location
from virtualizarr.manifests import MISSING, VirtualGroup, VirtualVariable
from virtualizarr.manifests.metadata import codecs_to_json
from virtualizarr.readers import READERS, LazyReader, Probe, find_reader
from virtualizarr.readers.hdf5.filters import decode_chunk, pipeline_codecs
from virtualizarr.readers.hdf5.reader import HDF5Reader

NC4 = "netcdf4"
REF_SKIPPED = r"ignore:.*'/ref' is left out:virtualizarr.errors.DroppedVariableWarning"
"""h5_layouts holds a dataset of object references, left out (as netCDF-C leaves it)
with a warning naming it (tests/readers/test_hdf5_round3.py checks the warning)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case file, written once per module."""
    d = tmp_path_factory.mktemp("hdf5_cases")
    return {name: make(d / f"{name}.nc") for name, make in cases.NETCDF_CASES.items()}


def open_group(path: Path, **kwargs: Any) -> VirtualGroup:
    return HDF5Reader().open(Location.of(path), **kwargs)


# ------------------------------------------------------------------------ the oracle
def chunk_values(var: VirtualVariable) -> np.ndarray:
    """A variable's stored values, assembled from its manifest's chunks with numcodecs."""
    arr = var.data
    meta = arr.metadata
    codecs = codecs_to_json(meta)
    serializer, rest = codecs[0], tuple(codecs[1:])
    chunks = tuple(int(c) for c in meta.chunk_grid.chunk_shape)  # type: ignore[union-attr]
    manifest = arr.manifest
    if serializer["name"] == "vlen-utf8":
        out = np.full(arr.shape, meta.fill_value, dtype=object)
    else:
        dtype = meta.data_type
        if serializer["configuration"].get("endian") == "big":
            dtype = dtype.newbyteorder(">")
        out = np.full(arr.shape, meta.fill_value, dtype=dtype)
    files: dict[str, bytes] = {}
    for coords in np.ndindex(*manifest.shape_chunk_grid):
        entry = manifest.get_chunk(coords)
        if entry is None:
            continue
        if isinstance(entry, bytes):
            raw = entry
        else:
            path = entry["path"].removeprefix("file://")
            data = files.setdefault(path, Path(path).read_bytes())
            raw = data[entry["offset"] : entry["offset"] + entry["length"]]
        plain = decode_chunk(raw, rest)  # type: ignore[arg-type]
        if serializer["name"] == "vlen-utf8":
            block = numcodecs.VLenUTF8().decode(plain).reshape(chunks)
        else:
            block = np.frombuffer(plain, dtype=out.dtype).reshape(chunks)
        sel = tuple(
            slice(c * n, min((c + 1) * n, s))
            for c, n, s in zip(coords, chunks, arr.shape, strict=True)
        )
        out[sel] = block[tuple(slice(0, s.stop - s.start) for s in sel)]
    return out


def assert_attrs_identical(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    assert set(actual) == set(expected), where
    for k, v in expected.items():
        a = actual[k]
        assert type(a) is type(v), (where, k, a, v)
        if isinstance(v, np.ndarray):
            assert a.dtype == v.dtype and np.array_equal(a, v), (where, k)
        else:
            assert a == v or (a != a and v != v), (where, k, a, v)


def check_against_netcdf(path: Path, group: str | None = None) -> None:
    """Names, dims, attributes and raw values match netCDF-C's (decode_cf=False)."""
    vg = open_group(path, group=group)
    with xr.open_dataset(path, engine=NC4, decode_cf=False, group=group) as truth:
        assert set(vg.variables) == set(truth.variables)
        assert_attrs_identical(vg.attrs, truth.attrs, "group attrs")
        for name, expected in truth.variables.items():
            var = vg.variables[name]
            assert var.dims == expected.dims, name
            assert_attrs_identical(var.attrs, expected.attrs, name)
            values = chunk_values(var)
            assert values.shape == expected.shape, name
            np.testing.assert_array_equal(values, expected.values, err_msg=name)
            assert var.data.manifest.paths in ((), (Location.of(path).url,)), name


# ------------------------------------------------------------------------ all cases
@pytest.mark.parametrize("case", list(cases.NETCDF_CASES))
@pytest.mark.filterwarnings(REF_SKIPPED)
def test_oracle_matches_netcdf_c(files: dict[str, Path], case: str) -> None:
    check_against_netcdf(files[case])


@pytest.mark.parametrize("case", list(cases.NETCDF_CASES))
@pytest.mark.filterwarnings(REF_SKIPPED)
def test_round_trip_through_kerchunk(files: dict[str, Path], case: str) -> None:
    from virtualizarr.testing import open_via_kerchunk

    actual = open_via_kerchunk(files[case], loadable_variables=[])
    with xr.open_dataset(files[case], engine=NC4) as expected:
        xr.testing.assert_identical(actual, expected.load())


@pytest.mark.parametrize("case", list(cases.NETCDF_CASES))
@pytest.mark.filterwarnings(REF_SKIPPED)
def test_round_trip_through_the_virtualizarr_engine(files: dict[str, Path], case: str) -> None:
    from virtualizarr import open_virtual_dataset

    vds = open_virtual_dataset(str(files[case]))  # default: dimension coordinates loaded
    refs = vds.virtualize.to_kerchunk(format="dict")
    with (
        xr.open_dataset(refs, engine="virtualizarr") as actual,
        xr.open_dataset(files[case], engine=NC4) as expected,
    ):
        xr.testing.assert_identical(actual.load(), expected.load())


def test_user_block_is_detected(tmp_path: Path) -> None:
    from virtualizarr import open_virtual_dataset

    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["v"] = np.arange(4.0)
    with open(path, "r+b") as fh:
        fh.write(b"user block text")
    for filetype in (None, "hdf5"):
        vds = open_virtual_dataset(str(path), filetype=filetype, loadable_variables=[])
        entry = vds["v"].data.manifest.get_chunk((0,))
        assert isinstance(entry, dict) and entry["offset"] >= 512
        refs = vds.virtualize.to_kerchunk(format="dict")
        with xr.open_dataset(refs, engine="virtualizarr") as actual:
            np.testing.assert_array_equal(actual["v"].values, np.arange(4.0))


def test_round_trip_float32_packing(tmp_path: Path) -> None:
    """float32 scale_factor/add_offset: exact through our engine; the documented limit of
    the plain fsspec + zarr-engine path (JSON numbers come back as Python floats, so xarray
    picks float64) is pinned too, so a change in either is noticed."""
    from virtualizarr.testing import open_kerchunk_refs

    path = tmp_path / "f32.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        v = ds.createVariable("v", "i2", ("x",), zlib=True)
        v.scale_factor = np.float32(0.01)
        v.add_offset = np.float32(250)
        v[:] = [250.01, 250.02, 250.03]
    assert type(open_group(path).variables["v"].attrs["scale_factor"]) is np.float32
    refs = tmp_path / "refs.json"
    open_virtual_dataset(path, loadable_variables=[]).virtualize.to_kerchunk(refs, format="json")
    with (
        xr.open_dataset(path, engine=NC4) as expected,
        xr.open_dataset(refs, engine="virtualizarr") as actual,
        open_kerchunk_refs(refs) as plain,
    ):
        assert expected.v.dtype == np.float32
        xr.testing.assert_identical(actual.load(), expected.load())
        assert plain.v.dtype == np.float64
        np.testing.assert_allclose(plain.v.values, expected.v.values, rtol=1e-6)


def test_round_trip_unwritten_scalar(tmp_path: Path) -> None:
    from virtualizarr.testing import open_via_kerchunk

    path = tmp_path / "scalar.nc"
    with netCDF4.Dataset(path, "w") as ds:
        crs = ds.createVariable("crs", "i4", ())
        crs.grid_mapping_name = "latitude_longitude"
    var = open_group(path).variables["crs"]
    assert var.data.manifest.shape_chunk_grid == () and len(var.data.manifest) == 0
    actual = open_via_kerchunk(path, loadable_variables=[])
    with xr.open_dataset(path, engine=NC4) as expected:
        xr.testing.assert_identical(actual, expected.load())


@pytest.mark.parametrize("group", ["forecast", "/forecast/surface", "other"])
def test_groups(files: dict[str, Path], group: str) -> None:
    from virtualizarr.testing import open_via_kerchunk

    check_against_netcdf(files["nc_groups"], group=group)
    actual = open_via_kerchunk(files["nc_groups"], group=group, loadable_variables=[])
    with xr.open_dataset(files["nc_groups"], engine=NC4, group=group) as expected:
        xr.testing.assert_identical(actual, expected.load())


def test_subgroups_are_not_variables(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_groups"])
    assert set(vg.variables) == {"x"}
    assert vg.attrs == {"root_attr": "root"}


def test_missing_group_names_the_groups(files: dict[str, Path]) -> None:
    with pytest.raises(FileFormatError, match=r"no group 'nope'.*'/forecast/surface'"):
        open_group(files["nc_groups"], group="nope")


# ------------------------------------------------------------------------ codecs
def codec_names(var: VirtualVariable) -> list[str]:
    return [c["name"] for c in codecs_to_json(var.data.metadata)]


def test_filters_map_to_codecs_in_pipeline_order(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_basic"])
    # netCDF-C applies fletcher32 first, then shuffle, then deflate
    assert codec_names(vg.variables["air"]) == [
        "bytes",
        "numcodecs.fletcher32",
        "numcodecs.shuffle",
        "numcodecs.zlib",
    ]
    assert codecs_to_json(vg.variables["air"].data.metadata)[3]["configuration"] == {"level": 5}
    assert vg.variables["air"].data.manifest.shape_chunk_grid == (3, 2, 2)
    # shuffle of (8-byte values + 4-byte checksum) leaves a partial element: inlined
    precip = vg.variables["precip"].data
    assert codec_names(vg.variables["precip"]) == ["bytes"]
    assert len(precip.manifest.inline) == 1 and not precip.manifest.paths
    assert codecs_to_json(vg.variables["big"].data.metadata)[0]["configuration"] == {
        "endian": "big"
    }


def test_compressor_plugins(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_compressors"])
    assert codec_names(vg.variables["zstd"])[1:] == ["numcodecs.zstd"]
    assert codec_names(vg.variables["bzip2"])[1:] == ["numcodecs.bz2"]
    blosc = codecs_to_json(vg.variables["blosc_zstd"].data.metadata)[1]
    assert blosc["name"] == "numcodecs.blosc" and blosc["configuration"]["cname"] == "zstd"
    # szip has no codec; the variable is small, so its values are inlined uncompressed
    szip = vg.variables["szip"].data
    assert codec_names(vg.variables["szip"]) == ["bytes"] and len(szip.manifest.inline) == 1


def test_unmappable_filter_over_the_threshold_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"'szip'.*szip \(id 4\).*drop_variables"):
        open_group(files["nc_compressors"], inline_threshold=1000)
    vg = open_group(files["nc_compressors"], inline_threshold=1000, drop_variables=["szip"])
    assert "szip" not in vg.variables


def test_h5_only_filters(tmp_path: Path) -> None:
    path = cases.make_h5_lzf(tmp_path / "lzf.h5")
    vg = open_group(path, inline_threshold=1000, drop_variables=["lzf_big"])
    with h5py.File(path) as f:
        np.testing.assert_array_equal(chunk_values(vg.variables["lzf"]), f["lzf"][()])
    with pytest.raises(UnsupportedFeatureError, match=r"lzf \(id 32000\)"):
        open_group(path, inline_threshold=100)


def test_chunks_that_skipped_an_optional_filter_are_reencoded(files: dict[str, Path]) -> None:
    path = files["h5_filters"]
    masks: list[int] = []
    with h5py.File(path) as f:
        f["noise"].id.chunk_iter(lambda s: masks.append(s.filter_mask))
        expected = f["noise"][()]
    assert masks == [1, 0, 1, 0]  # two chunks were stored without deflate
    var = open_group(path).variables["noise"]
    assert len(var.data.manifest.inline) == 2 and len(var.data.manifest) == 4
    np.testing.assert_array_equal(chunk_values(var), expected)


@pytest.mark.parametrize(
    ("filters", "itemsize", "unmappable"),
    [
        ([(32004, (0,))], 4, "lz4"),
        ([(32008, (0, 2, 4, 0, 2))], 4, "bitshuffle"),
        ([(6, (0,))], 4, "scaleoffset"),
        ([(5, ())], 2, "nbit"),
        ([(1, (4,)), (2, (4,))], 4, "shuffle of a partial element"),
        ([(3, ()), (2, (8,))], 8, "shuffle of a partial element"),
        ([(12345, ())], 4, "unknown filter"),
    ],
)
def test_unmappable_pipelines(
    filters: list[tuple[int, tuple[int, ...]]], itemsize: int, unmappable: str
) -> None:
    result = pipeline_codecs(filters, itemsize)
    assert result.unmappable is not None and result.unmappable.name == unmappable


def test_shuffle_after_fletcher32_with_4_byte_values_is_mappable() -> None:
    result = pipeline_codecs([(3, ()), (2, (4,)), (1, (1,))], 4)
    assert result.unmappable is None
    assert [c["name"] for c in result.codecs] == [
        "numcodecs.fletcher32",
        "numcodecs.shuffle",
        "numcodecs.zlib",
    ]


# ------------------------------------------------------------------------ layouts
@pytest.mark.filterwarnings(REF_SKIPPED)
def test_layouts_and_fill_values(files: dict[str, Path]) -> None:
    vg = open_group(files["h5_layouts"])
    compact = vg.variables["compact"].data
    assert len(compact.manifest.inline) == 1
    assert codecs_to_json(compact.metadata)[0]["configuration"] == {"endian": "big"}
    unwritten = vg.variables["contiguous_unwritten"].data
    assert len(unwritten.manifest) == 0 and unwritten.metadata.fill_value == 3.5
    unalloc = vg.variables["unallocated"].data
    assert len(unalloc.manifest) == 0 and unalloc.metadata.fill_value == -7
    assert (unalloc.manifest.path_ids == MISSING).all()
    partial = vg.variables["partial"].data
    assert partial.manifest.shape_chunk_grid == (3, 2) and len(partial.manifest) == 2
    assert partial.metadata.fill_value == 42.0
    assert vg.variables["bool"].data.dtype == np.dtype("i1")
    assert vg.variables["scalar"].dims == () and vg.variables["scalar"].data.shape == ()
    assert "ref" not in vg.variables  # netCDF-C skips references
    # an h5py boolean attribute is an anonymous enum; netCDF-C shows it (as its integer)
    # only because the file has a dataset of the same enum type ...
    assert vg.attrs["flag"] == np.int8(1) and type(vg.attrs["flag"]) is np.int8


def test_enum_attributes_follow_netcdf_c(tmp_path: Path) -> None:
    # ... and hides it otherwise
    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as f:
        f.attrs["flag"] = True
    assert open_group(path).attrs == {}
    with xr.open_dataset(path, engine=NC4) as ds:
        assert ds.attrs == {}


def test_unlimited_dimensions_pad_short_variables(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_unlimited"])
    assert vg.variables["b"].data.shape == (6,)
    assert vg.variables["b"].data.manifest.shape_chunk_grid == (2,)
    assert vg.variables["c"].data.shape == (6,)
    assert len(vg.variables["c"].data.manifest) == 1
    assert vg.variables["e"].data.shape == (0,)


def test_dims_without_coordinate_variables(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_basic"])
    assert "station" not in vg.variables
    assert vg.variables["station_id"].dims == ("station",)


def test_phony_dimensions_follow_netcdf_c(files: dict[str, Path]) -> None:
    with xr.open_dataset(files["h5_phony"], engine=NC4) as root:
        dims = {k: v.dims for k, v in root.variables.items()}
    assert dims == {
        "a": ("phony_dim_3", "phony_dim_4"),
        "b": ("phony_dim_4", "phony_dim_3"),
        "c": ("phony_dim_3", "phony_dim_5"),
        "d": ("phony_dim_6",),
        "e": ("phony_dim_7",),
    }  # the truth: children first, shared by length and unlimitedness
    assert {k: v.dims for k, v in open_group(files["h5_phony"]).variables.items()} == dims
    assert open_group(files["h5_phony"], group="g").variables["x"].dims == (
        "phony_dim_1",
        "phony_dim_2",
    )
    assert open_group(files["h5_phony"], group="g/h").variables["y"].dims == ("phony_dim_0",)


# ------------------------------------------------------------------------ refusals
def test_empty_dataspace_is_refused_unless_dropped(tmp_path: Path) -> None:
    path = cases.make_h5_empty(tmp_path / "empty.h5")
    with pytest.raises(OSError):  # the truth: netCDF-C cannot open the file at all
        xr.open_dataset(path, engine=NC4)
    with pytest.raises(UnsupportedFeatureError, match=r"'empty'.*null.*drop_variables"):
        open_group(path)
    vg = open_group(path, drop_variables="empty")
    np.testing.assert_array_equal(chunk_values(vg.variables["ok"]), np.arange(3))


def test_compound_of_numeric_fields_is_referenced(tmp_path: Path) -> None:
    """(More compound and complex cases: tests/readers/test_hdf5_round3.py.)"""
    path = cases.make_h5_compound(tmp_path / "compound.h5")
    rec = open_group(path).variables["rec"]
    assert rec.data.dtype == np.dtype([("a", "<i4"), ("b", "<f8")])
    assert rec.data.manifest.paths == (Location.of(path).url,)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(chunk_values(rec), f["rec"][()])


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "junk.nc"
    path.write_bytes(b"not an hdf5 file" * 20)
    with pytest.raises(FileFormatError, match=r"junk.nc is not a readable HDF5"):
        open_group(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file(files: dict[str, Path], tmp_path: Path, keep: float) -> None:
    data = files["nc_basic"].read_bytes()
    path = tmp_path / "cut.nc"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FileFormatError, match=r"cut.nc"):
        open_group(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_group(tmp_path / "nope.nc")


def test_unknown_option(files: dict[str, Path]) -> None:
    with pytest.raises(TypeError, match="colour"):
        open_group(files["nc_enum"], colour="red")


# ------------------------------------------------------------------------ interface
def test_reader_interface(files: dict[str, Path], tmp_path: Path) -> None:
    reader = READERS["hdf5"]
    assert isinstance(reader, LazyReader) and isinstance(reader.load(), HDF5Reader)
    nc4 = Location.of(files["nc_enum"])
    nc3 = tmp_path / "x.nc"
    nc3.write_bytes(b"CDF\x01" + bytes(28))
    assert reader.guess_can_open(Probe(nc4))
    assert not reader.guess_can_open(Probe(Location.of(nc3)))
    assert find_reader(Probe(nc4)) is reader
    assert find_reader(Probe(Location.of(nc3)), "netcdf4") is reader  # by name, no detection
    assert set(reader.open(nc4).variables) == {"cloud", "is_land"}


def test_drop_variables(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_basic"], drop_variables=["air", "lat"])
    assert "air" not in vg.variables and "lat" not in vg.variables
    # dimensions still come from the dropped coordinate's scale
    assert vg.variables["lon"].dims == ("lon",)
    assert vg.variables["partial"].dims == ("lat", "lon")


# ------------------------------------------------------------------------ combining
CONCAT_KWARGS: dict[str, Any] = {
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
    "combine_attrs": "override",
}


def test_concatenate_three_files_along_time(tmp_path: Path) -> None:
    from virtualizarr import open_virtual_dataset
    from virtualizarr.testing import open_kerchunk_refs

    paths = [cases.make_nc_series(tmp_path / f"s{i}.nc", start=4 * i) for i in range(3)]
    virtual = [open_virtual_dataset(str(p)) for p in paths]
    combined = xr.concat(virtual, dim="time", **CONCAT_KWARGS)
    manifest = combined["temp"].data.manifest
    assert manifest.shape_chunk_grid == (6, 1) and len(manifest.paths) == 3
    refs = combined.virtualize.to_kerchunk(format="dict")
    with (
        open_kerchunk_refs(refs) as actual,
        xr.open_mfdataset(
            paths, engine=NC4, combine="nested", concat_dim="time", **CONCAT_KWARGS
        ) as expected,
    ):
        xr.testing.assert_identical(actual.load(), expected.load())


def test_values_of_a_partly_written_chunk_grid(files: dict[str, Path]) -> None:
    vg = open_group(files["nc_basic"])
    with netCDF4.Dataset(files["nc_basic"]) as ds:
        ds.set_auto_maskandscale(False)
        expected = ds["partial"][:]
    values = chunk_values(vg.variables["partial"])
    np.testing.assert_array_equal(values, expected)
    assert math.prod(vg.variables["partial"].data.manifest.shape_chunk_grid) == 6
    assert len(vg.variables["partial"].data.manifest) == 1


# ------------------------------------------------------------------------ dtype sweep
FILTER_SETS: dict[str, dict[str, Any]] = {
    "none": {},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "shuffle_gzip": {"shuffle": True, "compression": "gzip"},
    "fletcher32": {"fletcher32": True},
    "shuffle_gzip_fletcher32": {"shuffle": True, "compression": "gzip", "fletcher32": True},
}


@pytest.mark.parametrize("filters", list(FILTER_SETS))
@pytest.mark.parametrize("endian", ["<", ">"])
def test_dtypes_endians_and_filters(tmp_path: Path, filters: str, endian: str) -> None:
    path = tmp_path / "sweep.h5"
    rng = np.random.default_rng(2)
    expected: dict[str, np.ndarray] = {}
    with h5py.File(path, "w") as f:
        for code in ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]:
            native = np.dtype(code)
            if np.issubdtype(native, np.integer):
                info = np.iinfo(native)
                data = rng.integers(info.min, info.max, (9, 7), dtype=native, endpoint=True)
            else:
                data = rng.standard_normal((9, 7)).astype(native)
            data = data.astype(native.newbyteorder(endian))
            f.create_dataset(code, data=data, chunks=(4, 3), fillvalue=1, **FILTER_SETS[filters])
            expected[code] = data
    vg = open_group(path)
    for code, data in expected.items():
        var = vg.variables[code]
        # h5py puts fletcher32 after shuffle and deflate: always mappable
        assert len(var.data.manifest.inline) == 0, code
        values = chunk_values(var)
        assert values.dtype == data.dtype, code
        np.testing.assert_array_equal(values, data, err_msg=code)
