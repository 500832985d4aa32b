"""Zarr stores and DMR++ sidecars on moto's S3 server: read with one listing (stores) or
one GET (sidecars), references to the objects in the bucket, identical to the originals."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import virtualizarr as vz
from tests.readers.dmrpp_cases import nc4_cf, write_dmrpp
from tests.readers.zarr_cases import CASES, open_original
from virtualizarr.errors import UnsupportedFeatureError

from .conftest import BUCKET


def _put_tree(s3_options: dict[str, Any], local: Path, prefix: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"{prefix}/{p.relative_to(local).as_posix()}")


@pytest.mark.parametrize("case", ["xarray_v2", "xarray_v3", "zarr_v2_codecs", "zarr_v3_sharded"])
def test_zarr_store_on_s3(case: str, tmp_path: Path, s3_options: dict[str, Any]) -> None:
    store, consolidated = CASES[case](tmp_path)
    prefix = f"{BUCKET}/{uuid.uuid4().hex[:8]}/{store.name}"
    _put_tree(s3_options, store, prefix)
    url = f"s3://{prefix}"
    vds = vz.open_virtual_dataset(url, storage_options=s3_options, loadable_variables=[])
    paths = {p for v in vds.variables.values() for p in v.data.manifest.paths}
    assert paths and all(p.startswith(f"{url}/") for p in paths)  # the bucket's objects
    refs = tmp_path / "refs.json"
    keep = [k for k in vds.variables if k != "forder"]  # transpose: not in kerchunk's v2
    vds[keep].virtualize.to_kerchunk(refs, format="json")
    got = xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options).load()
    truth = open_original(store, consolidated)[keep]
    xr.testing.assert_identical(got, truth)
    # the remote store itself, as xarray reads it, agrees
    remote = xr.open_zarr(url, consolidated=consolidated, storage_options=s3_options).load()
    xr.testing.assert_identical(got, remote[keep])


def test_zarr_store_over_http_is_refused(http_root: tuple[Path, str]) -> None:
    root, url = http_root
    store, _ = CASES["xarray_v3"](root)
    with pytest.raises(UnsupportedFeatureError, match="cannot be listed"):
        vz.open_virtual_dataset(f"{url}/{store.name}", filetype="zarr")


def test_dmrpp_on_s3(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    h5 = nc4_cf(tmp_path / "granule.nc")
    prefix = f"{BUCKET}/{uuid.uuid4().hex[:8]}"
    for href in ("granule.nc", "OPeNDAP_DMRpp_DATA_ACCESS_URL"):
        write_dmrpp(h5, href=href)
        _put_tree(s3_options, tmp_path, prefix)
        url = f"s3://{prefix}/granule.nc.dmrpp"
        vds = vz.open_virtual_dataset(url, storage_options=s3_options, loadable_variables=[])
        assert vds["air"].data.manifest.paths == (f"s3://{prefix}/granule.nc",)
        refs = tmp_path / "refs.json"
        vds.virtualize.to_kerchunk(refs, format="json", mode="w")
        got = xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options).load()
        with xr.open_dataset(h5) as truth:
            xr.testing.assert_identical(got, truth.load())
