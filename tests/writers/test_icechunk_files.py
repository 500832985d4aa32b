"""Every sample file and case builder of the HDF5, netCDF3 and DMR++ readers through
Icechunk: ``to_icechunk``, commit, ``xr.open_zarr(session.store)``, compared with the
truth the kerchunk and engine paths are compared with (``xr.open_dataset`` of the
original, h5py where netCDF-C gives none).

Where Zarr v3 read by plain xarray cannot show what the original shows, the test asserts
the documented behaviour exactly (docs/usage.md, known limitations): float32 packing
decodes to float64 (:func:`tests.writers.test_icechunk.assert_matches`), a bytes or
string variable with a ``_FillValue`` (which xarray cannot read from Zarr v3) is refused
by the writer (:func:`tests.writers.icechunk_support.assert_string_fill_refused`) and the
rest reads identically, and a source whose recorded identity predates its checkout is
refused by Icechunk itself.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from tests.readers import hdf5_cases, hdf5_more_cases
from tests.readers.dmrpp_cases import CASES as DMRPP_CASES
from tests.readers.dmrpp_cases import write_dmrpp
from tests.readers.test_dmrpp import DATA as DMRPP_DATA
from tests.readers.test_dmrpp import HYRAX_ONLY, REAL
from tests.readers.test_netcdf3 import NC4_FORMATS, write_netcdf4, write_scipy, write_series
from tests.test_sample_files import NETCDF_C_REFUSES, SAMPLES, UNDEFINED_VALUES
from tests.writers.icechunk_support import (
    assert_string_fill_refused,
    committed_store,
    ic,
    open_store,
    string_fills,
    through_icechunk,
)
from tests.writers.test_icechunk import assert_matches
from virtualizarr import open_virtual_dataset, open_virtual_mfdataset
from virtualizarr.errors import DroppedVariableWarning, UnsupportedFeatureError

DATA = Path(__file__).resolve().parent.parent / "data"
NC4 = "netcdf4"


def truth(path: Path, **kwargs: Any) -> xr.Dataset:
    with xr.open_dataset(path, engine=NC4, **kwargs) as ds:
        return ds.load()


def check_file(path: Path, *roots: Path, group: str | None = None, **truth_kw: Any) -> None:
    """The file virtualized (nothing loaded, then the default loading) reads back as
    netCDF-C shows it."""
    expected = truth(path, group=group, **truth_kw)
    for loadable in ([], None):
        vds = open_virtual_dataset(path, group=group, loadable_variables=loadable)
        names = string_fills(vds)
        if names:
            assert_string_fill_refused(vds, *roots)
        assert_matches(through_icechunk(vds.drop_vars(names), *roots), expected.drop_vars(names))


# ---------------------------------------------------------------------- sample files
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_files(path: Path) -> None:
    if path.name in NETCDF_C_REFUSES:  # no netCDF truth: h5py's values
        got = through_icechunk(open_virtual_dataset(path, loadable_variables=[]), DATA)
        with h5py.File(path) as f:
            assert sorted(got.variables) == sorted(f)
            for name in f:
                np.testing.assert_array_equal(got[name].values, f[name][()])
        return
    if path.name in UNDEFINED_VALUES:  # undefined bytes: h5py's zeros, then left out
        name = UNDEFINED_VALUES[path.name]
        got = through_icechunk(open_virtual_dataset(path, loadable_variables=[]), DATA)
        with h5py.File(path) as f:
            np.testing.assert_array_equal(got[name].values, f[name][()])
        vds = open_virtual_dataset(path, loadable_variables=[], drop_variables=[name])
        assert_matches(through_icechunk(vds, DATA), truth(path).drop_vars(name))
        return
    check_file(path, DATA)


def test_float32_packed_samples_are_the_documented_limit() -> None:
    """issue671.nc and store_v1/source.nc pack with float32 scale_factor: float32 from
    netCDF, float64 through plain Zarr (attributes are JSON)."""
    for path, name in [
        (DATA / "netcdf4-python" / "issue671.nc", "soil_moisture"),
        (DATA / "store_v1" / "source.nc", "air"),
    ]:
        got = through_icechunk(open_virtual_dataset(path, loadable_variables=[]), DATA)
        assert truth(path)[name].dtype == np.float32 and got[name].dtype == np.float64


@pytest.mark.parametrize("name", ["store.zarr", "store_virtual.zarr"])
def test_old_manifest_stores(tmp_path: Path, name: str) -> None:
    """A store of the previous version records its source's identity as it was written;
    a checkout gives the file a newer mtime, so Icechunk refuses its chunks -- as
    engine="virtualizarr" refuses them -- until last_updated_at vouches for it."""
    data = tmp_path / "store_v1"
    shutil.copytree(DATA / "store_v1", data)
    vds = open_virtual_dataset(data / name, loadable_variables=[])
    store = committed_store(vds, data)
    with pytest.raises(ic.IcechunkError, match="checksum of the object"):
        open_store(store)
    now = committed_store(vds, data, last_updated_at=datetime.now(UTC))
    assert_matches(open_store(now), truth(data / "source.nc"))


# ---------------------------------------------------------------------- HDF5 builders
MORE: dict[str, Callable[[Path], Path]] = {
    "ascii": lambda p: hdf5_more_cases.make_charset(p, "ascii"),
    "utf8": lambda p: hdf5_more_cases.make_charset(p, "utf-8"),
    "mixed_charsets": hdf5_more_cases.make_mixed_charsets,
    "links": hdf5_more_cases.make_links,
    "nc_links": hdf5_more_cases.make_nc_links,
    "several_scales": hdf5_more_cases.make_several_scales,
    "user_block": hdf5_more_cases.make_user_block,
    "user_block_64k": lambda p: hdf5_more_cases.make_user_block(p, 65536),
    "user_block_scales": hdf5_more_cases.make_user_block_scales,
    "nc_compound": hdf5_more_cases.make_nc_compound,
}
"""Files netCDF-C opens (hdf5_cases.NETCDF_CASES are in test_icechunk.py)."""


@pytest.mark.parametrize("case", sorted(MORE))
def test_hdf5_case_files(tmp_path: Path, case: str) -> None:
    path = MORE[case](tmp_path / f"{case}.h5")
    check_file(path, tmp_path)
    if case == "links":
        check_file(path, tmp_path, group="g")


def test_complex_numbers(tmp_path: Path) -> None:
    path = hdf5_more_cases.make_complex(tmp_path / "complex.h5")
    check_file(path, tmp_path, auto_complex=True)


@pytest.mark.filterwarnings("ignore:.*unsupported [Cc]ompound:UserWarning")  # netCDF4-python
def test_compound_records(tmp_path: Path) -> None:
    """Structured dtypes are Zarr v3 data types xarray reads: the fields as h5py has them
    (netCDF-C cuts the 'S4' field of 'table' to one byte, so h5py is its truth)."""
    path = hdf5_more_cases.make_compound(tmp_path / "compound.h5")
    vds = open_virtual_dataset(path, loadable_variables=[], drop_variables=["with_vlen"])
    got = through_icechunk(vds, tmp_path)
    assert_matches(got.drop_vars("table"), truth(path).drop_vars("table"))
    with h5py.File(path) as f:
        table = f["table"][()]
    for field in table.dtype.names or ():
        np.testing.assert_array_equal(got["table"].values[field], table[field])
    plain = hdf5_cases.make_h5_compound(tmp_path / "plain.h5")
    rec = through_icechunk(open_virtual_dataset(plain), tmp_path)["rec"].values
    with h5py.File(plain) as f:
        assert rec.dtype == f["rec"].dtype
        np.testing.assert_array_equal(rec, f["rec"][()])


def test_h5py_only_files(tmp_path: Path) -> None:
    """Files netCDF-C cannot open, against h5py: inlined LZF chunks become native
    Icechunk chunks; what the reader leaves out it names, as on the other paths."""
    lzf = hdf5_cases.make_h5_lzf(tmp_path / "lzf.h5")
    vds = open_virtual_dataset(
        lzf, reader_options={"inline_threshold": 1000}, drop_variables=["lzf_big"]
    )
    with h5py.File(lzf) as f:
        np.testing.assert_array_equal(through_icechunk(vds, tmp_path)["lzf"].values, f["lzf"])
    odd = hdf5_more_cases.make_link_oddities(tmp_path / "odd.h5")
    with pytest.warns(DroppedVariableWarning, match="'/dangling'"):
        vds = open_virtual_dataset(odd, loadable_variables=[])
    np.testing.assert_array_equal(through_icechunk(vds, tmp_path)["data"].values, [0.0, 1.0])
    ext = hdf5_more_cases.make_external_other(tmp_path / "ext.h5")
    with pytest.warns(DroppedVariableWarning, match="'/elsewhere'"):
        vds = open_virtual_dataset(ext, loadable_variables=[])
    assert list(through_icechunk(vds, tmp_path).variables) == ["near"]
    empty = hdf5_cases.make_h5_empty(tmp_path / "empty.h5")
    with pytest.raises(UnsupportedFeatureError, match="drop_variables"):
        open_virtual_dataset(empty)  # refused before any writer, as for every output


# ---------------------------------------------------------------------- netCDF3
@pytest.mark.parametrize("nrec", [0, 3])
@pytest.mark.parametrize("fmt", NC4_FORMATS)
def test_netcdf3_written_by_netcdf_c(tmp_path: Path, fmt: str, nrec: int) -> None:
    """Every type, record padding, scalars, fills, chars; 'rnames' has a char _FillValue."""
    path = write_netcdf4(tmp_path / "a.nc", fmt, nrec=nrec)
    assert string_fills(open_virtual_dataset(path, loadable_variables=[])) == ["rnames"]
    check_file(path, tmp_path)


@pytest.mark.parametrize("version", [1, 2])
def test_netcdf3_written_by_scipy(tmp_path: Path, version: int) -> None:
    check_file(write_scipy(tmp_path / "s.nc", version), tmp_path)


def test_netcdf3_fills_masks_times_and_strings(tmp_path: Path) -> None:
    """Values equal to netCDF's default fill stay values; a declared fill masks."""
    path = tmp_path / "f.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        nc.createDimension("s", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2000-01-01", "noleap"
        t[:] = [0, 1]
        v = nc.createVariable("v", "i2", ("time", "x"), fill_value=-1)
        v.scale_factor, v.add_offset = 0.1, 1.0
        v[:] = np.ma.masked_equal([[1, 0, -9], [4, 5, 6]], -9)
        w = nc.createVariable("w", "f4", ("time", "x"))
        w[:] = [[9.969209968386869e36, 1.5, 0], [2, 3, 4]]
        nc.createVariable("c", "S1", ("x", "s"))[:] = netCDF4.stringtochar(
            np.array(["ab", "cde", "f"], "S4")
        )
    check_file(path, tmp_path)
    for loadable in (["v"], ["c", "time"]):
        vds = open_virtual_dataset(path, loadable_variables=loadable)
        assert_matches(through_icechunk(vds, tmp_path), truth(path))


