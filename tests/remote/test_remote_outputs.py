"""Manifest stores and Parquet references written to, and read from, object storage.

Against moto's S3 server on loopback (see conftest.py): round trips compared with the
original files, ``mode="w-"``/``"w"`` semantics, failures injected mid-write, rectilinear
grids, and the source policy for stores read remotely.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.api import verify
from virtualizarr.errors import (
    InvalidReferencesError,
    OutputExistsError,
    OutputWriteError,
    UnsupportedFileTypeError,
    UntrustedReferenceError,
    VirtualiZarrError,
)
from virtualizarr.io.objects import Location

from .conftest import BUCKET, write_day

FORMATS = ["zarr", "parquet"]
NAMES = {"zarr": "refs.zarr", "parquet": "refs.parq"}
COMMIT = {"zarr": "zarr.json", "parquet": ".zmetadata"}


@pytest.fixture
def s3(s3_options: dict[str, Any]) -> Any:
    import s3fs

    return s3fs.S3FileSystem(**s3_options)


@pytest.fixture
def prefix(s3: Any) -> Iterator[str]:
    """A fresh key prefix in the test bucket (without the ``s3://``)."""
    p = f"{BUCKET}/{uuid.uuid4().hex[:10]}"
    yield p
    s3.invalidate_cache()
    leftovers = s3.find(p)
    if leftovers:
        s3.rm(leftovers)


def upload(s3: Any, prefix: str, local: list[Path]) -> list[str]:
    urls = []
    for p in local:
        s3.put_file(str(p), f"{prefix}/data/{p.name}")
        urls.append(f"s3://{prefix}/data/{p.name}")
    return urls


def days(tmp_path: Path, fmt: str = "NETCDF4", n: int = 3) -> list[Path]:
    return [write_day(tmp_path / f"air_{i:02d}.nc", fmt, i) for i in range(n)]


def snapshot(s3: Any, url: str) -> dict[str, bytes]:
    """Every object under ``url`` and its bytes."""
    root = url.removeprefix("s3://").rstrip("/")
    s3.invalidate_cache()
    keys = s3.find(root)
    got = s3.cat(keys) if keys else {}
    return {k[len(root) + 1 :]: v for k, v in sorted(got.items())}


def write(ds: xr.Dataset, fmt: str, target: str | Path, **kw: Any) -> None:
    if fmt == "zarr":
        ds.virtualize.to_zarr(target, **kw)
    else:
        ds.virtualize.to_kerchunk(target, format="parquet", record_size=2, **kw)


def local_keys(ds: xr.Dataset, fmt: str, where: Path) -> set[str]:
    """The files the same writer puts in a local directory."""
    out = where / NAMES[fmt]
    write(ds, fmt, out)
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def expected(local: list[Path]) -> xr.Dataset:
    with xr.open_mfdataset(local) as ds:
        return ds.load()


def open_remote(url: str, so: dict[str, Any], **kw: Any) -> xr.Dataset:
    with xr.open_dataset(url, engine="virtualizarr", storage_options=so, **kw) as ds:
        return ds.load()


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ncfmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
@pytest.mark.parametrize("relative", [False, True])
def test_round_trip_through_s3(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    fmt: str,
    ncfmt: str,
    relative: bool,
) -> None:
    local = days(tmp_path, ncfmt)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/{NAMES[fmt]}"
    write(vds, fmt, url, storage_options=s3_options, relative_paths=relative)
    stored = snapshot(s3, url)
    assert set(stored) == local_keys(vds, fmt, tmp_path), "the same objects as on disk"
    if relative:  # the store holds paths relative to itself, resolved against its URL
        assert all(f"s3://{prefix}/data" not in v.decode("latin-1") for v in stored.values())
    xr.testing.assert_identical(open_remote(url, s3_options), expected(local))
    assert verify(url, storage_options=s3_options).ok
    # opened as a virtual dataset: the same references, paths resolved to absolute URLs
    filetype = "kerchunk" if fmt == "parquet" else None
    again = vz.open_virtual_dataset(url, storage_options=s3_options, filetype=filetype)
    assert again["air"].data.manifest.paths == vds["air"].data.manifest.paths
    refs = again.virtualize.to_kerchunk(format="dict")
    with xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options) as ds:
        xr.testing.assert_identical(ds.load(), expected(local))


