"""What importing and using the package costs a process: no dask.array, no zarr behind our back."""

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


def modules_after(script: str, *args: str) -> set[str]:
    """The top-level packages a fresh process has imported when ``script`` ends."""
    report = "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run(
        [sys.executable, "-c", script + report, *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


HEAVY = {"zarr", "dask", "distributed", "h5py", "tqdm", "pyarrow", "icechunk", "tifffile",
         "imagecodecs", "cfgrib", "eccodes", "gribapi", "astropy", "fsspec", "s3fs"}  # fmt: skip


def test_importing_virtualizarr_imports_no_zarr_nor_anything_heavy_xarray_does_not() -> None:
    """issue 15: ``import virtualizarr`` costs little more than ``import xarray``. (pandas
    imports pyarrow whenever it is installed, so xarray alone may bring that one.)"""
    baseline = modules_after("import xarray")
    ours = modules_after("import virtualizarr")
    assert "zarr" not in ours
    assert (ours & HEAVY) - baseline == set()


def test_opening_netcdf4_and_writing_references_do_not_import_zarr(tmp_path: Path) -> None:
    """Opening with the default loadable variables (decoded with numcodecs) and writing
    kerchunk JSON, Parquet and a manifest store never need zarr."""
    path = str(write_day(tmp_path / "d.nc", 1))
    script = (
        "import sys, virtualizarr as vz\n"
        "ds = vz.open_virtual_dataset(sys.argv[1])\n"
        "assert ds['time'].values.size == 1\n"
        "ds.virtualize.to_kerchunk(sys.argv[2] + '/refs.json', format='json')\n"
        "ds.virtualize.to_kerchunk(sys.argv[2] + '/refs.parq', format='parquet')\n"
        "ds.virtualize.to_zarr(sys.argv[2] + '/store.zarr')\n"
        "vz.open_virtual_dataset(sys.argv[2] + '/store.zarr')\n"
        "vz.open_virtual_dataset(sys.argv[2] + '/refs.json')"
    )
    assert "zarr" not in modules_after(script, path, str(tmp_path))


def test_manifest_store_is_imported_with_zarr_on_first_use() -> None:
    script = (
        "import sys, virtualizarr\n"
        "assert 'zarr' not in sys.modules and 'virtualizarr.reading.store' not in sys.modules\n"
        "from virtualizarr.manifests import ManifestStore\n"
        "from virtualizarr.reading.store import ManifestStore as Store\n"
        "assert ManifestStore is Store is virtualizarr.ManifestStore\n"
        "assert 'ManifestStore' in virtualizarr.__all__\n"
        "try:\n"
        "    virtualizarr.NoSuchThing\n"
        "except AttributeError as e:\n"
        "    assert 'NoSuchThing' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')"
    )
    assert "zarr" in modules_after(script)
