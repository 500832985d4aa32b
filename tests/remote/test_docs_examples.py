"""Every ``python`` block of README.md and docs/*.md runs, as a reader would run it.

Each page's blocks run in order, in one namespace, in a fresh directory that holds what
the pages use:

* ``demo-output/air_2026-01-0{1,2,3}.nc``: the three files ``./dev demo`` writes (the
  same code makes them), also copied to ``project/data/`` and ``project/raw/``;
* ``forecast.nc`` (netCDF4 with nested groups), ``granule.dmrpp`` (a DMR++ sidecar),
  ``forecast.grib2``, ``mixed.grib2`` and ``forecasts/*.grib2`` (GRIB written by ecCodes
  or cfgrib's samples), ``scene.tif`` (a COG with overviews) and ``exposure.fits``
  (astropy's sample), from tests/data and the test suite's case builders;
* ``s3://bucket/``, a public bucket (``daily/*.nc``, ``era5.zarr``, ``granule.h5`` with
  its ``.dmrpp``) and ``s3://my-bucket/``, a private one, on moto's S3 server on loopback
  (this module lives under ``tests/remote`` for its fixtures). ``AWS_ENDPOINT_URL`` and
  test credentials in the environment point botocore (and so s3fs) at it, as a user's
  environment points at theirs;
* ``https://host/``: the directory itself, served over HTTP on loopback; the runner
  replaces that prefix in a block's text before running it.

Blocks indented inside list items run too (dedented). A block right after
``<!-- docs-test: skip REASON -->`` is not run: it shows as a skipped test with that
reason (code of other tools, shown for comparison). Everything else runs with the suite's
warning policy (warnings are errors).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

from tests.readers import dmrpp_cases, test_grib

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```python\s*$")
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\s+(.+?)\s*-->\s*$")
BUCKET = "bucket"
PRIVATE = "my-bucket"
DATA = REPO / "tests" / "data"
PUBLIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    ],
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the first line of code
    code: str
    skip: str | None

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The page's ``python`` blocks, with the skip reason of the comment before each."""
    lines = page.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("```"))
            before = lines[i - 1] if i else ""
            reason = SKIP.match(before)
            code = textwrap.dedent("\n".join(lines[i + 1 : end]))
            out.append(Block(page, i + 2, code, reason.group(1) if reason else None))
            i = end
        i += 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]
RUN_PAGES = sorted({b.page for b in ALL if b.skip is None})
SKIPPED = [b for b in ALL if b.skip is not None]


def _demo_module() -> Any:
    spec = importlib.util.spec_from_file_location("_docs_demo", REPO / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _format_samples(work: Path) -> None:
    """GRIB, TIFF and FITS files under the names the pages use."""
    shutil.copy(DATA / "grib" / "regular_ll_sfc.grib", work / "forecast.grib2")
    shutil.copy(DATA / "grib" / "t_on_different_level_types.grib", work / "mixed.grib2")
    shutil.copy(DATA / "tiff" / "cog_deflate_u16.tif", work / "scene.tif")
    shutil.copy(DATA / "fits" / "test0.fits", work / "exposure.fits")
    rng = np.random.default_rng(0)
    (work / "forecasts").mkdir()
    for day in range(3):
        grib = work / "forecasts" / f"fc_2026010{day + 1}.grib2"
        values = [rng.random((3, 5)) for _ in range(2)]
        test_grib._write_grib2(grib, values, dataDate=20260101 + day)


def _forecast(path: Path) -> None:
    """Groups two deep, a child using its parent's dimension."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "forecast"
        nc.createDimension("time", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 2026-01-01"
        t[:] = np.arange(4) * 6
        surface = nc.createGroup("surface")
        surface.createDimension("station", 3)
        wind = surface.createVariable("wind", "f4", ("time", "station"), zlib=True)
        wind.units = "m s-1"
        wind[:] = np.arange(12, dtype="f4").reshape(4, 3)
        deep = surface.createGroup("deep")
        deep.createVariable("depth", "i2", ("station",))[:] = [1, 5, 10]


@pytest.fixture
def workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_server: str,
    s3_options: dict[str, Any],
    http_root: tuple[Path, str],
) -> Iterator[tuple[Path, str]]:
    """The directory the pages' blocks run in, and its HTTP base URL."""
    root, base = http_root
    work = Path(root) / tmp_path.name
    files = _demo_module().make_sample_files(work / "demo-output")
    for sub in ("project/data", "project/raw"):
        (work / sub).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, work / sub / f.name)
    _forecast(work / "forecast.nc")

    _format_samples(work)
    dmrpp_cases.write_dmrpp(dmrpp_cases.nc4_cf(work / "granule.h5"), work / "granule.dmrpp")
    era5 = work / "s3-only" / "era5.zarr"
    with xr.open_mfdataset(
        files,
        combine="nested",
        concat_dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    ) as ds:
        ds.load().to_zarr(era5, zarr_format=2, consolidated=True)

    s3fs = pytest.importorskip("s3fs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    fs = s3fs.S3FileSystem(**s3_options)
    for bucket in (BUCKET, PRIVATE):
        if fs.exists(bucket):
            fs.rm(bucket, recursive=True)
    fs.call_s3("create_bucket", Bucket=BUCKET, ACL="public-read")
    fs.call_s3("put_bucket_policy", Bucket=BUCKET, Policy=json.dumps(PUBLIC_POLICY))
    fs.call_s3("create_bucket", Bucket=PRIVATE)
    for f in files:
        fs.put_file(str(f), f"{BUCKET}/daily/{f.name}")
    fs.put(str(era5), f"{BUCKET}/era5.zarr", recursive=True)
    fs.put_file(str(work / "granule.h5"), f"{BUCKET}/granule.h5")
    dmrpp_cases.write_dmrpp(work / "granule.h5", work / "s3-only" / "granule.h5.dmrpp")
    fs.put_file(str(work / "s3-only" / "granule.h5.dmrpp"), f"{BUCKET}/granule.h5.dmrpp")
    shutil.rmtree(work / "s3-only")
    fs.invalidate_cache()
    monkeypatch.chdir(work)
    yield work, f"{base}/{work.name}/"
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_examples_run(page: Path, workspace: tuple[Path, str]) -> None:
    _, base = workspace
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.skip is not None:
            continue
        code = block.code.replace("https://host/", base)
        # line numbers in tracebacks are the page's
        compiled = compile("\n" * (block.line - 1) + code, str(page), "exec")
        try:
            exec(compiled, namespace)
        except Exception as e:
            raise AssertionError(f"{block.label} failed: {type(e).__name__}: {e}") from e


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.label)
def test_skipped_examples_say_why(block: Block) -> None:
    pytest.skip(f"{block.label}: {block.skip}")


def test_every_page_with_code_is_run() -> None:
    assert {p.name for p in RUN_PAGES} >= {"README.md", "usage.md", "migration.md"}
    for block in ALL:  # a skip needs a reason a reader would accept
        assert block.skip is None or len(block.skip.split()) >= 3, block.label
    assert os.path.isdir(REPO / "examples")