@pytest.mark.parametrize("chars", [False, True])
def test_netcdf3_files_of_three_formats_concatenated(tmp_path: Path, chars: bool) -> None:
    files = [
        write_series(tmp_path / f"f{i}.nc", fmt, t0, nrec, chars)
        for i, (fmt, t0, nrec) in enumerate(zip(NC4_FORMATS, [0, 2, 5], [2, 3, 1], strict=True))
    ]
    concat: dict[str, Any] = {
        "data_vars": "minimal",
        "coords": "minimal",
        "compat": "override",
        "combine_attrs": "override",
    }
    vds = open_virtual_mfdataset(files, combine="nested", concat_dim="time", **concat)
    with xr.open_mfdataset(files, combine="nested", concat_dim="time", **concat) as mf:
        assert_matches(through_icechunk(vds, tmp_path), mf.load())


# ---------------------------------------------------------------------- DMR++
@pytest.mark.parametrize("case", sorted(DMRPP_CASES))
def test_generated_dmrpp_sidecars(tmp_path: Path, case: str) -> None:
    h5 = DMRPP_CASES[case](tmp_path / f"{case}.h5")
    write_dmrpp(h5)
    sidecar = h5.with_name(h5.name + ".dmrpp")
    vds = open_virtual_dataset(sidecar, loadable_variables=[])
    assert_matches(through_icechunk(vds, tmp_path), truth(h5))
    group = {"nc4_cf": "forecast", "h5_plain": "sub"}[case]
    vds = open_virtual_dataset(sidecar, group=group, loadable_variables=[])
    assert_matches(through_icechunk(vds, tmp_path), truth(h5, group=group))


