"""The command line, run as users run it: ``python -m virtualizarr`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from virtualizarr.cli import parse_storage_options
from virtualizarr.errors import InvalidArgumentError


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtualizarr", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def write_day(path: Path, day: int) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 2)
        nc.createDimension("x", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 2026-01-01"
        t[:] = [24 * day, 24 * day + 12]
        x = nc.createVariable("x", "i4", ("x",))
        x[:] = [10, 20, 30]
        v = nc.createVariable("air", "i2", ("time", "x"), chunksizes=(1, 3), zlib=True)
        v.scale_factor = np.float32(0.5)
        v[:] = np.arange(6).reshape(2, 3) + day
    return path


@pytest.fixture
def days(tmp_path: Path) -> list[Path]:
    (tmp_path / "data").mkdir()
    return [write_day(tmp_path / "data" / f"day{i}.nc", i) for i in range(3)]


@pytest.mark.parametrize("ext", ["json", "parq", "zarr"])
def test_refs_writes_every_format_and_reads_back(
    days: list[Path], tmp_path: Path, ext: str
) -> None:
    out = tmp_path / f"out.{ext}"
    done = run("refs", str(tmp_path / "data" / "day*.nc"), "-o", str(out), "--concat-dim", "time")
    assert done.returncode == 0, done.stderr
    assert "6 chunk references" in done.stdout  # 3 files x 2 chunks of air
    with (
        xr.open_dataset(out, engine="virtualizarr") as got,
        xr.open_mfdataset(days, combine="nested", concat_dim="time") as want,
    ):
        xr.testing.assert_identical(got.load(), want.load())


def test_refs_refuses_to_overwrite_and_replaces_with_mode_w(
    days: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "one.json"
    assert run("refs", str(days[0]), "-o", str(out)).returncode == 0
    again = run("refs", str(days[0]), "-o", str(out))
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert run("refs", str(days[1]), "-o", str(out), "--mode", "w").returncode == 0
    with xr.open_dataset(out, engine="virtualizarr") as got, xr.open_dataset(days[1]) as want:
        xr.testing.assert_identical(got.load(), want.load())


def test_refs_options(days: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run(
        "refs", str(days[0]), "-o", str(out), "--loadable-variables", "", "--drop-variables", "x"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert "x/.zarray" not in doc["refs"]
    assert isinstance(doc["refs"]["time/0"], list)  # time stayed virtual: a reference
    unknown = run("refs", str(days[0]), "-o", str(tmp_path / "r.txt"))
    assert unknown.returncode == 2 and "--format" in unknown.stderr
    forced = run("refs", str(days[0]), "-o", str(tmp_path / "r.txt"), "--format", "JSON")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "r.txt").read_text())["version"] == 1


def test_info_describes_files_and_references(days: list[Path], tmp_path: Path) -> None:
    text = run("info", str(days[0]))
    assert text.returncode == 0, text.stderr
    assert "air (time: 2, x: 3) int16" in text.stdout
    assert "numcodecs.zlib" in text.stdout
    out = tmp_path / "r.json"
    run("refs", str(days[0]), "-o", str(out))
    as_json = run("info", str(out), "--json")
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    air = info["variables"]["air"]
    assert air["shape"] == [2, 3] and air["chunks"] == [1, 3] and air["references"] == 2
    assert air["bytes_referenced"] > 0
    assert info["sources"] == [days[0].resolve().as_uri()]
    missing = run("info", str(tmp_path / "nope.nc"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_verify_exits_non_zero_when_a_source_changed(days: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run("refs", str(days[0]), "-o", str(out))
    ok = run("verify", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "0 changed" in ok.stdout
    write_day(days[0], 7)  # rewritten: a new mtime (and maybe size)
    os.utime(days[0], ns=(1, 1))
    stale = run("verify", str(out))
    assert stale.returncode == 1
    assert "changed: " in stale.stdout and "day0.nc" in stale.stdout


def test_help_and_version() -> None:
    assert "refs" in run("--help").stdout
    version = run("--version")
    assert version.returncode == 0 and "version" in version.stdout


def test_parse_storage_options() -> None:
    assert parse_storage_options(["anon=true", "a.b.c=1", "name=plain text"]) == {
        "anon": True,
        "a": {"b": {"c": 1}},
        "name": "plain text",
    }
    with pytest.raises(InvalidArgumentError, match="KEY=VALUE"):
        parse_storage_options(["novalue"])


# ---------------------------------------------------------------------- icechunk
_READ_BACK = """
import sys
import numpy as np
import xarray as xr
{snippet}
got = ds.load()
assert "virtualizarr" not in sys.modules  # icechunk + xarray + zarr alone
files = {files!r}
expected = xr.open_mfdataset(files, combine="nested", concat_dim="time").load()
# air is packed with a float32 scale_factor: plain xarray decodes it to float64 (the
# documented limit of JSON attributes), equal to float32 precision
xr.testing.assert_identical(got.drop_vars("air"), expected.drop_vars("air"))
np.testing.assert_allclose(got.air.values, expected.air.values, rtol=1e-6)
assert got.air.attrs == expected.air.attrs and got.air.dims == expected.air.dims
print("OK", dict(got.sizes), list(repo.ancestry(branch="main"))[0].message)
"""


def _snippet(stdout: str) -> str:
    return stdout[stdout.index("import icechunk") :]


def test_refs_makes_an_icechunk_repository_plain_readers_open(
    days: list[Path], tmp_path: Path
) -> None:
    pytest.importorskip("icechunk", reason="icechunk is an optional dependency")
    out = tmp_path / "days.icechunk"
    done = run(
        "refs", str(tmp_path / "data" / "day*.nc"), "-o", str(out), "--concat-dim", "time",
        "-m", "three days",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "6 chunk references" in done.stdout
    assert "WARN" not in done.stderr  # Icechunk's notices about local storage are quiet
    snippet = _snippet(done.stdout)
    assert f"'{(tmp_path / 'data').as_uri()}/': icechunk.credentials.LocalFileSystemAccess" in (
        snippet
    )
    script = _READ_BACK.format(snippet=snippet, files=[str(p) for p in days])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["ICECHUNK_LOG"] = "error"
    check = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip() == "OK {'time': 6, 'x': 3} three days"


def test_refs_icechunk_modes_formats_and_refusals(days: list[Path], tmp_path: Path) -> None:
    ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency")
    out = tmp_path / "repo.dir"
    assert run("refs", str(days[0]), "-o", str(out), "--format", "icechunk").returncode == 0
    again = run("refs", str(days[1]), "-o", str(out), "--format", "icechunk")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    replaced = run("refs", str(days[1]), "-o", str(out), "--format", "icechunk", "--mode", "w")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "repo.dir"]  # no leftovers
    ic.set_logs_filter("error")
    repo = ic.Repository.open(
        ic.local_filesystem_storage(str(out)),
        authorize_virtual_chunk_access={
            (tmp_path / "data").as_uri() + "/": ic.credentials.LocalFileSystemAccess
        },
    )
    with (
        xr.open_zarr(repo.readonly_session("main").store, consolidated=False) as got,
        xr.open_dataset(days[1]) as want,
    ):
        xr.testing.assert_identical(got.load(), want.load())
    assert next(iter(repo.ancestry(branch="main"))).message == f"virtualizarr refs {days[1]}"
    remote = run("refs", str(days[0]), "-o", "s3://bucket/r.icechunk")
    assert remote.returncode == 2 and "local disk only" in remote.stderr
    assert "ds.virtualize.to_icechunk(session.store)" in remote.stderr
    relative = run("refs", str(days[0]), "-o", str(tmp_path / "x.icechunk"), "--relative-paths")
    assert relative.returncode == 2 and "absolute chunk URLs" in relative.stderr
    assert not (tmp_path / "x.icechunk").exists()
