"""The manifest-store writer (``virtualizarr.writers.zarr``): the documents it writes (root
group, array metadata, manifests, chunk files), scalars, names the format refuses, and
read-back through ``engine="virtualizarr"``.

The layout is documented in :mod:`virtualizarr.formats.manifest_store`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import InvalidArgumentError, UnsupportedFeatureError, VirtualiZarrError
from virtualizarr.formats.manifest_store import crc32, decode_columns
from virtualizarr.io.objects import Location
from virtualizarr.writers.zarr import dataset_to_manifest_store

TRANSFORMER = {"name": "chunk-manifest-json", "configuration": {"manifest": "./manifest.json"}}
DOCUMENTS = {"zarr.json", "manifest.json", "manifest.paths.json", "manifest.bin"}


def make_sample(path: Path) -> Path:
    """Compressed chunks, packed int16, missing chunks, chars, vlen strings, a scalar."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "sample"
        nc.version = np.int32(3)
        nc.createDimension("time", 4)
        nc.createDimension("y", 6)
        nc.createDimension("x", 8)
        nc.createDimension("nchar", 5)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t[:] = np.arange(4)
        nc.createVariable("y", "f4", ("y",))[:] = np.linspace(0, 5, 6)
        nc.createVariable("x", "f4", ("x",))[:] = np.linspace(0, 7, 8)
        rng = np.random.default_rng(0)
        temp = nc.createVariable(
            "temp", "f4", ("time", "y", "x"), zlib=True, shuffle=True, chunksizes=(1, 3, 4)
        )
        temp.units = "K"
        temp[:] = rng.normal(280, 5, (4, 6, 8)).astype("f4")
        p = nc.createVariable(
            "packed", "i2", ("time", "y", "x"), zlib=True, chunksizes=(2, 3, 4), fill_value=-999
        )
        p.scale_factor = np.float32(0.01)
        p.add_offset = np.float32(273.15)
        p.valid_range = np.array([-500, 500], dtype="i2")
        p[:] = rng.uniform(260, 280, (4, 6, 8))
        s = nc.createVariable("sparse", "f4", ("time", "x"), chunksizes=(1, 4), fill_value=-1.0)
        s[1, :4] = np.arange(4)  # chunk (1, 0)
        s[3, 4:] = np.arange(4) + 10  # chunk (3, 1); the other six are never written
        c = nc.createVariable("name", "S1", ("y", "nchar"))
        c[:] = netCDF4.stringtochar(np.array(["ab", "cdef", "", "x", "yz", "uvw"], dtype="S5"))
        lab = nc.createVariable("label", str, ("y",))
        lab[:] = np.array(["alpha", "b", "", "dé", "e", "ff"], dtype=object)
        nc.createVariable("scalar", "f8", ())[...] = 3.5
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_sample(tmp_path / "sample.nc")


def write_store(ds: xr.Dataset, dest: Path, manifest_format: str = "binary") -> Path:
    dataset_to_manifest_store(ds, Location.of(dest), manifest_format=manifest_format)
    return dest


