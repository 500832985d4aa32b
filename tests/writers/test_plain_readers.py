"""Zarr readers that do not know the manifest-store format never read a store written by
``to_zarr`` silently wrong: zarr-python through a group and through an array, and xarray's
zarr engine, each raise (``"must_understand": true``) -- or would have to read true values.
A virtual array's chunks are not in the store, so a plain reader would otherwise read its
fill value everywhere."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.errors import MetadataValidationError

import virtualizarr as vz


def write_air(path: Path) -> Path:
    """Packed int16 with a _FillValue of 32767 (the issue's air), and a float variable."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", 2)
        nc.createDimension("lat", 2)
        nc.createDimension("lon", 3)
        nc.createVariable("time", "f8", ("time",))[:] = [0, 1]
        air = nc.createVariable(
            "air", "i2", ("time", "lat", "lon"), zlib=True, chunksizes=(1, 2, 3), fill_value=32767
        )
        air.scale_factor = np.float32(0.01)
        air.set_auto_maskandscale(False)
        air[:] = np.arange(12, dtype="i2").reshape(2, 2, 3) + 100
        nc.createVariable("uwnd", "f4", ("time", "lat", "lon"))[:] = np.ones((2, 2, 3))
    return path


@pytest.fixture(params=["binary", "json"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    src = write_air(tmp_path / "air.nc")
    vz.open_virtual_dataset(src).virtualize.to_zarr(
        tmp_path / "air.zarr", manifest_format=request.param
    )
    return tmp_path / "air.zarr"


TRUE_AIR = [100, 101, 102]
"""air[0, 0, :3] as stored."""


def refuses_or_reads_true(read: Callable[[], Any], true: Any) -> str:
    """Run a plain reader: it must raise (-> "raised") or give the true values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: fixed-length bytes "not in the v3 spec"
        try:
            got = read()
        except MetadataValidationError as e:
            assert "disallowed extra fields: ['virtualizarr']" in str(e)
            assert "must_understand" in str(e)
            return "raised"
    np.testing.assert_array_equal(np.asarray(got), true)
    return "true values"


@pytest.fixture(autouse=True)
def quiet_asyncio(caplog: pytest.LogCaptureFixture) -> None:
    """zarr loads a group's members concurrently; the siblings of the member that failed
    also fail, and asyncio logs their unretrieved errors ("Task exception was never
    retrieved") when they are collected."""
    caplog.set_level(logging.CRITICAL, logger="asyncio")


def test_zarr_through_a_group(store: Path) -> None:
    assert (
        refuses_or_reads_true(lambda: zarr.open_group(store, mode="r")["air"][0, 0, :3], TRUE_AIR)
        == "raised"
    )
    assert (
        refuses_or_reads_true(lambda: list(zarr.open_group(store, mode="r").arrays()), None)
        == "raised"
    )


def test_zarr_through_an_array(store: Path) -> None:
    for read in (
        lambda: zarr.open_array(store, path="air", mode="r")[0, 0, :3],
        lambda: zarr.open(store / "air", mode="r")[0, 0, :3],
        lambda: zarr.open_array(store / "air", mode="r", zarr_format=3)[0, 0, :3],
    ):
        assert refuses_or_reads_true(read, TRUE_AIR) == "raised"
    # a loaded coordinate holds real chunks, but its attribute types are ours to restore
    assert refuses_or_reads_true(lambda: zarr.open_array(store, path="time")[:], [0, 1]) == "raised"


@pytest.mark.parametrize(
    "open_",
    [
        lambda s: xr.open_zarr(s),
        lambda s: xr.open_zarr(s, consolidated=False),
        lambda s: xr.open_dataset(s, engine="zarr"),
        lambda s: xr.open_dataset(s, engine="zarr", drop_variables=["uwnd"]),
        lambda s: xr.open_datatree(s, engine="zarr")["/"].to_dataset(),
    ],
)
def test_xarray_zarr_engine(store: Path, open_: Callable[[Path], xr.Dataset]) -> None:
    read = lambda: open_(store)["air"].isel(time=0, lat=0).values  # noqa: E731
    assert refuses_or_reads_true(read, np.float32(0.01) * np.array(TRUE_AIR, "f4")) == "raised"


def test_our_engine_reads_the_same_store(store: Path, tmp_path: Path) -> None:
    with (
        xr.open_dataset(store, engine="virtualizarr") as ds,
        xr.open_dataset(tmp_path / "air.nc") as orig,
    ):
        xr.testing.assert_identical(ds.load(), orig.load())
