"""The way in (virtualizarr.api): ``open_virtual_group`` over every kind of input,
``open_virtual_dataset``'s options, and ``verify``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.api import open_virtual_dataset, open_virtual_group, verify
from virtualizarr.errors import (
    FileFormatError,
    InvalidArgumentError,
    InvalidReferencesError,
    SourceNotFoundError,
    StaleReferenceError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UnsupportedFileTypeError,
)
from virtualizarr.identity import identity_from_token
from virtualizarr.manifests import ManifestArray

VARIABLES = {"time", "x", "area", "cell", "air"}


def write_source(path: Path, *, days: int = 3) -> Path:
    """netCDF4: dimension coordinates, a 1-D and a 2-D auxiliary coordinate, chunked data."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "api sample"
        nc.createDimension("time", None)
        nc.createDimension("x", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(days)
        nc.createVariable("x", "f4", ("x",))[:] = np.linspace(0, 3, 4)
        nc.createVariable("area", "f4", ("x",))[:] = np.full(4, 2.5)
        nc.createVariable("cell", "i4", ("time", "x"))[:] = np.arange(days * 4).reshape(days, 4)
        air = nc.createVariable("air", "f4", ("time", "x"), zlib=True, chunksizes=(1, 4))
        air.units = "K"
        air.coordinates = "cell area"
        air[:] = np.arange(days * 4, dtype="f4").reshape(days, 4) + 250
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_source(tmp_path / "src.nc")


def write_refs(src: Path, kind: str, out: Path) -> Any:
    """References to every variable of ``src`` as ``kind``: the path or the dict."""
    vds = open_virtual_dataset(src, loadable_variables=[])
    if kind == "dict":
        return vds.virtualize.to_kerchunk(format="dict")
    if kind == "zarr":
        vds.virtualize.to_zarr(out)
    else:
        vds.virtualize.to_kerchunk(out, format=kind)
    return out


REF_KINDS = {"json": "kerchunk", "dict": "kerchunk", "parquet": "kerchunk", "zarr": "zarr"}


@pytest.fixture(params=sorted(REF_KINDS))
def ref_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------- open_virtual_group
@pytest.mark.parametrize("filetype", [None, "hdf5", "netcdf4", "HDF5", "h5", "hdf"])
def test_group_of_a_netcdf4_file(src: Path, filetype: str | None) -> None:
    vgroup = open_virtual_group(src, filetype=filetype)
    assert set(vgroup.variables) == VARIABLES
    air = vgroup.variables["air"]
    assert air.dims == ("time", "x") and air.attrs["units"] == "K"
    assert isinstance(air.data, ManifestArray) and air.data.shape == (3, 4)
    assert air.data.manifest.paths == (src.resolve().as_uri(),)
    assert vgroup.attrs["title"] == "api sample"


@pytest.mark.parametrize("filetype", [None, "netcdf3", "NetCDF3"])
def test_group_of_a_netcdf3_file(tmp_path: Path, filetype: str | None) -> None:
    path = tmp_path / "n3.nc"
    xr.Dataset(
        {"air": (("time", "x"), np.arange(12, dtype="f4").reshape(3, 4), {"units": "K"})},
        coords={"x": np.arange(4.0)},
    ).to_netcdf(path, engine="scipy")
    assert path.read_bytes()[:3] == b"CDF"
    vgroup = open_virtual_group(str(path), filetype=filetype)
    assert set(vgroup.variables) == {"air", "x"}
    air = vgroup.variables["air"].data
    assert air.shape == (3, 4) and air.manifest.paths == (path.resolve().as_uri(),)


def test_group_of_every_reference_input(src: Path, tmp_path: Path, ref_kind: str) -> None:
    refs = write_refs(src, ref_kind, tmp_path / f"refs.{ref_kind}")
    direct = open_virtual_group(src)
    for filetype in (None, REF_KINDS[ref_kind]):
        vgroup = open_virtual_group(refs, filetype=filetype)
        assert set(vgroup.variables) == VARIABLES
        for name in VARIABLES:
            got, want = vgroup.variables[name].data, direct.variables[name].data
            assert got.shape == want.shape and got.dtype == want.dtype
            assert got.manifest.paths == (src.resolve().as_uri(),)
            np.testing.assert_array_equal(got.manifest.offsets, want.manifest.offsets)
            np.testing.assert_array_equal(got.manifest.lengths, want.manifest.lengths)
        assert vgroup.variables["air"].attrs["units"] == "K"
        (token,) = vgroup.variables["air"].data.manifest.sources
        assert token is not None
        assert identity_from_token(token) == {
            "size": src.stat().st_size,
            "mtime_ns": src.stat().st_mtime_ns,
        }


def test_references_only_accepts_references(src: Path, tmp_path: Path, ref_kind: str) -> None:
    refs = write_refs(src, ref_kind, tmp_path / f"refs.{ref_kind}")
    assert set(open_virtual_group(refs, references_only=True).variables) == VARIABLES


def test_references_only_refuses_a_netcdf_file(src: Path) -> None:
    with pytest.raises(UnsupportedFileTypeError, match="is a hdf5 file, not references") as e:
        open_virtual_group(src, references_only=True)
    assert str(src.resolve()) in str(e.value) and "open_virtual_dataset" in str(e.value)
    with pytest.raises(UnsupportedFileTypeError, match="not a known reader of references"):
        open_virtual_group(src, filetype="netcdf4", references_only=True)


@pytest.mark.parametrize("filetype", ["hdf4", "netcdf5", ""])
def test_unknown_filetype(src: Path, filetype: str) -> None:
    with pytest.raises(UnsupportedFileTypeError, match="is not a known reader") as e:
        open_virtual_group(src, filetype=filetype)
    for name in ("hdf5", "netcdf3", "kerchunk", "zarr"):
        assert name in str(e.value)


def test_unrecognised_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text")
    with pytest.raises(UnsupportedFileTypeError, match="first bytes are b'just som'"):
        open_virtual_group(path)


def test_forced_filetype_is_used(src: Path) -> None:
    """A forced reader reads the file even when it is of another format, and says so."""
    with pytest.raises(FileFormatError, match="expected a netCDF3 file"):
        open_virtual_group(src, filetype="netcdf3")
    with pytest.raises(InvalidReferencesError, match="not valid JSON"):
        open_virtual_group(src, filetype="kerchunk")


def test_group_inside_a_netcdf4_file(tmp_path: Path) -> None:
    path = tmp_path / "g.nc"
    with netCDF4.Dataset(path, "w") as nc:
        sub = nc.createGroup("forecast")
        sub.createDimension("n", 2)
        sub.createVariable("t2m", "f4", ("n",))[:] = [1, 2]
    assert set(open_virtual_group(path, group="forecast").variables) == {"t2m"}
    with pytest.raises(FileFormatError, match="no group 'nowhere'"):
        open_virtual_group(path, group="nowhere")


def test_drop_variables_are_left_out(src: Path, tmp_path: Path) -> None:
    refs = write_refs(src, "json", tmp_path / "refs.json")
    for source in (src, refs):
        assert set(open_virtual_group(source, drop_variables=["air", "cell"]).variables) == {
            "time",
            "x",
            "area",
        }


# ---------------------------------------------------------------------- verify_sources
def test_verify_sources_detects_a_rewritten_source(src: Path, tmp_path: Path) -> None:
    refs = write_refs(src, "json", tmp_path / "refs.json")
    assert set(open_virtual_group(refs, verify_sources=True).variables) == VARIABLES
    size = src.stat().st_size
    write_source(src, days=5)  # rewritten in place, larger
    assert src.stat().st_size != size
    with pytest.raises(StaleReferenceError, match=r"src\.nc: modified .* UTC") as e:
        open_virtual_group(refs, verify_sources=True)
    assert f"size {size:,} bytes -> {src.stat().st_size:,} bytes" in str(e.value)
    assert set(open_virtual_group(refs).variables) == VARIABLES  # unchecked by default
    src.unlink()
    with pytest.raises(StaleReferenceError, match=r"src\.nc: missing"):
        open_virtual_group(refs, verify_sources=True)


# ---------------------------------------------------------------------- reader_options
def write_strings(path: Path) -> Path:
    """A variable-length string variable: HDF5 stores it on a heap, so it must be inlined."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("n", 3)
        names = nc.createVariable("names", str, ("n",))
        names[:] = np.array(["a", "bb", "ccc"], dtype=object)
        nc.createVariable("vals", "f4", ("n",))[:] = [1, 2, 3]
    return path


def test_inline_threshold_reaches_the_reader(tmp_path: Path) -> None:
    path = write_strings(tmp_path / "s.nc")
    vgroup = open_virtual_group(path)
    assert vgroup.variables["names"].data.shape == (3,)
    with pytest.raises(UnsupportedFeatureError, match="inline_threshold=1") as e:
        open_virtual_group(path, reader_options={"inline_threshold": 1})
    assert "names" in str(e.value)
    kept = open_virtual_group(
        path, reader_options={"inline_threshold": 1}, drop_variables=["names"]
    )
    assert set(kept.variables) == {"vals"}


def test_unknown_reader_option(src: Path, tmp_path: Path, ref_kind: str) -> None:
    refs = write_refs(src, ref_kind, tmp_path / f"refs.{ref_kind}")
    for source in (src, refs):
        with pytest.raises(UnexpectedOptionError, match="bogus"):
            open_virtual_group(source, reader_options={"bogus": 1})


# ---------------------------------------------------------------------- open_virtual_dataset
def test_default_loads_dimension_coordinates(src: Path) -> None:
    vds = open_virtual_dataset(src)
    assert set(vds.variables) == VARIABLES
    for name in ("time", "x"):
        assert not isinstance(vds[name].data, ManifestArray)
        assert name in vds.indexes
    assert vds.time.dtype == np.dtype("datetime64[ns]")
    assert str(vds.time.values[-1])[:10] == "2000-01-03"
    np.testing.assert_array_equal(vds.x.values, np.linspace(0, 3, 4, dtype="f4"))
    for name in ("air", "area", "cell"):  # not dimension coordinates: kept virtual
        assert isinstance(vds[name].data, ManifestArray)
    assert {"cell", "area"} <= set(vds.coords) and "air" in vds.data_vars
    assert vds.attrs["title"] == "api sample"


def test_empty_loadable_variables_keeps_everything_virtual(src: Path) -> None:
    vds = open_virtual_dataset(src, loadable_variables=[])
    assert all(isinstance(vds[n].data, ManifestArray) for n in VARIABLES)
    assert vds.time.attrs["units"] == "days since 2000-01-01"  # kept encoded
    assert not vds.indexes


def test_named_loadable_variables(src: Path) -> None:
    vds = open_virtual_dataset(src, loadable_variables=["air"])
    assert not isinstance(vds.air.data, ManifestArray)
    with xr.open_dataset(src) as ds:
        np.testing.assert_array_equal(vds.air.values, ds.air.values)
    assert isinstance(vds.time.data, ManifestArray)


def test_unknown_loadable_variable(src: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\['nope'\]") as e:
        open_virtual_dataset(src, loadable_variables=["air", "nope"])
    assert "['air', 'area', 'cell', 'time', 'x']" in str(e.value)


@pytest.mark.parametrize("drop", ["air", ["air"], ["air", "cell"], ("area",)])
def test_drop_variables(src: Path, drop: str | list[str] | tuple[str, ...]) -> None:
    vds = open_virtual_dataset(src, drop_variables=drop)
    dropped = {drop} if isinstance(drop, str) else set(drop)
    assert set(vds.variables) == VARIABLES - dropped


def test_drop_a_loadable_variable(src: Path) -> None:
    vds = open_virtual_dataset(src, drop_variables="x", loadable_variables=None)
    assert "x" not in vds.variables and "time" in vds.indexes
    with pytest.raises(InvalidArgumentError, match="'x'"):
        open_virtual_dataset(src, drop_variables="x", loadable_variables=["x"])


def test_decode_times_false(src: Path) -> None:
    vds = open_virtual_dataset(src, decode_times=False)
    assert vds.time.dtype == np.float64
    np.testing.assert_array_equal(vds.time.values, [0.0, 1.0, 2.0])
    assert vds.time.attrs["units"] == "days since 2000-01-01"


@pytest.mark.parametrize("given", ["missing.nc", "sub dir/missing.nc"])
def test_missing_file_named_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceNotFoundError) as e:
        open_virtual_dataset(given)
    assert str(e.value).startswith(f"{given} does not exist")
    assert isinstance(e.value, FileNotFoundError)
    absolute = tmp_path / "gone.nc"
    with pytest.raises(SourceNotFoundError, match=f"^{absolute} does not exist"):
        open_virtual_dataset(absolute)


def test_source_identity_recorded(src: Path) -> None:
    vds = open_virtual_dataset(src, loadable_variables=[])
    st = src.stat()
    for name in VARIABLES:
        manifest = vds[name].data.manifest
        assert manifest.paths == (src.resolve().as_uri(),)
        (token,) = manifest.sources
        assert token is not None and identity_from_token(token) == {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }


def test_dataset_from_references_matches_the_source(
    src: Path, tmp_path: Path, ref_kind: str
) -> None:
    refs = write_refs(src, ref_kind, tmp_path / f"refs.{ref_kind}")
    from_refs = open_virtual_dataset(refs)
    direct = open_virtual_dataset(src)
    xr.testing.assert_identical(from_refs[["time", "x"]], direct[["time", "x"]])
    assert from_refs.air.data.manifest.sources == direct.air.data.manifest.sources


@pytest.mark.parametrize("name", ["a#b", "c?d"])
def test_relative_manifest_store_with_url_characters_in_a_name(tmp_path: Path, name: str) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "src.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("x", 2)
        nc.createVariable(name, "f4", ("x",))[:] = [1, 2]
    store = tmp_path / "data" / "v.zarr"
    open_virtual_dataset(path).virtualize.to_zarr(store, relative_paths=True)
    reread = open_virtual_dataset(store, loadable_variables=[])
    assert reread[name].data.manifest.paths == (path.resolve().as_uri(),)


# ---------------------------------------------------------------------- verify
def test_verify_references_and_datasets(src: Path, tmp_path: Path) -> None:
    uri = src.resolve().as_uri()
    refs_json = write_refs(src, "json", tmp_path / "refs.json")
    refs_dict = write_refs(src, "dict", tmp_path / "unused")
    vds = open_virtual_dataset(src, loadable_variables=[])
    for target in (refs_json, refs_dict, vds, str(refs_json)):
        report = verify(target)
        assert report.ok and report.checked == (uri,) and not report.changed
    assert json.loads(refs_json.read_text())["virtualizarr"]["sources"][uri]["size"] == (
        src.stat().st_size
    )

    write_source(src, days=4)  # a different size
    for target in (refs_json, refs_dict, vds):
        report = verify(target)
        assert not report.ok and list(report.changed) == [uri] and report.stale == (uri,)
        recorded, found = report.changed[uri]
        assert recorded["size"] != found["size"] == src.stat().st_size
        with pytest.raises(StaleReferenceError, match=r"src\.nc"):
            report.raise_if_stale()

    os.remove(src)
    for target in (refs_json, refs_dict, vds):
        report = verify(target)
        assert report.missing == (uri,) and not report.changed and not report.ok


def test_verify_refuses_a_netcdf_file(src: Path) -> None:
    with pytest.raises(UnsupportedFileTypeError, match="not references"):
        verify(src)


def test_verify_of_loaded_variables_only(src: Path) -> None:
    vds = open_virtual_dataset(src, loadable_variables=list(VARIABLES))
    report = verify(vds)
    assert report.ok and report.checked == () and report.unrecorded == ()


def test_package_exports_the_api() -> None:
    assert vz.open_virtual_dataset is open_virtual_dataset and vz.verify is verify


def test_loadable_variables_may_be_one_name(src: Path) -> None:
    vds = open_virtual_dataset(src, loadable_variables="time")
    assert isinstance(vds["time"].data, np.ndarray)
    assert all(isinstance(vds[v].data, ManifestArray) for v in vds.variables if v != "time")


def test_the_engine_says_a_netcdf_file_is_not_references(src: Path) -> None:
    with pytest.raises(UnsupportedFileTypeError, match=r"is a hdf5 file, not references"):
        xr.open_dataset(src, engine="virtualizarr")
