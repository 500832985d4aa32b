"""The ``ds.virtualize`` accessor (``virtualizarr.accessor``): argument checking, ``mode=``,
``relative_paths=``, ``rename_paths`` and ``nbytes``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import (
    InvalidArgumentError,
    OutputExistsError,
)
from virtualizarr.manifests import ManifestArray
from virtualizarr.writers.kerchunk import dataset_to_kerchunk_refs

FORMATS = ["json", "parquet", "zarr"]


def make_sample(path: Path, var: str = "temp") -> Path:
    """Compressed chunks, packed int16, missing chunks, strings; time, y, x coordinates."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "sample"
        nc.createDimension("time", 4)
        nc.createDimension("y", 30)
        nc.createDimension("x", 40)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t[:] = np.arange(4)
        nc.createVariable("y", "f4", ("y",))[:] = np.arange(30)
        nc.createVariable("x", "f4", ("x",))[:] = np.arange(40)
        rng = np.random.default_rng(0)
        temp = nc.createVariable(
            var, "f4", ("time", "y", "x"), zlib=True, shuffle=True, chunksizes=(1, 15, 20)
        )
        temp[:] = rng.normal(280, 5, (4, 30, 40)).astype("f4")
        p = nc.createVariable(
            "packed", "i2", ("time", "y", "x"), zlib=True, chunksizes=(2, 15, 20), fill_value=-999
        )
        p.scale_factor = np.float32(0.01)
        p.add_offset = np.float32(273.15)
        p[:] = rng.uniform(260, 280, (4, 30, 40))
        s = nc.createVariable("sparse", "f4", ("time", "x"), chunksizes=(1, 20), fill_value=-1.0)
        s[1, :20] = np.arange(20)
        lab = nc.createVariable("label", str, ("time",))
        lab[:] = np.array(["a", "bc", "", "dé"], dtype=object)
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_sample(tmp_path / "sample.nc")


def write(ds: xr.Dataset, fmt: str, out: Path, **kw: Any) -> None:
    if fmt == "zarr":
        ds.virtualize.to_zarr(out, **kw)
    else:
        ds.virtualize.to_kerchunk(out, format=fmt, **kw)


def target(directory: Path, fmt: str) -> Path:
    return directory / {"json": "refs.json", "parquet": "refs.parq", "zarr": "v.zarr"}[fmt]


def snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def top_document(out: Path, fmt: str) -> dict[str, Any]:
    name = {"json": "", "parquet": ".zmetadata", "zarr": "zarr.json"}[fmt]
    return json.loads((out / name if name else out).read_bytes())


def written_arrays(out: Path, fmt: str) -> set[str]:
    doc = top_document(out, fmt)
    if fmt == "zarr":
        return set(doc["virtualizarr"]["arrays"])
    keys = doc["refs"] if fmt == "json" else doc["metadata"]
    return {k.rsplit("/", 1)[0] for k in keys if k.endswith("/.zarray")}


def referenced_paths(out: Path, fmt: str) -> set[str]:
    """Every source path the written chunk references hold."""
    if fmt == "json":
        return {v[0] for v in top_document(out, fmt)["refs"].values() if isinstance(v, list)}
    if fmt == "parquet":
        tables = [pq.read_table(f, columns=["path"]) for f in out.glob("*/refs.*.parq")]
        return {p for t in tables for p in t.column("path").to_pylist() if p is not None}
    manifests = [json.loads(m.read_bytes()) for m in out.glob("*/manifest.json")]
    tables = [json.loads(t.read_bytes()) for t in out.glob("*/manifest.paths.json")]
    return {e["path"] for m in manifests for e in m.values()} | {p for t in tables for p in t}


def virtual_names(ds: xr.Dataset) -> list[str]:
    return [str(n) for n, v in ds.variables.items() if isinstance(v.data, ManifestArray)]


REFERENCED = ["temp", "packed", "sparse"]  # label's strings are inline: it has no path