def binary_entries(adir: Path) -> dict[str, dict[str, Any]]:
    """The references of a binary manifest as JSON-manifest entries (``c/i/j`` keys)."""
    meta = doc(adir / "zarr.json")
    (t,) = meta["storage_transformers"]
    conf = t["configuration"]
    data = (adir / "manifest.bin").read_bytes()
    assert crc32(data) == conf["crc32"]
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    grid = tuple(-(-s // c) for s, c in zip(meta["shape"], chunks, strict=True))
    ids, offs, lens = decode_columns(data, grid, conf["path_id_type"])
    paths = doc(adir / "manifest.paths.json")
    present = np.argwhere(ids >= 0) if grid else np.zeros((int(ids >= 0), 0), int)
    assert len(present) == conf["references"]
    return {
        "/".join(["c", *map(str, c)]): {
            "path": paths[int(ids[tuple(c)])],
            "offset": int(offs[tuple(c)]),
            "length": int(lens[tuple(c)]),
        }
        for c in present
    }


def manifest_entries(adir: Path, manifest_format: str) -> dict[str, dict[str, Any]]:
    if manifest_format == "json":
        return dict(doc(adir / "manifest.json"))
    return binary_entries(adir)


def doc(path: Path) -> Any:
    return json.loads(path.read_bytes())


def test_root_group_document(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    store = write_store(vds, tmp_path / "s.zarr")
    root = doc(store / "zarr.json")
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    assert root["attributes"] == {"title": "sample", "version": 3}
    ext = root["virtualizarr"]
    assert ext["must_understand"] is True  # plain Zarr readers refuse the store
    assert ext["arrays"] == [str(n) for n in vds.variables]  # dataset order, coordinates last
    assert ext["arrays"][:2] == ["temp", "packed"] and ext["arrays"][-3:] == ["time", "y", "x"]
    assert sorted(p.parent.name for p in store.glob("*/zarr.json")) == sorted(ext["arrays"])
    st = sample.stat()
    assert ext["sources"] == {sample.as_uri(): {"size": st.st_size, "mtime_ns": st.st_mtime_ns}}
    assert ext["attribute_dtypes"] == {"version": "<i4"}  # the str title needs no record


def test_arrays_follow_the_dataset_order(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)[["sparse", "label", "temp"]]
    store = write_store(vds, tmp_path / "s.zarr")
    assert doc(store / "zarr.json")["virtualizarr"]["arrays"] == list(map(str, vds.variables))
    assert not (store / "packed").exists()


def test_in_memory_dataset_records_no_sources(tmp_path: Path) -> None:
    ds = xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"k": np.float32(1.5)})
    store = write_store(ds, tmp_path / "s.zarr")
    ext = doc(store / "zarr.json")["virtualizarr"]
    assert "sources" not in ext
    assert ext["arrays"] == ["v"] and ext["attribute_dtypes"] == {"k": "<f4"}
    with xr.open_dataset(store, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), ds)
        assert back.attrs["k"].dtype == np.float32


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_virtual_array_metadata(sample: Path, tmp_path: Path, manifest_format: str) -> None:
    store = write_store(vz.open_virtual_dataset(sample), tmp_path / "s.zarr", manifest_format)
    packed = doc(store / "packed" / "zarr.json")
    assert packed["zarr_format"] == 3 and packed["node_type"] == "array"
    assert packed["shape"] == [4, 6, 8] and packed["data_type"] == "int16"
    assert packed["chunk_grid"]["configuration"]["chunk_shape"] == [2, 3, 4]
    assert packed["chunk_key_encoding"]["configuration"]["separator"] == "/"
    if manifest_format == "json":
        assert packed["storage_transformers"] == [TRANSFORMER]
    else:
        columns = (store / "packed" / "manifest.bin").read_bytes()
        assert packed["storage_transformers"] == [
            {
                "name": "chunk-manifest-binary",
                "configuration": {
                    "paths": "./manifest.paths.json",
                    "columns": "./manifest.bin",
                    "path_id_type": "int8",
                    "references": 8,
                    "crc32": crc32(columns),
                },
            }
        ]
        assert len(columns) == 8 * (8 + 8 + 1)  # 2 x 2 x 2 chunks: offset, length, id
        assert doc(store / "packed" / "manifest.paths.json") == [sample.as_uri()]
    assert packed["dimension_names"] == ["time", "y", "x"]
    assert packed["fill_value"] == -999
    assert {c["name"] for c in packed["codecs"]} >= {"bytes", "numcodecs.zlib"}
    attrs = packed["attributes"]
    assert attrs["_FillValue"] == -999 and attrs["valid_range"] == [-500, 500]
    assert np.float32(attrs["scale_factor"]) == np.float32(0.01)
    assert np.float32(attrs["add_offset"]) == np.float32(273.15)
    assert packed["virtualizarr"] == {
        "must_understand": True,
        "chunk_files": {},
        "attribute_dtypes": {
            "_FillValue": "<i2",
            "scale_factor": "<f4",
            "add_offset": "<f4",
            "valid_range": ["<i2"],
        },
    }
    temp = doc(store / "temp" / "zarr.json")
    assert temp["attributes"] == {"units": "K"}
    assert temp["virtualizarr"]["attribute_dtypes"] == {}


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_manifest_entries_are_the_chunk_references(
    sample: Path, tmp_path: Path, manifest_format: str
) -> None:
    vds = vz.open_virtual_dataset(sample)
    store = write_store(vds, tmp_path / "s.zarr", manifest_format)
    uri = sample.as_uri()
    for name in ("temp", "packed", "sparse", "name"):
        expected = {
            "c/" + key.replace(".", "/"): dict(entry)
            for key, entry in vds[name].data.manifest.to_dict().items()
        }
        assert manifest_entries(store / name, manifest_format) == expected, name
    temp = manifest_entries(store / "temp", manifest_format)
    assert sorted(temp) == sorted(
        f"c/{t}/{j}/{i}" for t in range(4) for j in (0, 1) for i in (0, 1)
    )
    assert {e["path"] for e in temp.values()} == {uri}
    assert all(set(e) == {"path", "offset", "length"} for e in temp.values())
    sparse = manifest_entries(store / "sparse", manifest_format)
    assert sorted(sparse) == ["c/1/0", "c/3/1"]  # missing chunks have no entry
    raw = sample.read_bytes()
    for key, values in (("c/1/0", [0, 1, 2, 3]), ("c/3/1", [10, 11, 12, 13])):
        e = sparse[key]
        chunk = np.frombuffer(raw[e["offset"] : e["offset"] + e["length"]], "<f4")
        assert chunk.tolist() == values  # the byte range holds that chunk, uncompressed


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_chunk_files_for_inline_chunks_and_loaded_variables(
    sample: Path, tmp_path: Path, manifest_format: str
) -> None:
    vds = vz.open_virtual_dataset(sample)  # time, y, x loaded; label's strings are inline
    store = write_store(vds, tmp_path / "s.zarr", manifest_format)
    label = doc(store / "label" / "zarr.json")
    (t,) = label["storage_transformers"]
    assert t["name"] == f"chunk-manifest-{manifest_format}"
    assert manifest_entries(store / "label", manifest_format) == {}
    assert (store / "label" / "c" / "0").read_bytes() == vds.label.data.manifest.inline[0]
    time = doc(store / "time" / "zarr.json")
    assert time["storage_transformers"] == []  # an ordinary Zarr array
    assert not any((store / "time" / d).exists() for d in DOCUMENTS - {"zarr.json"})
    assert time["attributes"]["units"] == "days since 2000-01-01"
    assert time["attributes"]["calendar"] == "noleap"
    assert time["dimension_names"] == ["time"]
    assert time["virtualizarr"]["chunk_files"] == {"c/0": 32}
    assert (store / "time" / "c" / "0").read_bytes() == np.arange(4, dtype="<f8").tobytes()
    assert (store / "x" / "c" / "0").read_bytes() == np.linspace(0, 7, 8, dtype="<f4").tobytes()
    for name in doc(store / "zarr.json")["virtualizarr"]["arrays"]:
        adir = store / name
        files = {
            p.relative_to(adir).as_posix(): p.stat().st_size
            for p in adir.rglob("*")
            if p.is_file() and p.name not in DOCUMENTS
        }
        assert doc(adir / "zarr.json")["virtualizarr"]["chunk_files"] == files, name
        assert (files != {}) == (name in ("label", "time", "y", "x")), name


