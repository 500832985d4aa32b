"""Manifest stores served over plain HTTP (no listing), against the loopback Range server.

A directory of data files plus a manifest store with relative paths, written locally into
the served directory, is opened by URL with ``engine="virtualizarr"`` and with
``open_virtual_dataset``, and compared with ``xr.open_dataset`` on the original files.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import virtualizarr as vz
from virtualizarr.errors import (
    InvalidReferencesError,
    SourceNotFoundError,
    UntrustedReferenceError,
)
from virtualizarr.io.objects import Location
from virtualizarr.security import ReferenceLimits

from .conftest import write_day
from .test_remote_outputs import write_span


@pytest.fixture
def served(http_root: tuple[Path, str]) -> tuple[Path, str]:
    """A fresh directory under the HTTP root and its URL."""
    root, url = http_root
    name = uuid.uuid4().hex[:10]
    (root / name / "data").mkdir(parents=True)
    return root / name, f"{url}/{name}"


def write_with_strings(path: Path, fmt: str) -> Path:
    """``write_day`` plus, for netCDF4, a variable-length string variable (inline chunks)."""
    write_day(path, fmt, 3)
    if fmt == "NETCDF4":
        with netCDF4.Dataset(path, "a") as ds:
            v = ds.createVariable("station", str, ("lat",))
            v.long_name = "station name"
            v[:] = np.array(["alpha", "b", "gamma ray", "d", "epsilon"], dtype=object)
    return path


def http_open(url: str, **kw: Any) -> xr.Dataset:
    kw.setdefault("verify_sources", True)
    with xr.open_dataset(url, engine="virtualizarr", **kw) as ds:
        return ds.load()


def local_truth(*paths: Path) -> xr.Dataset:
    if len(paths) == 1:
        with xr.open_dataset(paths[0]) as ds:
            return ds.load()
    with xr.open_mfdataset(paths) as ds:
        return ds.load()


def edit_json(path: Path, edit: Any) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_served_directory_with_relative_store(served: tuple[Path, str], fmt: str) -> None:
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", fmt)
    vds = vz.open_virtual_dataset(src)
    if fmt == "NETCDF4":
        assert vds["station"].data.manifest.inline, "the strings are inline chunks"
    vds.virtualize.to_zarr(sub / "refs.zarr", relative_paths=True)
    truth = local_truth(src)
    for store in (f"{url}/refs.zarr", f"{url}/refs.zarr/"):
        xr.testing.assert_identical(http_open(store), truth)
    # as a virtual dataset: the paths resolved against the store's URL
    again = vz.open_virtual_dataset(f"{url}/refs.zarr/")
    assert again["air"].data.manifest.paths == (f"{url}/data/day.nc",)
    with xr.open_dataset(again.virtualize.to_kerchunk(format="dict"), engine="virtualizarr") as ds:
        xr.testing.assert_identical(ds.load(), truth)
    # drop_variables: the dropped array's files are never fetched
    assert "air" not in http_open(f"{url}/refs.zarr", drop_variables=["air"])


def test_rectilinear_grid_store_over_http(served: tuple[Path, str]) -> None:
    """Files of 3, 2 and 4 time steps: uneven chunks along time, a rectilinear grid."""
    sub, url = served
    local, start = [], 0
    for i, n in enumerate((3, 2, 4)):
        local.append(write_span(sub / "data" / f"span_{i}.nc", start, n))
        start += n
    vds = vz.open_virtual_mfdataset(local, parallel=False)
    assert vds["v"].data.chunk_sizes == ((3, 2, 4), 5)
    vds.virtualize.to_zarr(sub / "refs.zarr", relative_paths=True)
    assert b'"rectilinear"' in (sub / "refs.zarr" / "v" / "zarr.json").read_bytes()
    got = http_open(f"{url}/refs.zarr")  # no zarr configuration needed
    assert zarr.config.get("array.rectilinear_chunks") is False  # and none left behind
    xr.testing.assert_identical(got, local_truth(*local))


def test_subgroup_path_and_detection(served: tuple[Path, str]) -> None:
    """A store below a group prefix reads by key; a store URL reads as a directory."""
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", "NETCDF4")
    vz.open_virtual_dataset(src).virtualize.to_zarr(sub / "refs.zarr", relative_paths=True)
    with pytest.raises(IsADirectoryError):
        Location(f"{url}/refs.zarr").head()
    with pytest.raises(IsADirectoryError):
        Location(f"{url}/refs.zarr/").head()
    with pytest.raises(FileNotFoundError):
        Location(f"{url}/nothing-here").head()


# ---------------------------------------------------------------------- old stores
def test_old_store_without_records_is_refused_over_http_only(served: tuple[Path, str]) -> None:
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", "NETCDF4")
    store = sub / "refs.zarr"
    vz.open_virtual_dataset(src).virtualize.to_zarr(store, relative_paths=True)
    truth = local_truth(src)

    def drop_chunk_files(doc: dict[str, Any]) -> None:
        del doc["virtualizarr"]["chunk_files"]

    for array in ("station", "lat"):  # a virtual array with inline chunks; a loaded one
        edit_json(store / array / "zarr.json", drop_chunk_files)
    with pytest.raises(InvalidReferencesError, match=r"chunk_files.*rewrite it") as e:
        http_open(f"{url}/refs.zarr")
    assert f"{url}/refs.zarr/" in str(e.value)
    with pytest.raises(InvalidReferencesError, match="chunk_files"):
        vz.open_virtual_dataset(f"{url}/refs.zarr")
    xr.testing.assert_identical(http_open(str(store), verify_sources=True), truth)

    def drop_arrays(doc: dict[str, Any]) -> None:
        del doc["virtualizarr"]["arrays"]

    edit_json(store / "zarr.json", drop_arrays)
    with pytest.raises(InvalidReferencesError, match=r"'virtualizarr\.arrays'.*cannot be listed"):
        http_open(f"{url}/refs.zarr")
    local = http_open(str(store), verify_sources=True)  # listed: found by their directories
    xr.testing.assert_identical(local[list(truth.variables)], truth)


# ---------------------------------------------------------------------- security, limits
def test_store_pointing_at_local_files_is_refused_over_http(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    sub, url = served
    secret = write_day(tmp_path / "local_only.nc", "NETCDF4", 0)
    vz.open_virtual_dataset(secret).virtualize.to_zarr(sub / "refs.zarr")
    with pytest.raises(UntrustedReferenceError, match=r"local_only\.nc") as e:
        http_open(f"{url}/refs.zarr")
    assert isinstance(e.value, PermissionError)
    with pytest.raises(UntrustedReferenceError, match=r"local_only\.nc"):
        vz.open_virtual_dataset(f"{url}/refs.zarr")
    ok = http_open(f"{url}/refs.zarr", allowed_sources=[f"file://{tmp_path}"])
    xr.testing.assert_identical(ok, local_truth(secret))


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_relative_path_escaping_the_server_root_stays_on_the_server(
    served: tuple[Path, str], manifest_format: str
) -> None:
    """``../`` resolves against the URL: it can only reach other URLs of that server."""
    sub, url = served
    src = write_day(sub / "data" / "day.nc", "NETCDF4", 1)
    store = sub / "refs.zarr"
    vz.open_virtual_dataset(src).virtualize.to_zarr(
        store, relative_paths=True, manifest_format=manifest_format
    )
    man = store / "air" / ("manifest.json" if manifest_format == "json" else "manifest.paths.json")
    man.write_text(man.read_text().replace("../../data/day.nc", "../../../../../../etc/passwd"))
    got = vz.open_virtual_dataset(f"{url}/refs.zarr")
    (path,) = got["air"].data.manifest.paths
    assert path.startswith(url.rsplit("/", 1)[0]) and path.endswith("/etc/passwd")


def test_limits_are_enforced_while_reading(served: tuple[Path, str]) -> None:
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", "NETCDF4")
    vz.open_virtual_dataset(src).virtualize.to_zarr(sub / "refs.zarr", relative_paths=True)
    with pytest.raises(UntrustedReferenceError, match=r"zarr\.json is more than 200 bytes"):
        http_open(f"{url}/refs.zarr", limits=ReferenceLimits(max_document_bytes=200))
    with pytest.raises(UntrustedReferenceError, match="max_inline_chunk_bytes"):
        http_open(f"{url}/refs.zarr", limits=ReferenceLimits(max_inline_chunk_bytes=8))
    with pytest.raises(UntrustedReferenceError, match="max_inline_total_bytes"):
        http_open(f"{url}/refs.zarr", limits=ReferenceLimits(max_inline_total_bytes=40))
    # a bounded GET stops after max_bytes + 1 bytes
    (sub / "big.bin").write_bytes(b"x" * (1 << 20))
    directory = Location(url)
    assert not directory.listable
    assert directory.get_bounded("big.bin", 100) == b"x" * 101
    assert directory.get_many_bounded({"big.bin": 10, "nope": 10}) == {"big.bin": b"x" * 11}


# ---------------------------------------------------------------------- missing and damaged
def test_missing_documents_are_named(served: tuple[Path, str]) -> None:
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", "NETCDF4")
    store = sub / "refs.zarr"
    vz.open_virtual_dataset(src).virtualize.to_zarr(store, relative_paths=True)
    with pytest.raises(SourceNotFoundError, match=rf"{url}/nope\.zarr does not exist"):
        http_open(f"{url}/nope.zarr")
    with pytest.raises(SourceNotFoundError, match=rf"{url}/nope\.zarr does not exist"):
        vz.open_virtual_dataset(f"{url}/nope.zarr")
    # a chunk file whose bytes differ from the recorded size
    chunk = store / "station" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes() + b"extra")
    with pytest.raises(InvalidReferencesError, match=r"station/c/0: expected a chunk file of"):
        http_open(f"{url}/refs.zarr")
    chunk.unlink()
    with pytest.raises(InvalidReferencesError, match=r"found nothing \(HTTP 404\)"):
        http_open(f"{url}/refs.zarr")
    (store / "air" / "manifest.bin").unlink()  # not needed to open; needed to read
    missing = rf"{url}/refs\.zarr/air/manifest\.bin could not be read"
    with (
        xr.open_dataset(f"{url}/refs.zarr", engine="virtualizarr", drop_variables="station") as ds,
        pytest.raises(InvalidReferencesError, match=missing),
    ):
        ds.air.values  # noqa: B018
    (store / "air" / "manifest.paths.json").unlink()
    with pytest.raises(
        InvalidReferencesError, match=rf"{url}/refs\.zarr/air/manifest\.paths\.json is missing"
    ):
        http_open(f"{url}/refs.zarr", drop_variables=["station"])
    shutil.rmtree(store / "air")
    with pytest.raises(InvalidReferencesError, match=r"refs\.zarr/air/zarr\.json is missing"):
        http_open(f"{url}/refs.zarr", drop_variables=["station"])
    (store / "zarr.json").unlink()  # over HTTP(S), a directory is only known by its documents
    with pytest.raises(SourceNotFoundError, match=r"refs\.zarr does not exist.*zarr\.json"):
        http_open(f"{url}/refs.zarr")
    with pytest.raises(InvalidReferencesError, match=r"refs\.zarr/zarr\.json was not found"):
        http_open(f"{url}/refs.zarr", filetype="manifest_store")


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_store_is_read_in_three_rounds_of_gets(
    served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, manifest_format: str
) -> None:
    """Root document; every array's zarr.json; every manifest document and chunk file. A
    binary manifest's columns are fetched later, by one GET of their exact size, when a
    chunk of the array is first read."""
    sub, url = served
    src = write_with_strings(sub / "data" / "day.nc", "NETCDF4")
    vz.open_virtual_dataset(src).virtualize.to_zarr(
        sub / "refs.zarr", relative_paths=True, manifest_format=manifest_format
    )
    rounds: list[list[str]] = []
    bounded: list[tuple[str, int]] = []
    real, real_one = Location.get_many_bounded, Location.get_bounded

    def spy(self: Location, caps: dict[str, int]) -> dict[str, bytes]:
        rounds.append(sorted(caps))
        return real(self, caps)

    def spy_one(self: Location, key: str, max_bytes: int) -> bytes:
        bounded.append((key, max_bytes))
        return real_one(self, key, max_bytes)

    monkeypatch.setattr(Location, "get_many_bounded", spy)
    monkeypatch.setattr(Location, "get_bounded", spy_one)
    ds = xr.open_dataset(f"{url}/refs.zarr", engine="virtualizarr")
    assert rounds[0] == ["zarr.json"]
    assert rounds[1] == [f"{n}/zarr.json" for n in ("air", "lat", "lon", "station", "time")]
    manifest = "air/manifest.json" if manifest_format == "json" else "air/manifest.paths.json"
    assert "station/c/0" in rounds[2] and manifest in rounds[2]
    assert len(rounds) == 3
    opened = [k for k, _ in bounded]
    ds.air[0].values  # noqa: B018
    read = [k for k, _ in bounded[len(opened) :]]
    if manifest_format == "binary":
        assert "air/manifest.bin" not in opened and read == ["air/manifest.bin"]
        size = (sub / "refs.zarr" / "air" / "manifest.bin").stat().st_size
        assert bounded[-1] == ("air/manifest.bin", size)
    else:
        assert read == []
    ds.close()
