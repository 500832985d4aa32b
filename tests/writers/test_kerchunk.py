"""The kerchunk writer: document shape, fill-value rules, atomic JSON writes."""

from __future__ import annotations

import base64
import json

import netCDF4
import numcodecs
import numpy as np
import pytest
import ujson
import xarray as xr

from virtualizarr import open_virtual_dataset
from virtualizarr.errors import OutputExistsError, UnsupportedFeatureError, VirtualiZarrError
from virtualizarr.formats.kerchunk import v3_codecs_to_v2
from virtualizarr.manifests import ChunkManifest, ManifestArray, make_array_metadata
from virtualizarr.testing import open_kerchunk_refs, open_via_kerchunk
from virtualizarr.writers.kerchunk import dataset_to_kerchunk_refs


def write_bin(tmp_path, name: str, chunks: list[np.ndarray], codec=None) -> tuple[str, list]:
    """Write encoded chunks back to back into a file; return its URI and (offset, length)s."""
    path = tmp_path / name
    ranges = []
    with open(path, "wb") as f:
        for c in chunks:
            data = c.tobytes() if codec is None else codec.encode(c.tobytes())
            ranges.append((f.tell(), len(data)))
            f.write(data)
    return path.as_uri(), ranges


def virtual_dataset(
    tmp_path, *, fill_value=0, attrs=None, missing=(), dtype="<f4", zlib=False
) -> tuple[xr.Dataset, np.ndarray]:
    """A 1-D virtual variable of 4 chunks of 3, some of them missing."""
    values = np.arange(12, dtype=dtype)
    chunks = [values[i : i + 3] for i in range(0, 12, 3)]
    codec = numcodecs.Zlib(level=1) if zlib else None
    uri, ranges = write_bin(tmp_path, "data.bin", chunks, codec)
    ids = np.array([-1 if i in missing else 0 for i in range(4)], np.int32)
    manifest = ChunkManifest([uri], ids, [r[0] for r in ranges], [r[1] for r in ranges])
    meta = make_array_metadata(
        shape=(12,),
        dtype=np.dtype(dtype),
        chunks=(3,),
        fill_value=fill_value,
        codecs=[{"name": "numcodecs.zlib", "configuration": {"level": 1}}] if zlib else [],
        dimension_names=("x",),
    )
    arr = ManifestArray(meta, manifest, name="v")
    expected = values.astype(np.dtype(dtype).newbyteorder("="))
    for i in missing:
        expected[3 * i : 3 * i + 3] = fill_value
    return xr.Dataset({"v": (("x",), arr, attrs or {})}), expected


def test_document_layout(tmp_path):
    ds, _ = virtual_dataset(tmp_path, attrs={"units": "K", "valid_range": np.array([0, 9], "f4")})
    refs = ds.virtualize.to_kerchunk(format="dict")
    assert refs["version"] == 1
    r = refs["refs"]
    assert json.loads(r[".zgroup"]) == {"zarr_format": 2}
    zarray = json.loads(r["v/.zarray"])
    assert zarray["shape"] == [12]
    assert zarray["chunks"] == [3]
    assert zarray["dtype"] == "<f4"
    assert zarray["fill_value"] is None
    assert json.loads(r["v/.zattrs"]) == {
        "units": "K",
        "valid_range": [0.0, 9.0],
        "_ARRAY_DIMENSIONS": ["x"],
    }
    path, offset, length = r["v/1"]
    assert path.startswith("file:///") and offset == 12 and length == 12


@pytest.mark.parametrize("zlib", [False, True])
def test_values_read_back(tmp_path, zlib):
    ds, expected = virtual_dataset(tmp_path, zlib=zlib, dtype=">i4")
    out = open_kerchunk_refs(ds.virtualize.to_kerchunk(format="dict")).load()
    np.testing.assert_array_equal(out.v.values, expected)
    assert out.v.dtype == np.dtype("int32")


def test_zeros_stay_zeros_without_a_declared_fill_value(tmp_path):
    ds, expected = virtual_dataset(tmp_path, missing=(2,))
    out = open_kerchunk_refs(ds.virtualize.to_kerchunk(format="dict")).load()
    assert expected[0] == 0
    np.testing.assert_array_equal(out.v.values, expected)  # no NaN anywhere
    assert not np.isnan(out.v.values).any()