def make_scalars(path: Path) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createVariable("present", "f8", ())[...] = 2.5
        nc.createVariable("never", "f4", ())  # never written: a missing chunk
        nc.createVariable("word", str, ())[0] = "hello"  # inline
    return path


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
@pytest.mark.parametrize("loadable", [[], ["present", "word"]])
def test_scalar_arrays(tmp_path: Path, loadable: list[str], manifest_format: str) -> None:
    src = make_scalars(tmp_path / "scalars.nc")
    vds = vz.open_virtual_dataset(src, loadable_variables=loadable)
    store = write_store(vds, tmp_path / "s.zarr", manifest_format)
    for name in ("present", "never", "word"):
        meta = doc(store / name / "zarr.json")
        assert meta["shape"] == [] and meta["dimension_names"] == [], name
    present = doc(store / "present" / "zarr.json")
    if loadable:
        assert (store / "present" / "c").read_bytes() == np.float64(2.5).tobytes()
        assert present["virtualizarr"]["chunk_files"] == {"c": 8}
    else:
        entry = manifest_entries(store / "present", manifest_format)["c"]
        assert entry["path"] == src.as_uri() and entry["length"] == 8
        assert present["virtualizarr"]["chunk_files"] == {}
    assert manifest_entries(store / "never", manifest_format) == {}
    assert doc(store / "never" / "zarr.json")["virtualizarr"]["chunk_files"] == {}
    word = (store / "word" / "c").read_bytes()
    assert word.endswith(b"hello")
    assert doc(store / "word" / "zarr.json")["virtualizarr"]["chunk_files"] == {"c": len(word)}
    with xr.open_dataset(src) as orig, xr.open_dataset(store, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.load())