def test_remote_parquet_is_detected_without_filetype(
    tmp_path: Path, s3: Any, s3_options: dict[str, Any], prefix: str
) -> None:
    """A remote directory is recognised by what it holds, through its storage options."""
    local = days(tmp_path, n=1)
    upload(s3, prefix, local)
    vds = vz.open_virtual_dataset(f"s3://{prefix}/data/{local[0].name}", storage_options=s3_options)
    url = f"s3://{prefix}/refs.parq"
    write(vds, "parquet", url, storage_options=s3_options)
    again = vz.open_virtual_dataset(url, storage_options=s3_options)
    assert again["air"].data.manifest.equals(vds["air"].data.manifest)
    with pytest.raises(UnsupportedFileTypeError, match="is a directory"):
        vz.open_virtual_dataset(f"s3://{prefix}/data", storage_options=s3_options)


def test_rectilinear_grid_through_s3_store(
    tmp_path: Path, s3: Any, s3_options: dict[str, Any], prefix: str
) -> None:
    """Files of 3, 2 and 4 time steps: uneven chunks along time, a rectilinear grid."""
    local, start = [], 0
    for i, n in enumerate((3, 2, 4)):
        local.append(write_span(tmp_path / f"span_{i}.nc", start, n))
        start += n
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    assert vds["v"].data.chunk_sizes == ((3, 2, 4), 5)
    url = f"s3://{prefix}/refs.zarr"
    vds.virtualize.to_zarr(url, storage_options=s3_options)
    grid = snapshot(s3, url)["v/zarr.json"]
    assert b'"rectilinear"' in grid
    got = open_remote(url, s3_options)  # no zarr configuration needed
    xr.testing.assert_identical(got, expected(local))


