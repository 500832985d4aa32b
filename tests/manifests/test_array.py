"""ManifestArray: NumPy functions on manifests and xarray integration (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from virtualizarr.errors import (
    IncompatibleArraysError,
    UnsupportedOperationError,
    VirtualiZarrError,
)
from virtualizarr.manifests import ChunkManifest, ManifestArray, make_array_metadata

ZLIB = [{"name": "numcodecs.zlib", "configuration": {"level": 4}}]


def marr(
    length: int,
    chunk: int | tuple[int, ...] = 4,
    *,
    path: str = "file:///a.nc",
    width: int = 3,
    dtype: str = "<i2",
    codecs=ZLIB,
    fill_value=0,
    encoding=None,
    name: str = "v",
) -> ManifestArray:
    meta = make_array_metadata(
        shape=(length, width),
        dtype=np.dtype(dtype),
        chunks=(chunk, width),
        fill_value=fill_value,
        codecs=codecs,
        dimension_names=("time", "x"),
    )
    n = -(-length // chunk) if isinstance(chunk, int) else len(chunk)
    man = ChunkManifest(
        [path],
        np.zeros((n, 1), np.int32),
        (np.arange(n) * 1000).reshape(n, 1),
        np.full((n, 1), 100),
    )
    return ManifestArray(meta, man, name=name, encoding_attrs=encoding)


def test_basic_properties_and_repr():
    a = marr(10)
    assert a.shape == (10, 3)
    assert a.dtype == np.dtype("int16")
    assert a.chunk_sizes == (4, 3)
    assert a.nbytes == 60
    assert "ManifestArray" in repr(a)


def test_manifest_grid_must_match_metadata():
    meta = make_array_metadata(shape=(10,), dtype=np.dtype("<i2"), chunks=(4,), fill_value=0)
    with pytest.raises(ValueError, match="does not match"):
        ManifestArray(meta, ChunkManifest.empty((2,)))


def test_concatenate_regular():
    out = np.concatenate([marr(8), marr(8, path="file:///b.nc"), marr(6)], axis=0)
    assert out.shape == (22, 3)
    assert out.chunk_sizes == (4, 3)
    assert out.manifest.paths == ("file:///a.nc", "file:///b.nc")


def test_concatenate_uneven_lengths_gives_rectilinear_grid():
    out = np.concatenate([marr(3, 3), marr(2, 2), marr(4, 4)], axis=0)
    assert out.shape == (9, 3)
    assert out.chunk_sizes == ((3, 2, 4), 3)
    grid = out.metadata.to_dict()["chunk_grid"]
    assert grid["name"] == "rectilinear"


def test_concatenate_refuses_padded_chunk_in_the_middle():
    with pytest.raises(IncompatibleArraysError, match="padded last chunk"):
        np.concatenate([marr(10), marr(8)], axis=0)


@pytest.mark.parametrize(
    ("other", "match"),
    [
        (marr(8, dtype="<f4"), "dtypes differ"),
        (marr(8, codecs=[]), "codecs differ"),
        (marr(8, fill_value=7), "fill values differ"),
        (marr(8, width=5), "differ along axis 1"),
        (marr(8, encoding={"scale_factor": np.float32(0.5)}), "'scale_factor' differs"),
        (
            marr(8, encoding={"scale_factor": np.float32(0.1), "units": "days since 2001-01-01"}),
            "'units' differs",
        ),
    ],
)
def test_concatenate_refuses_incompatible_arrays(other, match):
    a = marr(8, encoding={"scale_factor": np.float32(0.1), "units": "days since 2000-01-01"})
    if "scale_factor" not in other.encoding_attrs:
        other = ManifestArray(
            other.metadata, other.manifest, name="v", encoding_attrs=a.encoding_attrs
        )
    with pytest.raises(IncompatibleArraysError, match=match) as info:
        np.concatenate([a, other], axis=0)
    assert "'v'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_getitem_on_chunk_boundaries():
    a = marr(10)
    assert a[4:8].shape == (4, 3)
    assert a[8:].shape == (2, 3)
    assert a[:0].shape == (0, 3)
    assert a[4:8].manifest.offsets.ravel().tolist() == [1000]
    assert a[None, ...].shape == (1, 10, 3)
    with pytest.raises(UnsupportedOperationError, match="chunk boundaries"):
        a[1:5]
    with pytest.raises(UnsupportedOperationError, match="part of a chunk"):
        a[1]
    one = marr(5, 1)
    assert one[2].shape == (3,)


def test_stack_and_broadcast_and_expand_dims():
    a = marr(8)
    s = np.stack([a, a], axis=0)
    assert s.shape == (2, 8, 3)
    assert s.chunk_sizes == (1, 4, 3)
    assert np.expand_dims(a, 0).shape == (1, 8, 3)
    b = np.broadcast_to(np.expand_dims(a, 0), (5, 8, 3))
    assert b.shape == (5, 8, 3)
    assert len(b.manifest) == 10
    with pytest.raises(UnsupportedOperationError):
        np.broadcast_to(a, (8, 6))


def test_unsupported_operations_raise_clear_errors():
    a = marr(8)
    with pytest.raises(UnsupportedOperationError, match="loadable_variables"):
        np.asarray(a)
    with pytest.raises(UnsupportedOperationError, match=r"np\.sum"):
        np.sum(a)
    with pytest.raises(UnsupportedOperationError, match="ufunc"):
        np.add(a, 1)
    with pytest.raises(VirtualiZarrError):
        a.astype("f8")


def test_equality_is_by_reference():
    a = marr(8)
    assert np.all(a == marr(8))
    assert not np.any(a == marr(8, path="file:///other.nc"))
    assert np.array_equal(a, marr(8))


def virtual_ds(length: int, path: str, encoding=None) -> xr.Dataset:
    a = marr(length, 4, path=path, encoding=encoding)
    return xr.Dataset({"v": (("time", "x"), a)}, attrs={"title": path})


def test_xarray_concat_merge_and_equals():
    ds = xr.concat(
        [virtual_ds(8, "file:///a.nc"), virtual_ds(8, "file:///b.nc")],
        dim="time",
        coords="minimal",
        compat="override",
        combine_attrs="override",
    )
    assert ds.v.shape == (16, 3)
    assert ds.v.data.manifest.paths == ("file:///a.nc", "file:///b.nc")
    merged = xr.merge([ds, ds.rename(v="w")], compat="override")
    assert set(merged.data_vars) == {"v", "w"}
    assert ds.equals(ds.copy())
    stacked = xr.concat([ds, ds], dim="member", coords="minimal", compat="override")
    assert stacked.v.shape == (2, 16, 3)
    assert ds.isel(time=slice(4, 12)).v.shape == (8, 3)


def test_xarray_concat_refuses_different_encodings_naming_the_variable():
    a = virtual_ds(8, "file:///a.nc", {"scale_factor": np.float32(0.1)})
    b = virtual_ds(8, "file:///b.nc", {"scale_factor": np.float32(0.2)})
    with pytest.raises(IncompatibleArraysError, match=r"variable 'v'.*scale_factor"):
        xr.concat([a, b], dim="time", coords="minimal", compat="override")


def test_dataset_repr_does_not_need_values():
    text = repr(virtual_ds(8, "file:///a.nc"))
    assert "ManifestArray" in text


def test_astype_accepts_unsized_flexible_dtype_of_same_kind():
    meta = make_array_metadata(shape=(4, 3), dtype=np.dtype("S1"), chunks=(4, 3), fill_value=b"")
    a = ManifestArray(meta, ChunkManifest.single("file:///a.nc", 0, 12, 2), name="c")
    assert a.astype("S") is a
    assert a.astype("S1") is a
    with pytest.raises(UnsupportedOperationError):
        a.astype("S2")
    both = xr.concat(
        [xr.Dataset({"c": (("t", "s"), a)}), xr.Dataset({"c": (("t", "s"), a)})], dim="t"
    )
    assert both.c.shape == (8, 3)


def test_identical_metadata_requests_share_one_instance():
    kw = dict(shape=(8, 3), dtype=np.dtype("<i2"), chunks=(4, 3), codecs=ZLIB)
    a = make_array_metadata(fill_value=0, **kw)
    assert make_array_metadata(fill_value=0, **kw) is a
    assert make_array_metadata(fill_value=1, **kw) is not a
    assert make_array_metadata(fill_value=0, dimension_names=("t", "x"), **kw) is not a
    f = dict(shape=(2,), dtype=np.dtype("<f4"), chunks=(2,))
    nan = make_array_metadata(fill_value=np.float32("nan"), **f)
    assert np.isnan(nan.fill_value)
    assert make_array_metadata(fill_value=np.float32(0.0), **f).fill_value == 0
    assert np.signbit(make_array_metadata(fill_value=np.float32(-0.0), **f).fill_value)