ARGUMENT_ERRORS = [
    ({"format": "yaml"}, "format must be 'dict', 'json' or 'parquet'; found 'yaml'"),
    ({"filepath": "OUT", "format": "yaml"}, "format must be"),
    ({"format": "json"}, "format='json' needs a filepath"),
    ({"format": "parquet"}, "format='parquet' needs a filepath"),
    ({"filepath": "OUT", "format": "dict"}, "format='dict' returns the references"),
    ({"relative_paths": True}, "relative_paths=True needs a filepath"),
    ({"format": "json", "relative_paths": True}, "relative_paths=True needs a filepath"),
]


@pytest.mark.parametrize(("kwargs", "match"), ARGUMENT_ERRORS)
def test_argument_errors(sample: Path, tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    vds = vz.open_virtual_dataset(sample)
    kw = {k: tmp_path / "out" if v == "OUT" else v for k, v in kwargs.items()}
    with pytest.raises(InvalidArgumentError, match=match) as info:
        vds.virtualize.to_kerchunk(**kw)
    assert isinstance(info.value, ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.nc"]  # nothing written


def test_dict_format_returns_the_document(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    refs = vds.virtualize.to_kerchunk()
    assert refs == vds.virtualize.to_kerchunk(format="dict") == dataset_to_kerchunk_refs(vds)
    assert refs["refs"]["temp/1.1.1"][0] == sample.as_uri()
    vds.virtualize.to_kerchunk(tmp_path / "refs.json", format="json")
    assert json.loads((tmp_path / "refs.json").read_bytes()) == refs


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_mode_refuses_existing_output(sample: Path, tmp_path: Path, fmt: str) -> None:
    vds = vz.open_virtual_dataset(sample)
    out = target(tmp_path, fmt)
    write(vds, fmt, out)
    before = snapshot(out)
    for kw in ({}, {"mode": "w-"}):
        with pytest.raises(OutputExistsError, match="mode='w'") as info:
            write(vds.drop_vars("sparse"), fmt, out, **kw)
        assert isinstance(info.value, FileExistsError)
    assert snapshot(out) == before
    assert "sparse" in written_arrays(out, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mode_w_replaces_existing_output(sample: Path, tmp_path: Path, fmt: str) -> None:
    vds = vz.open_virtual_dataset(sample)
    out = target(tmp_path, fmt)
    write(vds, fmt, out)
    write(vds.drop_vars("sparse"), fmt, out, mode="w")
    assert written_arrays(out, fmt) == {str(n) for n in vds.variables} - {"sparse"}
    if fmt != "json":
        assert not (out / "sparse").exists()  # the old array's files are gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sample.nc", out.name])
    with xr.open_dataset(sample) as orig, xr.open_dataset(out, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.drop_vars("sparse").load())


@pytest.mark.parametrize("fmt", FORMATS)
def test_relative_paths_are_written_and_read_back(tmp_path: Path, fmt: str) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "out").mkdir()
    src = make_sample(project / "data" / "sample.nc")
    vds = vz.open_virtual_dataset(src)
    out = target(project / "out", fmt)
    write(vds, fmt, out, relative_paths=True)
    # kerchunk: relative to the directory holding the output; manifest stores: relative
    # to each array's directory (project/out/v.zarr/<name>/)
    rel = "../../../data/sample.nc" if fmt == "zarr" else "../data/sample.nc"
    assert referenced_paths(out, fmt) == {rel}
    assert set(top_document(out, fmt)["virtualizarr"]["sources"]) == {rel}
    assert vds.temp.data.manifest.paths == (src.as_uri(),)  # the dataset is unchanged
    with xr.open_dataset(src) as orig, xr.open_dataset(out, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.load())
    moved = tmp_path / "moved"
    shutil.move(project, moved)  # references and data move together
    new_out = moved / "out" / out.name
    with (
        xr.open_dataset(moved / "data" / "sample.nc") as orig,
        xr.open_dataset(new_out, engine="virtualizarr") as back,
    ):
        xr.testing.assert_identical(back.load(), orig.load())


@pytest.mark.parametrize("fmt", FORMATS)
def test_relative_paths_with_virtual_dimension_coordinates(
    sample: Path, tmp_path: Path, fmt: str
) -> None:
    vds = vz.open_virtual_dataset(sample, loadable_variables=[])
    out = target(tmp_path, fmt)
    write(vds, fmt, out, relative_paths=True)
    assert "sample.nc" in {p.rsplit("/", 1)[-1] for p in referenced_paths(out, fmt)}
    with xr.open_dataset(sample) as orig, xr.open_dataset(out, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.load())


def test_rename_paths_with_a_string(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    uri = sample.as_uri()
    dest = tmp_path / "elsewhere" / "moved.nc"
    renamed = vds.virtualize.rename_paths(dest.as_uri())
    assert virtual_names(renamed) == virtual_names(vds) == ["temp", "packed", "sparse", "label"]
    assert list(renamed.coords) == list(vds.coords)
    for name in REFERENCED:
        old, new = vds[name].data.manifest, renamed[name].data.manifest
        assert new.paths == (dest.as_uri(),) and old.paths == (uri,), name
        assert new.sources == old.sources  # the recorded identity travels with the path
        np.testing.assert_array_equal(new.path_ids, old.path_ids)
        np.testing.assert_array_equal(new.offsets, old.offsets)
        assert renamed[name].attrs == vds[name].attrs, name
    assert renamed.label.data.manifest.equals(vds.label.data.manifest)
    for name in ("time", "y", "x"):
        assert renamed[name].identical(vds[name])
    dest.parent.mkdir()
    sample.rename(dest)  # keeps size and mtime: the identity still matches
    renamed.virtualize.to_kerchunk(tmp_path / "refs.json", format="json")
    with (
        xr.open_dataset(dest) as orig,
        xr.open_dataset(tmp_path / "refs.json", engine="virtualizarr") as back,
    ):
        xr.testing.assert_identical(back.load(), orig.load())


def two_files(tmp_path: Path) -> tuple[xr.Dataset, str, str]:
    a = make_sample(tmp_path / "a.nc", var="u")
    b = make_sample(tmp_path / "b.nc", var="v")
    va = vz.open_virtual_dataset(a).drop_vars(["packed", "sparse", "label"])
    return xr.merge([va, vz.open_virtual_dataset(b)]), a.as_uri(), b.as_uri()


def test_rename_paths_with_a_mapping(tmp_path: Path) -> None:
    merged, a, b = two_files(tmp_path)
    renamed = merged.virtualize.rename_paths({a: "s3://bucket/a.nc", "file:///nope.nc": "x"})
    assert renamed.u.data.manifest.paths == ("s3://bucket/a.nc",)
    for name in ("v", *REFERENCED[1:]):  # paths the mapping does not name stay
        assert renamed[name].data.manifest.paths == (b,), name
    assert merged.u.data.manifest.paths == (a,)
    refs = renamed.virtualize.to_kerchunk(format="dict")
    assert {v[0] for v in refs["refs"].values() if isinstance(v, list)} == {"s3://bucket/a.nc", b}


def test_relative_paths_leave_other_protocols_absolute(tmp_path: Path) -> None:
    merged, a, _ = two_files(tmp_path)
    renamed = merged.virtualize.rename_paths({a: "s3://bucket/a.nc"})
    out = tmp_path / "out" / "refs.json"
    renamed.virtualize.to_kerchunk(out, format="json", relative_paths=True)
    assert referenced_paths(out, "json") == {"s3://bucket/a.nc", "../b.nc"}


def test_rename_paths_with_a_callable(sample: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    seen: list[str] = []

    def move(path: str) -> str:
        seen.append(path)
        return path.replace("file://", "s3://bucket")

    renamed = vds.virtualize.rename_paths(move)
    assert set(seen) == {sample.as_uri()}
    for name in REFERENCED:
        assert renamed[name].data.manifest.paths == (f"s3://bucket{sample}",), name
        assert vds[name].data.manifest.paths == (sample.as_uri(),), name


def test_rename_paths_with_virtual_dimension_coordinates(sample: Path) -> None:
    vds = vz.open_virtual_dataset(sample, loadable_variables=[])
    renamed = vds.virtualize.rename_paths("s3://bucket/sample.nc")
    assert renamed.time.data.manifest.paths == ("s3://bucket/sample.nc",)
    assert list(renamed.coords) == list(vds.coords)


def test_nbytes_counts_manifests_for_virtual_and_data_for_loaded(sample: Path) -> None:
    vds = vz.open_virtual_dataset(sample)  # time, y, x loaded
    manifests = sum(vds[n].data.manifest.nbytes for n in virtual_names(vds))
    loaded = sum(int(vds[n].nbytes) for n in ("time", "y", "x"))
    assert vds.virtualize.nbytes == manifests + loaded
    assert vds.virtualize.nbytes < vds.nbytes / 10  # far less than the data referenced
    with_temp = vz.open_virtual_dataset(sample, loadable_variables=["time", "y", "x", "temp"])
    assert isinstance(with_temp.temp.data, np.ndarray)
    grown = with_temp.virtualize.nbytes - vds.virtualize.nbytes
    assert grown == 4 * 30 * 40 * 4 - vds.temp.data.manifest.nbytes
    in_memory = xr.Dataset({"a": ("x", np.zeros(100))}, coords={"x": np.arange(100)})
    assert in_memory.virtualize.nbytes == in_memory.nbytes == 1600


# ---------------------------------------------------------------------- footguns
def test_format_follows_the_extension_in_any_case(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    vds.virtualize.to_kerchunk(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["version"] == 1
    vds.virtualize.to_kerchunk(tmp_path / "r.PARQ")
    assert (tmp_path / "r.PARQ" / ".zmetadata").is_file()
    vds.virtualize.to_kerchunk(tmp_path / "r.txt", format="JSON")
    assert json.loads((tmp_path / "r.txt").read_text())["version"] == 1
    with pytest.raises(InvalidArgumentError, match=r"cannot tell the format"):
        vds.virtualize.to_kerchunk(tmp_path / "r.bin")


def test_a_dataset_without_virtual_variables_is_refused_unless_asked(
    sample: Path, tmp_path: Path
) -> None:
    big = xr.Dataset({"v": ("x", np.zeros(300_000))})  # 2.4 MB of values, nothing virtual
    with pytest.raises(InvalidArgumentError, match=r"no virtual variable.*inline='all'"):
        big.virtualize.to_kerchunk()
    with pytest.raises(InvalidArgumentError, match=r"no virtual variable"):
        big.virtualize.to_zarr(tmp_path / "big.zarr")
    assert not (tmp_path / "big.zarr").exists()
    refs = big.virtualize.to_kerchunk(inline="all")
    np.testing.assert_array_equal(xr.open_dataset(refs, engine="virtualizarr")["v"], big["v"])
    small = xr.Dataset(coords={"x": np.arange(4)})  # a group of a few coordinates: fine
    assert "x/.zarray" in small.virtualize.to_kerchunk()["refs"]


def test_rename_paths_refuses_one_string_for_several_files(tmp_path: Path) -> None:
    parts = []
    for i in range(2):
        ds = xr.Dataset({"v": ("t", np.arange(3.0) + 3 * i)}, coords={"t": np.arange(3) + 3 * i})
        ds.to_netcdf(tmp_path / f"p{i}.nc", engine="netcdf4")
        parts.append(vz.open_virtual_dataset(tmp_path / f"p{i}.nc"))
    combined = xr.concat(parts, dim="t")
    with pytest.raises(InvalidArgumentError, match="2 different files"):
        combined.virtualize.rename_paths("s3://bucket/one.nc")
    renamed = combined.virtualize.rename_paths(lambda p: p.replace("file://", "s3://bucket"))
    assert all(p.startswith("s3://bucket/") for p in renamed["v"].data.manifest.paths)
