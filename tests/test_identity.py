"""Source identities (stale-reference detection) and relative reference paths, locally."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.api import verify
from virtualizarr.errors import InvalidReferencesError, StaleReferenceError
from virtualizarr.identity import identity_from_token
from virtualizarr.io.uri import relative_to, resolve_relative
from virtualizarr.manifests import ChunkManifest
from virtualizarr.manifests.concat import concatenate_manifests


def _write(path: Path, fmt: str, day: int) -> Path:
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", 1)
        ds.createDimension("x", 6)
        t = ds.createVariable("time", "i4", ("time",))
        t.units = "days since 2020-01-01"
        t[:] = [day]
        v = ds.createVariable("air", "f4", ("time", "x"))
        v[:] = np.arange(6, dtype="f4")[None] + day
    return path


# ---------------------------------------------------------------------- manifest core
def test_manifest_sources_travel() -> None:
    a = ChunkManifest(["file:///a.nc"], [0], [0], [4], sources=['{"size":1}'])
    b = ChunkManifest(["file:///b.nc"], [0], [0], [4])
    assert b.sources == (None,)
    c = concatenate_manifests([a, b, a], axis=0)
    assert c.paths == ("file:///a.nc", "file:///b.nc")
    assert c.sources == ('{"size":1}', None)
    assert c.with_sources({"file:///b.nc": '{"size":2}'}).sources == ('{"size":1}', '{"size":2}')
    moved = c.rename_paths(lambda p: p.replace("file:///", "s3://bkt/"))
    assert moved.sources == c.sources and moved.paths[0] == "s3://bkt/a.nc"
    merged = c.rename_paths(lambda p: "file:///one.nc")  # two entries become one
    assert merged.paths == ("file:///one.nc",) and merged.sources == ('{"size":1}',)
    assert c[(slice(0, 1),)].sources == c.sources
    assert c.broadcast_to((3,)).sources == c.reshape((3,)).sources == c.sources
    assert c.fill_missing(b"x").sources == c.sources
    assert c.equals(ChunkManifest(c.paths, c.path_ids, c.offsets, c.lengths))  # ignored
    with pytest.raises(InvalidReferencesError, match="one identity"):
        ChunkManifest(["file:///a.nc"], [0], [0], [4], sources=[None, None])


def test_relative_path_helpers() -> None:
    assert relative_to("file:///d/raw/a.nc", "file:///d/refs.json") == "raw/a.nc"
    assert relative_to("file:///x/a.nc", "file:///d/sub/refs.json") == "../../x/a.nc"
    assert resolve_relative("../../x/a.nc", "file:///d/sub/refs.json") == "file:///x/a.nc"
    assert resolve_relative("a.nc", "http://127.0.0.1:8/d/refs.json") == (
        "http://127.0.0.1:8/d/a.nc"
    )
    assert relative_to("s3://b/a.nc", "file:///d/refs.json") == "s3://b/a.nc"


# ---------------------------------------------------------------------- identities
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_identity_recorded_and_written(tmp_path: Path, fmt: str) -> None:
    src = _write(tmp_path / "a.nc", fmt, 1)
    vds = vz.open_virtual_dataset(src, loadable_variables=[])
    token = vds.air.data.manifest.sources[0]
    assert token is not None
    ident = identity_from_token(token)
    st = os.stat(src)
    assert ident == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    refs = vds.virtualize.to_kerchunk(format="dict")
    assert refs["virtualizarr"]["sources"] == {src.resolve().as_uri(): ident}  # type: ignore[typeddict-item]
    vds.virtualize.to_zarr(tmp_path / "s.zarr")
    gdoc = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    assert gdoc["virtualizarr"]["sources"] == {src.resolve().as_uri(): ident}
    assert verify(vds).ok and verify(refs).ok and verify(tmp_path / "s.zarr").ok


@pytest.mark.parametrize("kind", ["json", "parquet", "zarr"])
def test_changed_source_detected(tmp_path: Path, kind: str) -> None:
    a = _write(tmp_path / "a.nc", "NETCDF4", 1)
    b = _write(tmp_path / "b.nc", "NETCDF4", 2)
    vds = vz.open_virtual_mfdataset([a, b], parallel=False)
    out = tmp_path / f"refs.{kind}"
    if kind == "zarr":
        vds.virtualize.to_zarr(out)
    else:
        vds.virtualize.to_kerchunk(out, format=kind)  # type: ignore[call-overload]
    xr.testing.assert_identical(
        xr.open_dataset(out, engine="virtualizarr").load(),
        xr.open_mfdataset([a, b]).load(),
    )
    _write(b, "NETCDF4", 3)  # rewritten in place: same size, new mtime
    report = verify(out)
    assert not report.ok and list(report.changed) == [b.resolve().as_uri()]
    assert report.checked == tuple(sorted([a.resolve().as_uri(), b.resolve().as_uri()]))
    with pytest.raises(StaleReferenceError, match=r"b\.nc") as e:
        xr.open_dataset(out, engine="virtualizarr")
    assert "a.nc" not in str(e.value)
    xr.open_dataset(out, engine="virtualizarr", verify_sources=False).close()
    a.unlink()
    report = verify(out)
    assert report.missing == (a.resolve().as_uri(),)
    with pytest.raises(StaleReferenceError, match=r"a\.nc: missing"):
        report.raise_if_stale()


def test_no_identity_means_unchecked(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.nc", "NETCDF4", 1)
    refs = vz.open_virtual_dataset(a).virtualize.to_kerchunk(format="dict")
    del refs["virtualizarr"]["sources"]  # type: ignore[typeddict-item]
    report = verify(refs)
    assert report.ok and report.unrecorded == (a.resolve().as_uri(),)


# ---------------------------------------------------------------------- relative paths
@pytest.mark.parametrize("kind", ["json", "zarr"])
def test_relative_paths_move_with_the_data(tmp_path: Path, kind: str) -> None:
    d = tmp_path / "d"
    (d / "raw").mkdir(parents=True)
    files = [_write(d / "raw" / f"f{i}.nc", "NETCDF4", i) for i in range(2)]
    vds = vz.open_virtual_mfdataset(files, parallel=False)
    out = d / f"refs.{kind}"
    if kind == "zarr":
        vds.virtualize.to_zarr(out, relative_paths=True)
        text = "".join(p.read_text() for p in out.rglob("manifest.paths.json"))
    else:
        vds.virtualize.to_kerchunk(out, format="json", relative_paths=True)
        text = out.read_text()
    rel = '"../../raw/f0.nc"' if kind == "zarr" else '"raw/f0.nc"'  # zarr: from store/air/
    assert rel in text and "file://" not in text
    expected = xr.open_mfdataset(files).load()
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(d, moved)  # keeps mtimes: the identities still match
    got = xr.open_dataset(moved / f"refs.{kind}", engine="virtualizarr").load()
    xr.testing.assert_identical(got, expected)
    again = vz.open_virtual_dataset(moved / f"refs.{kind}", loadable_variables=[])
    assert again.air.data.manifest.paths[0].startswith((moved / "raw").as_uri())
    assert verify(moved / f"refs.{kind}").ok


@pytest.mark.parametrize("token", ["not json", "[1, 2]", "{", '"text"'])
def test_a_damaged_identity_token_is_an_invalid_references_error(token: str) -> None:
    with pytest.raises(InvalidReferencesError, match="verify_sources=False"):
        identity_from_token(token)