def test_missing_chunks_with_nonzero_fill_are_materialized(tmp_path):
    ds, expected = virtual_dataset(tmp_path, missing=(1, 3), fill_value=-5.0, zlib=True)
    refs = ds.virtualize.to_kerchunk(format="dict")["refs"]
    assert refs["v/1"].startswith("base64:")
    out = open_kerchunk_refs({"version": 1, "refs": refs}).load()
    np.testing.assert_array_equal(out.v.values, expected)
    assert (out.v.values[3:6] == -5).all()


def test_declared_fill_value_masks_like_the_source(tmp_path):
    ds, expected = virtual_dataset(
        tmp_path, missing=(1,), fill_value=4.0, attrs={"_FillValue": np.float32(4)}
    )
    refs = ds.virtualize.to_kerchunk(format="dict")["refs"]
    assert json.loads(refs["v/.zarray"])["fill_value"] == 4.0
    assert "_FillValue" not in json.loads(refs["v/.zattrs"])
    out = open_kerchunk_refs({"version": 1, "refs": refs}).load()
    assert np.isnan(out.v.values[3:6]).all() and np.isnan(out.v.values[4])
    np.testing.assert_array_equal(out.v.values[6:], expected[6:])


def test_rectilinear_grid_is_refused_with_a_pointer_to_to_zarr(tmp_path):
    ds, _ = virtual_dataset(tmp_path)
    a = ds.v.data
    meta = make_array_metadata(shape=(2,), dtype=np.dtype("<f4"), chunks=(2,), fill_value=0)
    b = ManifestArray(meta, ChunkManifest.single(a.manifest.paths[0], 0, 8, 1), name="v")
    combined = xr.Dataset({"v": (("x",), np.concatenate([a, b]))})
    with pytest.raises(UnsupportedFeatureError, match=r"'v'.*to_zarr"):
        combined.virtualize.to_kerchunk(format="dict")


def test_unknown_v3_codec_is_refused():
    with pytest.raises(UnsupportedFeatureError, match="transpose"):
        v3_codecs_to_v2([{"name": "transpose", "configuration": {"order": [1, 0]}}], "v")


def test_loaded_variables_are_encoded_and_inlined(tmp_path):
    times = xr.Variable(
        ("time",),
        np.array(["2000-01-01", "2000-01-03"], dtype="datetime64[ns]"),
        encoding={"units": "days since 2000-01-01", "calendar": "standard", "dtype": "int32"},
    )
    ds = xr.Dataset(coords={"time": times, "name": ("time", np.array(["a", "bc"], dtype=object))})
    refs = dataset_to_kerchunk_refs(ds)["refs"]
    assert json.loads(refs["time/.zattrs"])["units"] == "days since 2000-01-01"
    raw = base64.b64decode(refs["time/0"].removeprefix("base64:"))
    assert np.frombuffer(raw, "<i4").tolist() == [0, 2]
    out = open_kerchunk_refs({"version": 1, "refs": refs}).load()
    xr.testing.assert_identical(out, ds)


def test_json_is_atomic_and_refuses_to_overwrite(tmp_path):
    ds, expected = virtual_dataset(tmp_path)
    target = tmp_path / "refs.json"
    ds.virtualize.to_kerchunk(target, format="json")
    first = target.read_bytes()
    with pytest.raises(OutputExistsError, match="mode='w'") as info:
        ds.virtualize.to_kerchunk(target, format="json")
    assert isinstance(info.value, FileExistsError)
    assert target.read_bytes() == first
    ds.virtualize.to_kerchunk(target, format="json", mode="w")
    assert ujson.loads(target.read_bytes())["version"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".refs")] == []
    np.testing.assert_array_equal(open_kerchunk_refs(target).load().v.values, expected)


def test_json_write_failure_leaves_previous_output(tmp_path, monkeypatch):
    ds, _ = virtual_dataset(tmp_path)
    target = tmp_path / "refs.json"
    target.write_text("previous")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("virtualizarr.accessor.dataset.iter_kerchunk_json", boom)
    with pytest.raises(RuntimeError):
        ds.virtualize.to_kerchunk(target, format="json", mode="w")
    assert target.read_text() == "previous"


def test_format_and_filepath_errors(tmp_path):
    ds, _ = virtual_dataset(tmp_path)
    with pytest.raises(ValueError, match="format"):
        ds.virtualize.to_kerchunk(format="yaml")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="filepath"):
        ds.virtualize.to_kerchunk(format="json")  # type: ignore[call-overload]


