"""Stores written by the previous version (JSON manifests, ``"must_understand": false``)
still open, identically: ``tests/data/store_v1/``, written by ``tests/data/make_store_v1.py``
with virtualizarr at commit 16e6896."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz

DATA = Path(__file__).resolve().parent.parent / "data" / "store_v1"
STORES = ["store.zarr", "store_virtual.zarr"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the test data (its relative paths move with it)."""
    shutil.copytree(DATA, tmp_path / "store_v1")
    return tmp_path / "store_v1"


def original(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def test_the_test_data_is_in_the_old_format() -> None:
    for name in STORES:
        root = json.loads((DATA / name / "zarr.json").read_text())
        assert root["virtualizarr"]["must_understand"] is False
        air = json.loads((DATA / name / "air" / "zarr.json").read_text())
        assert air["storage_transformers"][0]["name"] == "chunk-manifest-json"
        assert air["virtualizarr"]["must_understand"] is False
        assert (DATA / name / "air" / "manifest.json").is_file()


@pytest.mark.parametrize("name", STORES)
def test_old_stores_open_identically_with_the_engine(data: Path, name: str) -> None:
    # the recorded identity is of the file as written; a checkout gives it a new mtime
    with xr.open_dataset(data / name, engine="virtualizarr", verify_sources=False) as ds:
        xr.testing.assert_identical(ds.load(), original(data / "source.nc"))
    assert vz.verify(data / name).checked == ((data / "source.nc").as_uri(),)


@pytest.mark.parametrize("name", STORES)
def test_old_stores_give_the_manifests_of_the_source(data: Path, name: str) -> None:
    old = vz.open_virtual_dataset(data / name, loadable_variables=[])
    now = vz.open_virtual_dataset(data / "source.nc", loadable_variables=[])
    assert list(old.variables) == ["air", "rh", "crs", "time", "lat", "lon"]
    virtual = ["air", "rh", "crs"] if name == "store.zarr" else list(old.variables)
    for var in virtual:
        assert old[var].data.manifest.equals(now[var].data.manifest), var
        assert old[var].attrs.keys() == now[var].attrs.keys(), var
        for k, v in now[var].attrs.items():
            assert type(old[var].attrs[k]) is type(v), (var, k)
    assert old.attrs.keys() == now.attrs.keys()
    assert type(old.attrs["version_f32"]) is np.float32 and old.attrs["version_f32"] == 1.5
    assert old.attrs["levels_i16"].dtype == np.int16
    assert old.attrs["levels_i16"].tolist() == now.attrs["levels_i16"].tolist()


@pytest.mark.parametrize("name", STORES)
def test_old_stores_rewrite_to_the_new_format(data: Path, tmp_path: Path, name: str) -> None:
    vds = vz.open_virtual_dataset(data / name)
    vds.virtualize.to_zarr(tmp_path / "new.zarr")
    assert (tmp_path / "new.zarr" / "air" / "manifest.bin").is_file()
    # the identity recorded (and carried over) is of the file as written, not as checked out
    with xr.open_dataset(tmp_path / "new.zarr", engine="virtualizarr", verify_sources=False) as ds:
        xr.testing.assert_identical(ds.load(), original(data / "source.nc"))