def test_binary_manifests_on_s3_load_on_the_first_chunk_read(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One listing and the documents at open; each array's columns by one bounded GET."""
    local = days(tmp_path)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/refs.zarr"
    vds.virtualize.to_zarr(url, storage_options=s3_options)
    fetched: list[str] = []
    get_many, get_bounded = Location.get_many, Location.get_bounded

    def spy_many(self: Location, keys: Any) -> dict[str, bytes]:
        fetched.extend(keys := list(keys))
        return get_many(self, keys)

    def spy_bounded(self: Location, key: str, max_bytes: int) -> bytes:
        fetched.append(key)
        return get_bounded(self, key, max_bytes)

    monkeypatch.setattr(Location, "get_many", spy_many)
    monkeypatch.setattr(Location, "get_bounded", spy_bounded)
    with xr.open_dataset(url, engine="virtualizarr", storage_options=s3_options) as ds:
        assert "air/manifest.paths.json" in fetched
        assert not any(k.endswith("manifest.bin") for k in fetched)
        ds.air.values  # noqa: B018
        assert [k for k in fetched if k.endswith("manifest.bin")] == ["air/manifest.bin"]
        xr.testing.assert_identical(ds.load(), expected(local))


def write_span(path: Path, start: int, n: int) -> Path:
    """time (start..start+n) x 5, one chunk per file along time (netCDF4-python)."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as d:
        d.createDimension("time", n)
        d.createDimension("x", 5)
        t = d.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(start, start + n)
        v = d.createVariable("v", "i2", ("time", "x"), chunksizes=(n, 5), zlib=True)
        v.scale_factor = 0.5
        v[:] = (np.arange(n * 5).reshape(n, 5) + start * 5).astype("i2")
    return path


# ---------------------------------------------------------------------- modes
@pytest.mark.parametrize("fmt", FORMATS)
def test_default_mode_refuses_an_existing_store(
    tmp_path: Path, s3: Any, s3_options: dict[str, Any], prefix: str, fmt: str
) -> None:
    local = days(tmp_path, n=2)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/{NAMES[fmt]}"
    write(vds.isel(time=slice(0, 1)), fmt, url, storage_options=s3_options)
    before = snapshot(s3, url)
    with pytest.raises(OutputExistsError, match="mode='w'") as info:
        write(vds, fmt, url, storage_options=s3_options)
    assert isinstance(info.value, FileExistsError) and COMMIT[fmt] in str(info.value)
    assert snapshot(s3, url) == before
    # objects but no root metadata (a write that failed part-way): refused too, named
    other = f"s3://{prefix}/half.{fmt}"
    s3.pipe(f"{other[5:]}/air/manifest.json", b"{}")
    with pytest.raises(OutputExistsError, match=r"1 object\(s\).*air/manifest\.json"):
        write(vds, fmt, other, storage_options=s3_options)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mode_w_replaces_and_leaves_no_stale_objects(
    tmp_path: Path, s3: Any, s3_options: dict[str, Any], prefix: str, fmt: str
) -> None:
    local = days(tmp_path)
    upload(s3, prefix, local)
    glob = f"s3://{prefix}/data/*.nc"
    old = vz.open_virtual_mfdataset(glob, storage_options=s3_options, parallel=False)
    old = old.assign(extra=old["air"])  # an array the new store will not have
    url = f"s3://{prefix}/{NAMES[fmt]}"
    write(old, fmt, url, storage_options=s3_options)
    # the new store: coordinates virtual (loaded before: lat/c/0 files become stale
    # *inside* arrays the new store has), two files fewer along time
    new = vz.open_virtual_dataset(
        f"s3://{prefix}/data/{local[0].name}",
        storage_options=s3_options,
        loadable_variables=["time"],
    )
    write(new, fmt, url, storage_options=s3_options, mode="w")
    after = snapshot(s3, url)
    assert set(after) == local_keys(new, fmt, tmp_path / "w")
    assert not any(k.startswith("extra/") for k in after)
    xr.testing.assert_identical(open_remote(url, s3_options), expected(local[:1]))


# ---------------------------------------------------------------------- failures
def _fail_on(
    monkeypatch: pytest.MonkeyPatch, s3: Any, hit: Callable[[str], bool]
) -> dict[str, int]:
    """Make the first S3 PUT of a key matching ``hit`` fail (AccessDenied: not retried).

    Patches the filesystem instance fsspec hands out for the test's storage_options (the
    one :mod:`virtualizarr.io` uses too).
    """
    from virtualizarr.io.objects import Location

    fs, _ = Location(f"s3://{BUCKET}", s3.storage_options).filesystem()
    assert fs is s3
    real = fs.pipe_file
    calls = {"n": 0}

    def pipe_file(path: str, data: bytes, **kw: Any) -> Any:
        if hit(path) and not calls["n"]:
            calls["n"] += 1
            raise PermissionError(f"Access Denied (injected) for {path}")
        return real(path, data, **kw)

    monkeypatch.setattr(fs, "pipe_file", pipe_file)
    return calls


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", ["array", "root"])
def test_failure_mid_write_keeps_previous_store(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    where: str,
) -> None:
    local = days(tmp_path)
    upload(s3, prefix, local)
    glob = f"s3://{prefix}/data/*.nc"
    vds = vz.open_virtual_mfdataset(glob, storage_options=s3_options, parallel=False)
    url = f"s3://{prefix}/{NAMES[fmt]}"
    root = url[5:]
    write(vds.isel(time=slice(0, 2)), fmt, url, storage_options=s3_options)
    before = snapshot(s3, url)
    target = {
        ("zarr", "array"): f"{root}/air/manifest.bin",
        ("parquet", "array"): f"{root}/time/refs.0.parq",  # air's are unchanged
        ("zarr", "root"): f"{root}/zarr.json",
        ("parquet", "root"): f"{root}/.zmetadata",
    }[fmt, where]
    calls = _fail_on(monkeypatch, s3, lambda p: p == target)
    with pytest.raises(OutputWriteError, match="Access Denied") as info:
        write(vds, fmt, url, storage_options=s3_options, mode="w")
    assert calls["n"] == 1
    assert isinstance(info.value, VirtualiZarrError) and "bucket" in str(info.value)
    monkeypatch.undo()
    assert snapshot(s3, url) == before, "the previous store, byte for byte"
    xr.testing.assert_identical(open_remote(url, s3_options), expected(local[:2]))
    write(vds, fmt, url, storage_options=s3_options, mode="w")  # the retry succeeds
    assert snapshot(s3, url) != before
    xr.testing.assert_identical(open_remote(url, s3_options), expected(local))


@pytest.mark.parametrize("fmt", FORMATS)
def test_writer_failure_keeps_previous_store(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    """The writer itself fails after handing over some objects (uploaded meanwhile)."""
    from virtualizarr.io import write as write_module

    local = days(tmp_path)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/{NAMES[fmt]}"
    write(vds.isel(time=slice(0, 2)), fmt, url, storage_options=s3_options)
    before = snapshot(s3, url)
    module: Any = write_module._ObjectStoreOutput
    name = "put"
    real = module.put
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # not even an Exception: the roll-back still runs
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)
    with pytest.raises(KeyboardInterrupt):
        write(vds, fmt, url, storage_options=s3_options, mode="w")
    monkeypatch.undo()
    assert snapshot(s3, url) == before


def test_root_metadata_is_written_last_and_stale_objects_deleted_after(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = days(tmp_path)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/refs.zarr"
    vds.assign(extra=vds["air"]).virtualize.to_zarr(url, storage_options=s3_options)
    events: list[tuple[str, str]] = []
    real_put, real_rm = s3.pipe_file, s3.rm

    def put(path: str, data: bytes, **kw: Any) -> Any:
        events.append(("put", path[len(url) - 4 :]))
        return real_put(path, data, **kw)

    def rm(paths: Any, *args: Any, **kw: Any) -> Any:
        events.extend(("rm", p[len(url) - 4 :]) for p in paths)
        return real_rm(paths, *args, **kw)

    monkeypatch.setattr(s3, "pipe_file", put)
    monkeypatch.setattr(s3, "rm", rm)
    vds.isel(time=slice(0, 2)).virtualize.to_zarr(url, storage_options=s3_options, mode="w")
    puts = [key for kind, key in events if kind == "put"]
    assert len(puts) > 1 and puts[-1] == "zarr.json" and puts.count("zarr.json") == 1
    after = events[events.index(("put", "zarr.json")) + 1 :]
    assert after and {kind for kind, _ in after} == {"rm"}
    assert {key for _, key in after} == {
        "extra/zarr.json",
        "extra/manifest.paths.json",
        "extra/manifest.bin",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_first_write_leaves_nothing(
    tmp_path: Path,
    s3: Any,
    s3_options: dict[str, Any],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    local = days(tmp_path)
    upload(s3, prefix, local)
    vds = vz.open_virtual_mfdataset(
        f"s3://{prefix}/data/*.nc", storage_options=s3_options, parallel=False
    )
    url = f"s3://{prefix}/{NAMES[fmt]}"
    _fail_on(monkeypatch, s3, lambda p: p.startswith(f"{url[5:]}/lat/"))
    with pytest.raises(OutputWriteError):
        write(vds, fmt, url, storage_options=s3_options)
    monkeypatch.undo()
    assert snapshot(s3, url) == {}
    write(vds, fmt, url, storage_options=s3_options)  # and "w-" works afterwards
    xr.testing.assert_identical(open_remote(url, s3_options), expected(local))


def test_missing_bucket_is_named(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    vds = vz.open_virtual_dataset(days(tmp_path, n=1)[0])
    with pytest.raises(OutputWriteError, match="bucket") as info:
        vds.virtualize.to_zarr("s3://no-such-bucket-vz/refs.zarr", storage_options=s3_options)
    assert isinstance(info.value, OSError)


# ---------------------------------------------------------------------- security
@pytest.mark.parametrize("fmt", FORMATS)
def test_remote_store_may_not_point_at_local_files(
    tmp_path: Path, s3_options: dict[str, Any], prefix: str, fmt: str
) -> None:
    """A store read from S3 that references this machine's files is refused by default."""
    secret = write_day(tmp_path / "local_only.nc", "NETCDF4", 0)
    url = f"s3://{prefix}/{NAMES[fmt]}"
    write(vz.open_virtual_dataset(secret), fmt, url, storage_options=s3_options)
    with pytest.raises(UntrustedReferenceError, match=r"local_only\.nc") as info:
        xr.open_dataset(url, engine="virtualizarr", storage_options=s3_options)
    assert isinstance(info.value, PermissionError)
    filetype = "kerchunk" if fmt == "parquet" else None
    with pytest.raises(UntrustedReferenceError, match=r"local_only\.nc"):
        vz.open_virtual_dataset(url, storage_options=s3_options, filetype=filetype)
    ok = open_remote(url, s3_options, allowed_sources=[f"file://{tmp_path}"])
    with xr.open_dataset(secret) as truth:
        xr.testing.assert_identical(ok, truth.load())


def test_remote_store_relative_path_may_not_escape_to_local(
    s3: Any, s3_options: dict[str, Any], prefix: str, tmp_path: Path
) -> None:
    """Absolute paths and manifest locations outside the store are refused."""
    vds = vz.open_virtual_dataset(write_day(tmp_path / "a.nc", "NETCDF4", 0))
    url = f"s3://{prefix}/refs.zarr"
    vds.virtualize.to_zarr(url, storage_options=s3_options)
    doc = s3.cat(f"{url[5:]}/air/zarr.json").replace(b"./manifest.paths.json", b"../../x.json")
    s3.pipe(f"{url[5:]}/air/zarr.json", doc)
    with pytest.raises(InvalidReferencesError, match="inside the store"):
        xr.open_dataset(url, engine="virtualizarr", storage_options=s3_options)
