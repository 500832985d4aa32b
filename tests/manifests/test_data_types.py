"""Data types, fill values (Zarr v2 and v3 JSON) and codec kinds, against zarr's own."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
from zarr.core.dtype import get_data_type_from_native_dtype
from zarr.registry import get_codec_class

from tests.manifests.test_array_metadata import dtypes, fills
from virtualizarr.errors import InvalidMetadataError
from virtualizarr.formats.kerchunk import v2_fill_from_json, v2_fill_to_json
from virtualizarr.manifests.chunk_codecs import register_zarr_codecs
from virtualizarr.manifests.codec_chain import CODEC_KINDS, codec_kind
from virtualizarr.manifests.data_types import (
    data_type_from_json,
    data_type_to_json,
    fill_from_json,
    fill_to_json,
    native_data_type,
)


def zarr_dtype(dtype: np.dtype[Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_data_type_from_native_dtype(dtype.newbyteorder("="))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fill_json_is_zarrs_in_both_formats(data: st.DataObject) -> None:
    dtype = data.draw(dtypes().filter(lambda d: d.kind != "O"))
    fill = data.draw(fills(dtype))
    zdt = zarr_dtype(dtype)
    native = native_data_type(dtype)
    assert native == np.dtype(zdt.to_native_dtype())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert data_type_to_json(native) == zdt.to_json(zarr_format=3)
    for zarr_format in (2, 3):
        want = zdt.to_json_scalar(zdt.cast_scalar(fill), zarr_format=zarr_format)
        got = fill_to_json(fill, native, zarr_format)
        assert got == want
        back, zback = (
            fill_from_json(got, native, zarr_format),
            zdt.from_json_scalar(want, zarr_format=zarr_format),
        )
        assert type(back) is type(zback) and repr(back) == repr(zback)
    assert data_type_from_json(data_type_to_json(native)) == native
    # kerchunk's .zarray fill values are the v2 ones
    assert v2_fill_to_json(fill, dtype) == zdt.to_json_scalar(zdt.cast_scalar(fill), zarr_format=2)


@pytest.mark.parametrize(
    ("doc", "dtype", "value"),
    [
        ("0x7fc00001", "float32", math.nan),  # a NaN spelled by its bits (v3 only)
        ("1.5", "float64", 1.5),  # a float spelled as a string
        (3.0, "int16", 3),  # an integral float for an integer
        ("NaT", "<M8[s]", np.datetime64("NaT", "s")),
        (["Infinity", "-Infinity"], "complex128", complex(math.inf, -math.inf)),
    ],
)
def test_fill_spellings_zarr_reads(doc: Any, dtype: str, value: Any) -> None:
    native = np.dtype(dtype)
    got = fill_from_json(doc, native)
    want = zarr_dtype(native).from_json_scalar(doc, zarr_format=3)
    assert repr(got) == repr(want)
    assert got == value or (got != got and value != value)  # NaN and NaT are unequal


@pytest.mark.parametrize(
    ("doc", "dtype"),
    [("abc", "float32"), (1.5, "int8"), ([1, 2, 3], "complex64"), (5, "S2"), ({}, "<M8[s]")],
)
def test_fills_zarr_refuses_we_refuse(doc: Any, dtype: str) -> None:
    native = np.dtype(dtype)
    with pytest.raises((TypeError, ValueError)):
        zarr_dtype(native).from_json_scalar(doc, zarr_format=3)
    with pytest.raises((TypeError, ValueError)):
        fill_from_json(doc, native)


def test_v2_null_fill_stays_null_and_strings_stay_strings() -> None:
    assert v2_fill_to_json(None, np.dtype("f4")) is None
    assert v2_fill_from_json(None, np.dtype("f4")) is None
    assert v2_fill_to_json("n/a", np.dtype(object)) == "n/a"
    assert v2_fill_from_json(7, np.dtype(object)) is None


@pytest.mark.parametrize(
    "doc",
    ["float128", {"name": "raw_bytes", "configuration": {"length_bytes": 0}}, {"name": "x"}, 3],
)
def test_unknown_data_types_are_refused(doc: Any) -> None:
    with pytest.raises(InvalidMetadataError):
        data_type_from_json(doc)


def test_codec_kinds_are_zarrs() -> None:
    """The table says where each codec sits in a chain exactly as zarr's registry does."""
    register_zarr_codecs()
    kinds = {ArrayArrayCodec: "array", ArrayBytesCodec: "array_bytes", BytesBytesCodec: "bytes"}
    for name, kind in CODEC_KINDS.items():
        cls = get_codec_class(name)
        assert [k for base, k in kinds.items() if issubclass(cls, base)] == [kind], name
    with pytest.raises(InvalidMetadataError, match="not one Zarr knows"):
        codec_kind("numcodecs.no_such_codec")