def test_rename_paths_and_nbytes(tmp_path):
    ds, _ = virtual_dataset(tmp_path)
    moved = ds.virtualize.rename_paths(lambda p: p.replace("data.bin", "moved.bin"))
    assert moved.v.data.manifest.paths[0].endswith("moved.bin")
    assert ds.v.data.manifest.paths[0].endswith("data.bin")
    single = ds.virtualize.rename_paths("s3://bucket/x.bin")
    assert single.v.data.manifest.paths == ("s3://bucket/x.bin",)
    assert 0 < ds.virtualize.nbytes < 1000


def test_netcdf3_round_trip_with_masks_times_and_strings(tmp_path):
    path = tmp_path / "f.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        nc.createDimension("s", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t[:] = [0, 1]
        v = nc.createVariable("v", "i2", ("time", "x"), fill_value=-1)
        v.scale_factor = 0.1
        v.add_offset = 1.0
        v[:] = np.ma.masked_equal([[1, 0, -9], [4, 5, 6]], -9)
        w = nc.createVariable("w", "f4", ("x",))
        w[:] = [0, 1.5, 0]
        c = nc.createVariable("c", "S1", ("x", "s"))
        c[:] = netCDF4.stringtochar(np.array(["ab", "cde", "f"], "S4"))
        nc.title = "t"
    expected = xr.open_dataset(path).load()
    for loadable in ([], None, ["v"]):
        xr.testing.assert_identical(open_via_kerchunk(path, loadable_variables=loadable), expected)
    assert (expected.w.values == [0, 1.5, 0]).all()


def test_open_virtual_dataset_errors(tmp_path):
    with pytest.raises(VirtualiZarrError, match="does not exist") as info:
        open_virtual_dataset(tmp_path / "nope.nc")
    assert isinstance(info.value, FileNotFoundError)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"JUNK....")
    with pytest.raises(VirtualiZarrError, match="supported formats") as info2:
        open_virtual_dataset(junk)
    assert isinstance(info2.value, ValueError)
    with pytest.raises(VirtualiZarrError, match="not a known reader"):
        open_virtual_dataset(junk, filetype="nosuchformat")
    with pytest.raises(VirtualiZarrError, match="supported formats"):
        open_virtual_dataset(tmp_path)  # a directory that is no Zarr store


def test_json_text_equals_the_dict_document(tmp_path):
    """The bulk JSON formatter writes exactly the dict document (inline, missing, paths)."""
    ds, _ = virtual_dataset(tmp_path, missing=(1,), fill_value=-5.0, attrs={"note": 'a "q" /'})
    a = ds.v.data
    inl = ManifestArray(
        a.metadata,
        ChunkManifest.inlined(
            np.array([b"\x00" * 12, None, b"\x01" * 12, b"x" * 12], dtype=object)
        ),
        name="w",
    )
    ds["w"] = (("x",), inl)
    target = tmp_path / "refs.json"
    ds.virtualize.to_kerchunk(target, format="json")
    assert ujson.loads(target.read_bytes()) == ds.virtualize.to_kerchunk(format="dict")


def test_all_nat_times_and_long_double_attributes_write_cleanly():
    times = xr.Variable(
        ("time",),
        np.array(["NaT", "NaT"], dtype="datetime64[ns]"),
        encoding={"units": "days since 2000-01-01", "dtype": "float64"},
    )
    ds = xr.Dataset(coords={"time": times}, attrs={"precise": np.longdouble(1.5)})
    refs = dataset_to_kerchunk_refs(ds)["refs"]
    assert json.loads(refs[".zattrs"]) == {"precise": 1.5}
    out = open_kerchunk_refs({"version": 1, "refs": refs}).load()
    assert np.isnat(out.time.values).all()


@pytest.mark.parametrize("fmt", ["dict", "zarr"])
def test_a_loaded_variable_xarray_cannot_encode_is_our_error(tmp_path, fmt) -> None:
    from virtualizarr.errors import InvalidArgumentError

    times = np.array(["2000-01-01", "NaT"], dtype="datetime64[ns]")
    var = xr.Variable("t", times, encoding={"_FillValue": np.array([1.0, 2.0])})
    ds = xr.Dataset({"t": var})
    with pytest.raises(InvalidArgumentError, match=r"'t' cannot be CF-encoded.*_FillValue"):
        if fmt == "dict":
            ds.virtualize.to_kerchunk(format="dict")
        else:
            ds.virtualize.to_zarr(tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