@pytest.mark.parametrize("name", sorted(REAL))
def test_bes_dmrpp_sidecars(name: str) -> None:
    drop = list(REAL[name])
    vds = open_virtual_dataset(
        DMRPP_DATA / f"{name}.dmrpp",
        loadable_variables=[],
        reader_options={"data_url": str(DMRPP_DATA / name)},
        drop_variables=drop,
    )
    for v in vds.variables.values():
        for attr in HYRAX_ONLY:
            v.attrs.pop(attr, None)
    assert_matches(through_icechunk(vds, DMRPP_DATA), truth(DMRPP_DATA / name, drop_variables=drop))


def test_bes_sidecars_netcdf_cannot_open() -> None:
    """Against h5py: d_int.h5 (netCDF-C refuses it) and FValue_chunk.h5, whose unwritten
    chunks read as the sidecar's fillValue."""
    opts = {"data_url": str(DMRPP_DATA / "d_int.h5")}
    vds = open_virtual_dataset(
        DMRPP_DATA / "d_int.h5.dmrpp", loadable_variables=[], reader_options=opts
    )
    got = through_icechunk(vds, DMRPP_DATA)
    with h5py.File(DMRPP_DATA / "d_int.h5") as f:
        for name in got.variables:
            np.testing.assert_array_equal(got[name].values, f[name][()])
    opts = {"data_url": str(DMRPP_DATA / "FValue_chunk.h5")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vds = open_virtual_dataset(
            DMRPP_DATA / "FValue_chunk.h5.dmrpp", loadable_variables=[], reader_options=opts
        )
    got_fill = through_icechunk(vds, DMRPP_DATA)["chunks_all_fill"].values
    with h5py.File(DMRPP_DATA / "FValue_chunk.h5") as f:
        written = f["chunks_all_fill"][()]
    np.testing.assert_array_equal(got_fill[0:2, 0:2], written[0:2, 0:2])
    np.testing.assert_array_equal(got_fill[2:4, 2:4], written[2:4, 2:4])
    assert (got_fill[0:2, 2:4] == -99).all()