@pytest.mark.parametrize("bad", ["a/b", ".x", "zarr.json"])
def test_names_the_format_refuses(sample: Path, tmp_path: Path, bad: str) -> None:
    vds = vz.open_virtual_dataset(sample).rename({"temp": bad})
    dest = tmp_path / "s.zarr"
    with pytest.raises(UnsupportedFeatureError, match=f"variable name {bad!r} cannot be"):
        write_store(vds, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.nc"]  # nothing left behind


@pytest.mark.parametrize(
    "ok", ["manifest.json", "manifest.bin", "manifest.paths.json", "c", "zarr.json.bak"]
)
def test_names_close_to_the_documents_are_accepted(sample: Path, tmp_path: Path, ok: str) -> None:
    store = write_store(vz.open_virtual_dataset(sample).rename({"temp": ok}), tmp_path / "s.zarr")
    assert (store / ok / "manifest.bin").is_file()
    with xr.open_dataset(sample) as orig, xr.open_dataset(store, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.rename({"temp": ok}).load())


def test_names_that_collide_as_strings_are_refused(tmp_path: Path) -> None:
    ds = xr.Dataset({1: ("x", np.arange(3.0)), "1": ("x", np.arange(3.0) + 10)})
    with pytest.raises(VirtualiZarrError):
        write_store(ds, tmp_path / "s.zarr")


@pytest.mark.parametrize(
    "loadable", [None, [], ["packed", "label", "name", "scalar"]], ids=["default", "none", "some"]
)
def test_read_back_is_identical_to_the_original(
    sample: Path, tmp_path: Path, loadable: list[str] | None
) -> None:
    vds = vz.open_virtual_dataset(sample, loadable_variables=loadable)
    store = write_store(vds, tmp_path / "s.zarr")
    with xr.open_dataset(sample) as orig, xr.open_dataset(store, engine="virtualizarr") as back:
        assert back.packed.dtype == np.float32  # scale_factor kept its float32 type
        assert np.isnan(back.sparse.values[0]).all()  # missing chunks masked like the source
        xr.testing.assert_identical(back.load(), orig.load())


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_both_manifest_formats_read_back_identically(
    sample: Path, tmp_path: Path, manifest_format: str
) -> None:
    vds = vz.open_virtual_dataset(sample)
    store = tmp_path / "s.zarr"
    vds.virtualize.to_zarr(store, manifest_format=manifest_format)
    with xr.open_dataset(sample) as orig, xr.open_dataset(store, engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), orig.load())
    again = vz.open_virtual_dataset(store, loadable_variables=[])
    for name in ("temp", "packed", "sparse", "name", "label"):
        assert again[name].data.manifest.equals(vds[name].data.manifest), name


def test_the_binary_manifest_is_a_fraction_of_the_json_one(sample: Path, tmp_path: Path) -> None:
    """17 bytes a reference here (one path: int8 ids) against ~100 for JSON entries."""
    vds = vz.open_virtual_dataset(sample)
    big = xr.concat(
        [vds] * 50, dim="time", data_vars="minimal", coords="minimal", compat="override"
    )
    for fmt in ("binary", "json"):
        big.virtualize.to_zarr(tmp_path / f"{fmt}.zarr", manifest_format=fmt)
    refs = len(big.temp.data.manifest)
    assert refs == 50 * 16
    binary = (tmp_path / "binary.zarr" / "temp" / "manifest.bin").stat().st_size
    table = (tmp_path / "binary.zarr" / "temp" / "manifest.paths.json").stat().st_size
    json_size = (tmp_path / "json.zarr" / "temp" / "manifest.json").stat().st_size
    assert binary == 17 * refs
    assert binary + table < json_size / 4


def test_unused_paths_are_left_out_of_the_path_table(tmp_path: Path) -> None:
    """A slice keeps its manifest's whole path table; the written table names only the
    sources still referenced (readers check every path in it against their policy)."""
    files = []
    for i in range(3):
        f = tmp_path / f"part{i}.nc"
        with netCDF4.Dataset(f, "w") as nc:
            nc.createDimension("t", 2)
            nc.createVariable("v", "f8", ("t",), chunksizes=(1,))[:] = [i, i + 0.5]
        files.append(f)
    vds = vz.open_virtual_mfdataset(files, combine="nested", concat_dim="t")
    part = vds.isel(t=slice(2, 4))
    assert len(part.v.data.manifest.paths) == 3
    part.virtualize.to_zarr(tmp_path / "s.zarr")
    assert doc(tmp_path / "s.zarr" / "v" / "manifest.paths.json") == [files[1].as_uri()]
    with xr.open_dataset(tmp_path / "s.zarr", engine="virtualizarr") as back:
        assert back.v.values.tolist() == [1.0, 1.5]


def test_an_unknown_manifest_format_is_refused_before_writing(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="manifest_format must be one of"):
        vz.open_virtual_dataset(sample).virtualize.to_zarr(
            tmp_path / "s.zarr", manifest_format="parquet"
        )
    assert not (tmp_path / "s.zarr").exists()
