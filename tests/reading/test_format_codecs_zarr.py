"""GRIB, TIFF and FITS chunks decoded by zarr itself (Zarr v3 metadata, ManifestStore).

The native read path decodes these codecs with numcodecs directly; here zarr resolves
the same ``numcodecs.*`` names through its own registry and decodes every chunk.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

from virtualizarr.api import open_virtual_group
from virtualizarr.reading.store import ManifestStore

DATA = Path(__file__).resolve().parent.parent / "data"


def _grib(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    pytest.importorskip("cfgrib", reason="cfgrib is the reference reader for GRIB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    return {k: ds[k].values for k in ds.data_vars}


def _tiff(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    tifffile = pytest.importorskip("tifffile", reason="tifffile is the reference TIFF reader")
    return {"image": tifffile.imread(path)}


def _fits(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    fits = pytest.importorskip("astropy.io.fits", reason="astropy is the reference FITS reader")
    with fits.open(path) as hdus:
        return {"SCI": np.asarray(hdus["SCI", 1].data)}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("grib/fields_with_missing_values.grib", _grib),  # bitmaps: NaN
        ("grib/alternate-scanning.grib", _grib),
        ("tiff/cog_jpeg_rgb.tif", _tiff),
        ("tiff/cog_deflate_u16.tif", _tiff),  # predictor, sparse tiles
        ("fits/o4sp040b0_raw.fits", _fits),  # fixedscaleoffset before the serializer
    ],
)
def test_zarr_decodes_our_codecs(name: str, expected: Any) -> None:
    path = DATA / name
    values = expected(path)
    store = ManifestStore(open_virtual_group(path))
    for var, want in values.items():
        got = zarr.open_array(store, path=var, mode="r", zarr_format=3)[...]
        assert got.dtype == want.dtype.newbyteorder("="), var
        np.testing.assert_array_equal(got, want, err_msg=var)
