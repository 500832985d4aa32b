"""Real-world fidelity: model-output-like files read back identical to xr.open_dataset.

Each file mixes what archives hold: CF grid mapping, bounds, scalar coordinates,
auxiliary 2-D coordinates, strings (char arrays and variable-length), packed integers,
masked floats, real zeros, non-standard calendars and partly written record variables.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from virtualizarr import open_virtual_dataset
from virtualizarr.testing import open_kerchunk_refs

CALENDARS = ["standard", "noleap", "360_day"]


def model_output(path: Path, *, calendar: str, fmt: str, start: int = 0, n: int = 4) -> Path:
    nc4 = fmt == "NETCDF4"
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.setncatts({"title": "model output", "Conventions": "CF-1.8", "realization": 3})
        nc.createDimension("time", None)
        nc.createDimension("y", 5)
        nc.createDimension("x", 6)
        nc.createDimension("bnds", 2)
        nc.createDimension("strlen", 8)
        kw = {"zlib": True, "shuffle": True} if nc4 else {}

        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"units": "days since 1850-01-01", "calendar": calendar, "bounds": "time_bnds"})
        t[:] = start + np.arange(n) + 0.5
        tb = nc.createVariable("time_bnds", "f8", ("time", "bnds"))
        tb[:] = np.stack([start + np.arange(n), start + np.arange(n) + 1], axis=1)

        y = nc.createVariable("y", "f4", ("y",))
        y[:] = np.linspace(0, 4e5, 5)
        y.standard_name = "projection_y_coordinate"
        x = nc.createVariable("x", "f4", ("x",))
        x[:] = np.linspace(0, 5e5, 6)
        lat = nc.createVariable("lat", "f8", ("y", "x"))
        lat[:] = 40 + np.arange(30).reshape(5, 6) * 0.1
        lat.units = "degrees_north"
        lon = nc.createVariable("lon", "f8", ("y", "x"))
        lon[:] = -100 + np.arange(30).reshape(5, 6) * 0.1

        crs = nc.createVariable("crs", "i4", ())
        crs.setncatts(
            {
                "grid_mapping_name": "lambert_conformal_conic",
                "standard_parallel": np.array([25.0, 25.0]),
                "longitude_of_central_meridian": -95.0,
            }
        )
        height = nc.createVariable("height", "f8", ())
        height[...] = 2.0
        height.units = "m"

        tas = nc.createVariable("tas", "i2", ("time", "y", "x"), fill_value=-32767, **kw)
        tas.setncatts(
            {
                "scale_factor": np.float32(0.01),
                "add_offset": np.float32(273.15),
                "units": "K",
                "grid_mapping": "crs",
                "coordinates": "lat lon height",
                "cell_methods": "time: mean",
            }
        )
        rng = np.random.default_rng(start)
        vals = 273.15 + rng.normal(0, 10, (n, 5, 6))
        mask = np.zeros(vals.shape, bool)
        mask[0, 0, :2] = True
        tas[:] = np.ma.array(vals, mask=mask)

        pr = nc.createVariable("pr", "f4", ("time", "y", "x"), fill_value=np.float32(1e20), **kw)
        pr.missing_value = np.float32(1e20)
        prv = np.zeros((n, 5, 6), "f4")  # real zeros must stay zeros
        prv[:, 2] = 1.5
        pr[:] = np.ma.masked_equal(np.where(prv == 1.5, 1e20, prv), 1e20)
        pr.units = "kg m-2 s-1"

        flag = nc.createVariable("flag", "i1", ("time",))
        flag[:] = np.arange(n) % 2
        flag.setncatts({"flag_values": np.array([0, 1], "i1"), "flag_meanings": "dry wet"})

        code = nc.createVariable("code", "S1", ("x", "strlen"))
        code[:] = netCDF4.stringtochar(np.array([f"st{i}" for i in range(6)], "S8"))
        if nc4:
            names = nc.createVariable("station", str, ("x",))
            names[:] = np.array([f"station {i} é" for i in range(6)], dtype=object)
            grp = nc.createGroup("diagnostics")
            grp.createDimension("level", 3)
            lev = grp.createVariable("level", "f4", ("level",))
            lev[:] = [1000, 850, 500]
    return path


def open_both(refs) -> tuple[xr.Dataset, xr.Dataset]:
    engine = xr.open_dataset(refs, engine="virtualizarr").load()
    plain = open_kerchunk_refs(refs).load()
    return engine, plain


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
@pytest.mark.parametrize("calendar", CALENDARS)
def test_model_output_round_trip(tmp_path: Path, fmt: str, calendar: str) -> None:
    path = model_output(tmp_path / "m.nc", calendar=calendar, fmt=fmt)
    expected = xr.open_dataset(path, engine="netcdf4").load()
    assert expected.tas.dtype == np.float32
    assert (expected.pr.values == 0).sum() > 0 and np.isnan(expected.pr.values).sum() > 0
    for loadable in ([], None):
        refs = open_virtual_dataset(path, loadable_variables=loadable).virtualize.to_kerchunk()
        engine, plain = open_both(refs)
        xr.testing.assert_identical(engine, expected)
        # xarray's zarr engine reads float32 scale_factor as a Python float: float64
        xr.testing.assert_identical(plain.drop_vars("tas"), expected.drop_vars("tas"))
        np.testing.assert_allclose(plain.tas.values, expected.tas.values, rtol=1e-6)


def test_model_output_group(tmp_path: Path) -> None:
    path = model_output(tmp_path / "m.nc", calendar="noleap", fmt="NETCDF4")
    expected = xr.open_dataset(path, engine="netcdf4", group="diagnostics").load()
    refs = open_virtual_dataset(path, group="diagnostics").virtualize.to_kerchunk()
    engine, plain = open_both(refs)
    xr.testing.assert_identical(engine, expected)
    xr.testing.assert_identical(plain, expected)


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_three_files_concatenated_match_open_mfdataset(tmp_path: Path, fmt: str) -> None:
    paths = [
        model_output(tmp_path / f"m{i}.nc", calendar="360_day", fmt=fmt, start=4 * i)
        for i in range(3)
    ]
    vdss = [open_virtual_dataset(p) for p in paths]
    combined = xr.concat(
        vdss,
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        combine_attrs="override",
    )
    refs = combined.virtualize.to_kerchunk()
    with xr.open_mfdataset(
        paths,
        engine="netcdf4",
        combine="nested",
        concat_dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    ) as mf:
        expected = mf.load()
    engine, _ = open_both(refs)
    xr.testing.assert_identical(engine, expected)
    assert engine.tas.shape == (12, 5, 6)
