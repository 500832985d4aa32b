"""Remote sources and references against real servers on loopback (moto S3, HTTP)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.api import verify
from virtualizarr.errors import ChunkReadError, SourceNotFoundError, StaleReferenceError

from .conftest import BUCKET, write_day


def _upload(
    tmp_path: Path, s3_options: dict[str, Any], fmt: str, n: int = 3
) -> tuple[str, list[Path]]:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    prefix = f"{BUCKET}/{uuid.uuid4().hex[:8]}"
    local = [write_day(tmp_path / f"air_{i:02d}.nc", fmt, i) for i in range(n)]
    for p in local:
        fs.put_file(str(p), f"{prefix}/data/{p.name}")
    return f"s3://{prefix}", local


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_s3_glob_virtualize_write_read_back(
    tmp_path: Path, s3_options: dict[str, Any], fmt: str
) -> None:
    base, local = _upload(tmp_path, s3_options, fmt)
    vds = vz.open_virtual_mfdataset(f"{base}/data/*.nc", storage_options=s3_options, parallel=False)
    paths = vds.air.data.manifest.paths
    assert paths == tuple(f"{base}/data/{p.name}" for p in local)  # absolute URIs
    assert all(s and '"etag"' in s for s in vds.air.data.manifest.sources)
    refs = f"{base}/refs.json"
    vds.virtualize.to_kerchunk(refs, format="json", storage_options=s3_options)
    expected = xr.open_mfdataset(local).load()
    got = xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options).load()
    xr.testing.assert_identical(got, expected)
    # one file: open_virtual_dataset directly, loaded coordinates read remotely
    one = vz.open_virtual_dataset(f"{base}/data/{local[0].name}", storage_options=s3_options)
    assert float(one.time.values[0]) != 0 or one.time.size == 1
    assert verify(refs, storage_options=s3_options).ok


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_s3_stale_and_missing(tmp_path: Path, s3_options: dict[str, Any], fmt: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    base, local = _upload(tmp_path, s3_options, fmt, n=2)
    vds = vz.open_virtual_mfdataset(f"{base}/data/*.nc", storage_options=s3_options, parallel=False)
    refs = f"{base}/refs.json"
    vds.virtualize.to_kerchunk(refs, format="json", storage_options=s3_options)
    changed = write_day(tmp_path / "other.nc", fmt, 9)
    fs.put_file(str(changed), f"{base[5:]}/data/{local[1].name}")  # new ETag
    with pytest.raises(StaleReferenceError, match=local[1].name) as e:
        xr.open_dataset(refs, engine="virtualizarr", storage_options=s3_options)
    assert local[0].name not in str(e.value)
    report = verify(refs, storage_options=s3_options)
    assert list(report.changed) == [f"{base}/data/{local[1].name}"]
    fs.rm(f"{base[5:]}/data/{local[0].name}")
    report = verify(refs, storage_options=s3_options)
    assert report.missing == (f"{base}/data/{local[0].name}",)
    ds = xr.open_dataset(
        refs, engine="virtualizarr", storage_options=s3_options, verify_sources=False
    )
    with pytest.raises(ChunkReadError, match=local[0].name):
        ds.load()
    with pytest.raises(SourceNotFoundError):
        vz.open_virtual_dataset(f"{base}/data/nope.nc", storage_options=s3_options)


def test_refs_exist_refused(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    base, _ = _upload(tmp_path, s3_options, "NETCDF4", n=1)
    vds = vz.open_virtual_mfdataset(f"{base}/data/*.nc", storage_options=s3_options, parallel=False)
    vds.virtualize.to_kerchunk(f"{base}/r.json", format="json", storage_options=s3_options)
    with pytest.raises(FileExistsError):
        vds.virtualize.to_kerchunk(f"{base}/r.json", format="json", storage_options=s3_options)
    vds.virtualize.to_kerchunk(
        f"{base}/r.json", format="json", mode="w", storage_options=s3_options
    )


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_http_sources_and_relative_refs(
    tmp_path: Path, http_root: tuple[Path, str], fmt: str
) -> None:
    root, url = http_root
    sub = root / uuid.uuid4().hex[:8]
    (sub / "data").mkdir(parents=True)
    local = [write_day(sub / "data" / f"d{i}.nc", fmt, i) for i in range(2)]
    expected = xr.open_mfdataset(local).load()
    # sources over HTTP (range requests), references written locally, read back
    urls = [f"{url}/{sub.name}/data/{p.name}" for p in local]
    vds = vz.open_virtual_mfdataset(urls, parallel=False)
    assert vds.air.data.manifest.paths == tuple(urls)
    vds.virtualize.to_kerchunk(tmp_path / "http.json", format="json")
    got = xr.open_dataset(tmp_path / "http.json", engine="virtualizarr").load()
    xr.testing.assert_identical(got, expected)
    # a directory of data + relative references, virtualized locally, served as is
    lv = vz.open_virtual_mfdataset(local, parallel=False)
    lv.virtualize.to_kerchunk(sub / "refs.json", format="json", relative_paths=True)
    served = xr.open_dataset(
        f"{url}/{sub.name}/refs.json", engine="virtualizarr", verify_sources=False
    ).load()
    xr.testing.assert_identical(served, expected)
    # ... and moved elsewhere on disk
    moved = tmp_path / "moved"
    shutil.copytree(sub, moved)  # copy2 keeps mtimes
    xr.testing.assert_identical(
        xr.open_dataset(moved / "refs.json", engine="virtualizarr").load(), expected
    )


def test_transient_errors_retried_persistent_named(http_root: tuple[Path, str]) -> None:
    from virtualizarr.io.objects import Location

    from .conftest import FLAKY

    def read_range(url: str, offset: int, length: int) -> bytes:
        return Location(url).read_range(offset, length)

    root, url = http_root
    (root / "flaky.bin").write_bytes(bytes(range(100)))
    FLAKY["/flaky.bin"] = 2  # two 503s, then data
    assert read_range(f"{url}/flaky.bin", 10, 5) == bytes(range(10, 15))
    FLAKY["/flaky.bin"] = 99  # never recovers
    with pytest.raises(ChunkReadError, match=r"flaky\.bin"):
        read_range(f"{url}/flaky.bin", 10, 5)
    FLAKY["/flaky.bin"] = 0
    with pytest.raises(ChunkReadError, match=r"nothere\.bin.*does not exist"):
        read_range(f"{url}/nothere.bin", 0, 5)


def test_remote_references_may_not_reach_local_files(
    tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    """References served over HTTP that point at this machine's files are refused."""
    from virtualizarr.errors import UntrustedReferenceError

    root, url = http_root
    sub = root / uuid.uuid4().hex[:8]
    sub.mkdir()
    secret = write_day(tmp_path / "local_only.nc", "NETCDF4", 0)
    vz.open_virtual_dataset(secret).virtualize.to_kerchunk(sub / "refs.json", format="json")
    served = f"{url}/{sub.name}/refs.json"
    with pytest.raises(UntrustedReferenceError, match=r"local_only\.nc") as e:
        xr.open_dataset(served, engine="virtualizarr")
    assert isinstance(e.value, PermissionError)
    with pytest.raises(UntrustedReferenceError):
        vz.open_virtual_dataset(served)
    ok = xr.open_dataset(
        served, engine="virtualizarr", allowed_sources=[f"file://{tmp_path}"]
    ).load()
    xr.testing.assert_identical(ok, xr.open_dataset(secret).load())
