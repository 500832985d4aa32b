"""write_icechunk_repository (what ``virtualizarr refs -o x.icechunk`` runs): containers per
source prefix, atomic creation, and the snippet that opens the result."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xarray as xr

from tests.remote.conftest import write_day
from virtualizarr import open_virtual_dataset
from virtualizarr.errors import InvalidArgumentError, OutputExistsError, UnsupportedFeatureError
from virtualizarr.writers.icechunk_repo import (
    Container,
    open_snippet,
    source_containers,
    write_icechunk_repository,
)

ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency (extra 'icechunk')")
ic.set_logs_filter("error")


def test_containers_for_local_and_s3_sources() -> None:
    local = source_containers(["file:///d/a%20b/x.nc", "file:///d/c/y.nc", "file:///d/c/z.nc"])
    assert local == [Container("file:///d/", "local", path="/d/")]
    spaced = source_containers(["file:///d/a%20b/x.nc"])
    assert spaced[0].prefix == "file:///d/a%20b/" and spaced[0].path == "/d/a b/"
    options = {
        "anon": True,
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
    }
    s3 = source_containers(["s3://one/k/x.nc", "s3://two/y.nc", "s3://one/z.nc"], options)
    assert [c.prefix for c in s3] == ["s3://one/", "s3://two/"]
    assert s3[0].s3 == {
        "region": "eu-west-1",
        "endpoint_url": "http://127.0.0.1:9000",
        "allow_http": True,
        "s3_compatible": True,
        "force_path_style": True,
        "anonymous": True,
    }
    assert s3[0].anonymous
    aws = source_containers(["s3://b/x.nc"], {"client_kwargs": {"region_name": "us-west-2"}})
    assert aws[0].s3 == {"region": "us-west-2"} and not aws[0].anonymous
    with pytest.raises(UnsupportedFeatureError, match=r"'https://h/x.nc' and 1 more.*Python API"):
        source_containers(["file:///d/x.nc", "https://h/x.nc", "gs://b/y.nc"])


def test_the_snippet_opens_the_repository_without_virtualizarr(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    path = write_day(tmp_path / "data" / "a.nc", "NETCDF3_64BIT_OFFSET", 3)
    out = tmp_path / "a.icechunk"
    containers = write_icechunk_repository(open_virtual_dataset(path), out, message="one file")
    script = open_snippet(out, containers) + textwrap.dedent(
        f"""
        import sys
        got = ds.load()
        assert "virtualizarr" not in sys.modules
        want = xr.open_dataset({str(path)!r}).load()
        xr.testing.assert_identical(got.drop_vars("air"), want.drop_vars("air"))
        assert float(abs(got.air - want.air).max()) < 1e-4
        print("OK", list(repo.ancestry(branch="main"))[0].message)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["ICECHUNK_LOG"] = "error"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "OK one file"


def test_creation_is_atomic(tmp_path: Path) -> None:
    """A failed write leaves no repository (or the previous one), and no temporary one."""
    a = write_day(tmp_path / "a.nc", "NETCDF4", 0)
    vds = open_virtual_dataset(a)
    bad = vds.rename({"air": "a/b"})  # refused once the repository exists (in its tmp dir)
    out = tmp_path / "r.icechunk"
    with pytest.raises(UnsupportedFeatureError, match="Zarr array name"):
        write_icechunk_repository(bad, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]
    write_icechunk_repository(vds, out)
    with pytest.raises(OutputExistsError, match="mode='w'"):
        write_icechunk_repository(vds, out)
    with pytest.raises(UnsupportedFeatureError, match="Zarr array name"):
        write_icechunk_repository(bad, out, mode="w")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "r.icechunk"]
    repo = ic.Repository.open(
        ic.local_filesystem_storage(str(out)),
        authorize_virtual_chunk_access={
            tmp_path.as_uri() + "/": ic.credentials.LocalFileSystemAccess
        },
    )
    with xr.open_zarr(repo.readonly_session("main").store, consolidated=False) as got:
        assert set(got.data_vars) == {"air"}  # the previous repository, intact
    with pytest.raises(InvalidArgumentError, match="local disk only"):
        write_icechunk_repository(vds, "s3://bucket/r.icechunk")
