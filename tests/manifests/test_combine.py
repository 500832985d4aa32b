"""Combining rules: what may share one Zarr array, and errors that name the variable and files."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import IncompatibleArraysError, UnsupportedOperationError
from virtualizarr.testing import open_kerchunk_refs


def write(path: Path, start: int, *, complevel: int = 4, dtype: str = "i2") -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("t", 2)
        t = nc.createVariable("t", "f8", ("t",))
        t[:] = [start, start + 1]
        v = nc.createVariable("v", dtype, ("t",), chunksizes=(1,), zlib=True, complevel=complevel)
        v[:] = [start * 10, start * 10 + 1]
    return path


def test_files_differing_only_in_deflate_level_combine(tmp_path: Path) -> None:
    paths = [write(tmp_path / "a.nc", 0, complevel=1), write(tmp_path / "b.nc", 2, complevel=9)]
    combined = xr.concat([vz.open_virtual_dataset(p) for p in paths], dim="t")
    refs = combined.virtualize.to_kerchunk(format="dict")
    with open_kerchunk_refs(refs) as got, xr.open_mfdataset(paths) as want:
        xr.testing.assert_identical(got.load(), want.load())
    np.testing.assert_array_equal(
        xr.open_dataset(refs, engine="virtualizarr")["v"].values, [0, 1, 20, 21]
    )


def test_incompatible_arrays_are_named_with_their_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.nc", 0)
    b = write(tmp_path / "b.nc", 2, dtype="i4")
    # xarray first casts to the common dtype, which a virtual array cannot do
    with pytest.raises(UnsupportedOperationError) as cast:
        xr.concat([vz.open_virtual_dataset(a), vz.open_virtual_dataset(b)], dim="t")
    assert "variable 'v'" in str(cast.value) and a.as_uri() in str(cast.value)
    # files whose dtypes agree but whose encodings differ: both files named
    c = write(tmp_path / "c.nc", 4)
    with netCDF4.Dataset(c, "a") as nc:
        nc["v"].scale_factor = 2.0
    with pytest.raises(IncompatibleArraysError) as info:
        xr.concat([vz.open_virtual_dataset(a), vz.open_virtual_dataset(c)], dim="t")
    message = str(info.value)
    assert "variable 'v'" in message and "scale_factor" in message
    assert a.as_uri() in message and c.as_uri() in message
