"""NaN and infinite attributes read back as floats through plain fsspec + zarr.

kerchunk references are read by fsspec and zarr, which take ``.zattrs`` as zarr-python
writes it: non-finite floats as the bare ``NaN``/``Infinity`` tokens. Written as strings,
a plain reader would show ``valid_max: 'Infinity'`` where the file has ``inf``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from virtualizarr import open_virtual_dataset
from virtualizarr.testing import open_kerchunk_refs


def nan_attrs_file(path: Path) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("x", 4)
        nc.note = np.float64(np.nan)
        v = nc.createVariable("v", "f4", ("x",))
        v.missing_value = np.float32(np.nan)
        v.valid_max = np.float32(np.inf)
        v.valid_min = np.float64(-np.inf)
        v.range = np.array([np.nan, 1.0, np.inf], "f8")
        v[:] = [1, np.nan, 3, 4]
    return path


def test_plain_readers_get_floats_back(tmp_path: Path) -> None:
    path = nan_attrs_file(tmp_path / "nan.nc")
    with xr.open_dataset(path) as truth:
        expected = truth.load()
    for loadable in ([], None):
        refs = open_virtual_dataset(path, loadable_variables=loadable).virtualize.to_kerchunk()
        zattrs = json.loads(refs["refs"]["v/.zattrs"])  # the bare tokens, parsed as Python does
        assert math.isinf(zattrs["valid_max"]) and math.isnan(zattrs["missing_value"])
        with open_kerchunk_refs(refs) as plain:
            xr.testing.assert_identical(plain.load(), expected)
        with xr.open_dataset(refs, engine="virtualizarr") as ours:
            xr.testing.assert_identical(ours.load(), expected)
            assert ours["v"].attrs["valid_max"].dtype == np.float32  # the record still counts


def test_parquet_references_keep_them_too(tmp_path: Path) -> None:
    path = nan_attrs_file(tmp_path / "nan.nc")
    with xr.open_dataset(path) as truth:
        expected = truth.load()
    open_virtual_dataset(path).virtualize.to_kerchunk(tmp_path / "r.parq")
    zmeta = json.loads((tmp_path / "r.parq" / ".zmetadata").read_text())
    assert math.isnan(zmeta["metadata"][".zattrs"]["note"])
    with xr.open_dataset(tmp_path / "r.parq", engine="virtualizarr") as ours:
        xr.testing.assert_identical(ours.load(), expected)
