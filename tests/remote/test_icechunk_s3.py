"""to_icechunk with the repository and the sources on S3 (moto's server on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz

from .conftest import BUCKET, write_day
from .test_remote import _upload

ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency (extra 'icechunk')")
ic.set_logs_filter("error")


def _s3_store(endpoint: str) -> Any:
    return ic.s3_store(
        region="us-east-1", endpoint_url=endpoint, allow_http=True, s3_compatible=True
    )


def _creds() -> Any:
    return ic.s3_credentials(access_key_id="testing", secret_access_key="testing")


def _repo(base: str, endpoint: str, *, create: bool) -> Any:
    prefix = f"{base}/data/"
    cfg = ic.RepositoryConfig.default()
    cfg.set_virtual_chunk_container(ic.VirtualChunkContainer(prefix, _s3_store(endpoint)))
    storage = ic.s3_storage(
        bucket=BUCKET,
        prefix=f"{base.removeprefix(f's3://{BUCKET}/')}/repo",
        region="us-east-1",
        endpoint_url=endpoint,
        allow_http=True,
        force_path_style=True,
        access_key_id="testing",
        secret_access_key="testing",
    )
    auth = ic.containers_credentials({prefix: _creds()})
    if create:
        return ic.Repository.create(storage, config=cfg, authorize_virtual_chunk_access=auth)
    return ic.Repository.open(storage, config=cfg, authorize_virtual_chunk_access=auth)


def test_s3_repository_with_s3_sources_write_append_read(
    tmp_path: Path, s3_server: str, s3_options: dict[str, Any]
) -> None:
    import s3fs

    base, local = _upload(tmp_path, s3_options, "NETCDF4", n=4)
    urls = [f"{base}/data/{p.name}" for p in local]
    load = ["time", "lat", "lon"]

    def virtual(paths: list[str]) -> Any:
        return vz.open_virtual_mfdataset(
            paths,
            storage_options=s3_options,
            parallel=False,
            loadable_variables=load,
            combine="nested",
            concat_dim="time",
        )

    repo = _repo(base, s3_server, create=True)
    session = repo.writable_session("main")
    virtual(urls[:3]).virtualize.to_icechunk(session.store)
    session.commit("three days")
    session = repo.writable_session("main")
    virtual(urls[3:]).virtualize.to_icechunk(session.store, append_dim="time")
    session.commit("one more")

    reopened = _repo(base, s3_server, create=False)
    with xr.open_zarr(reopened.readonly_session("main").store, consolidated=False) as ds:
        got = ds.load()
    with xr.open_mfdataset(local, combine="nested", concat_dim="time") as mf:
        expected = mf.load()
    # packed air with float32 scale_factor: float64 through plain xarray (JSON attributes)
    xr.testing.assert_identical(got.drop_vars("air"), expected.drop_vars("air"))
    np.testing.assert_allclose(got.air.values, expected.air.values, rtol=1e-6)
    assert got.air.attrs == expected.air.attrs

    # the ETag recorded at virtualization is the checksum: a rewritten object is refused
    fs = s3fs.S3FileSystem(**s3_options)
    changed = write_day(tmp_path / "changed.nc", "NETCDF4", 99)
    fs.put_file(str(changed), urls[1].removeprefix("s3://"))
    stale = xr.open_zarr(reopened.readonly_session("main").store, consolidated=False)
    with pytest.raises(ic.IcechunkError, match="checksum"):
        stale.air.load()
    stale.close()


def test_command_line_repository_of_s3_sources(
    tmp_path: Path, s3_server: str, s3_options: dict[str, Any]
) -> None:
    """``virtualizarr refs s3://... -o x.icechunk`` with the endpoint and region of
    --storage-option: the container is an S3-compatible store on that endpoint."""
    import subprocess
    import sys

    base, local = _upload(tmp_path, s3_options, "NETCDF4", n=3)
    out = tmp_path / "s3.icechunk"
    options = [
        "key=testing",
        "secret=testing",
        f"client_kwargs.endpoint_url={s3_server}",
        "client_kwargs.region_name=us-east-1",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "virtualizarr", "refs", f"{base}/data/*.nc", "-o", str(out),
         "--concat-dim", "time", "--parallel", "serial", *(f"-s{o}" for o in options)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    bucket = f"s3://{BUCKET}/"
    assert f"'{bucket}': icechunk.s3_credentials(from_env=True)" in done.stdout
    repo = ic.Repository.open(
        ic.local_filesystem_storage(str(out)),
        authorize_virtual_chunk_access=ic.containers_credentials({bucket: _creds()}),
    )
    (container,) = repo.config.virtual_chunk_containers.values()
    assert container.url_prefix == bucket
    with (
        xr.open_zarr(repo.readonly_session("main").store, consolidated=False) as ds,
        xr.open_mfdataset(local, combine="nested", concat_dim="time") as mf,
    ):
        got, expected = ds.load(), mf.load()
    xr.testing.assert_identical(got.drop_vars("air"), expected.drop_vars("air"))
    np.testing.assert_allclose(got.air.values, expected.air.values, rtol=1e-6)
