"""GRIB, TIFF and FITS files on S3 (moto on loopback): virtualized remotely, read back."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from virtualizarr import open_virtual_dataset

from .conftest import BUCKET

DATA = Path(__file__).resolve().parent.parent / "data"


def _expected(kind: str, path: Path) -> dict[str, np.ndarray[Any, Any]]:
    if kind == "tiff":
        import tifffile

        return {"image": tifffile.imread(path)}
    if kind == "fits":
        from astropy.io import fits

        with fits.open(path) as hdus:
            return {"SCI": np.asarray(hdus[1].data), "SCI_2": np.asarray(hdus[2].data)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    return {k: ds[k].values for k in ds.data_vars}


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("tiff", "tiff/cog_deflate_u16.tif"),
        ("grib", "grib/multi_param_on_multi_dims.grib"),
        ("fits", "fits/test0.fits"),
    ],
)
def test_s3_source_virtualized_and_read_back(
    kind: str, name: str, s3_options: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip({"tiff": "tifffile", "grib": "cfgrib", "fits": "astropy"}[kind])
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    key = f"{BUCKET}/{uuid.uuid4().hex[:8]}/{Path(name).name}"
    fs.put_file(str(DATA / name), key)
    url = f"s3://{key}"
    vds = open_virtual_dataset(url, storage_options=s3_options)
    paths = {
        p
        for v in vds.variables.values()
        if hasattr(v.data, "manifest")
        for p in v.data.manifest.paths
    }
    assert paths == {url}  # the references point at the object, by its URL
    refs = tmp_path / "refs.json"
    vds.virtualize.to_kerchunk(str(refs), format="json")
    back = xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options)
    for var, expected in _expected(kind, DATA / name).items():
        np.testing.assert_array_equal(back[var].values, expected, err_msg=var)
