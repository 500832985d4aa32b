"""Write the manifest stores of ``tests/data/store_v1/`` (kept as test data).

The stores were written by virtualizarr at commit 16e6896 (before manifest store v2: JSON
manifests, ``"must_understand": false``), so that ``tests/readers/test_store_v1.py``
checks that stores written by that version still open, identically. Regenerate only
with that version's code on the path:

    git archive 16e6896 | tar -x -C /tmp/v1
    PYTHONPATH=/tmp/v1 python tests/data/make_store_v1.py

``source.nc`` is a small netCDF4 file made by netCDF4-python: a packed ``int16``
variable (``scale_factor``/``add_offset`` as ``float32``, ``_FillValue``) in zlib+shuffle
chunks, a ``float64`` variable with unwritten (missing) chunks, a scalar, and time/lat/lon
coordinates. ``store.zarr`` keeps the 1-D coordinates loaded (the default);
``store_virtual.zarr`` keeps every variable virtual. Both record source paths relative to
the store (``relative_paths=True``), so they move with this directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np

from virtualizarr import open_virtual_dataset

HERE = Path(__file__).resolve().parent / "store_v1"


def write_source(path: Path) -> None:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "store v1 test data"
        nc.setncattr("version_f32", np.float32(1.5))
        nc.setncattr("levels_i16", np.array([1, 2, 3], dtype=np.int16))
        nc.createDimension("time", None)
        nc.createDimension("lat", 3)
        nc.createDimension("lon", 4)
        t = nc.createVariable("time", "i4", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "standard"
        t[:] = np.arange(4, dtype=np.int32)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = [10.0, 0.0, -10.0]
        lon = nc.createVariable("lon", "f4", ("lon",))
        lon[:] = [0.0, 90.0, 180.0, 270.0]
        air = nc.createVariable(
            "air",
            "i2",
            ("time", "lat", "lon"),
            zlib=True,
            shuffle=True,
            chunksizes=(1, 3, 4),
            fill_value=np.int16(-32767),
        )
        air.scale_factor = np.float32(0.01)
        air.add_offset = np.float32(250.0)
        air.units = "K"
        air.set_auto_maskandscale(False)
        raw = np.arange(48, dtype=np.int16).reshape(4, 3, 4) * 7
        raw[1, 1, 1] = -32767  # a masked value
        air[:] = raw
        rh = nc.createVariable(
            "rh", "f8", ("time", "lat", "lon"), chunksizes=(2, 3, 2), fill_value=-1.0
        )
        rh[0:2, :, 0:2] = np.full((2, 3, 2), 0.5)  # the other chunks are never written
        crs = nc.createVariable("crs", "i4", ())
        crs.grid_mapping_name = "latitude_longitude"
        crs[...] = 0


def main() -> None:
    if HERE.exists():
        shutil.rmtree(HERE)
    HERE.mkdir(parents=True)
    source = HERE / "source.nc"
    write_source(source)
    vds = open_virtual_dataset(str(source))
    vds.virtualize.to_zarr(HERE / "store.zarr", relative_paths=True)
    vds = open_virtual_dataset(str(source), loadable_variables=[])
    vds.virtualize.to_zarr(HERE / "store_virtual.zarr", relative_paths=True)


if __name__ == "__main__":
    main()
