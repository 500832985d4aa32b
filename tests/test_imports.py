"""What importing and using the package costs a process: no dask.array behind our back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest

pytest.importorskip("dask")  # the point is a process that has dask installed


def write_day(path: Path, day: int) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2026-01-01"
        t[:] = [day]
        v = nc.createVariable("v", "f4", ("time", "x"), chunksizes=(1, 4))
        v[:] = np.arange(4, dtype="f4")[None] + day
    return path


SCRIPT = """
import sys
import xarray as xr
import virtualizarr as vz
paths = sys.argv[1:]
loaded = vz.open_virtual_mfdataset(paths, combine="nested", concat_dim="time", parallel=False)
refs = loaded.virtualize.to_kerchunk()
virtual = [vz.open_virtual_dataset(p, loadable_variables=[]) for p in paths]
both = xr.concat([v.drop_vars("time") for v in virtual], dim="time")
both.virtualize.to_kerchunk()
print("dask.array" in sys.modules, "scipy" in sys.modules)
"""


def test_opening_combining_and_writing_do_not_import_dask_array(tmp_path: Path) -> None:
    """Building an xarray Variable the usual way asks whether its data is a dask array,
    which imports dask.array (and SciPy) -- 0.2 s and more per process. Virtual variables
    are built on xarray's fast path instead. (xarray's own CF decoding of loaded times
    still imports the small ``dask`` package, as xr.open_dataset does.)"""
    paths = [str(write_day(tmp_path / f"d{i}.nc", i)) for i in range(3)]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
