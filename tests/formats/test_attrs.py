"""The one attribute encoder: every output format gives back the attributes it was given.

The same attribute set -- bytes, NaN and infinities, NumPy scalars and 1-D arrays of every
width, complex numbers, nested lists, dicts, non-ASCII text -- is put on a dataset, a
virtual variable and a loaded coordinate, written as kerchunk references (dict, JSON,
Parquet) and as a manifest store, and read back through ``open_virtual_dataset`` and
``engine="virtualizarr"``: every attribute must come back with the same type and value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.formats.attrs import attribute_dtypes, dumps, jsonable, restore_attrs

WIDTHS = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]


def exotic_attrs() -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "text": "plain",
        "non_ascii": "température °C, 日本語, emoji \N{GLOBE WITH MERIDIANS}",
        "empty_text": "",
        "raw_bytes": b"raw\xff\x00bytes",
        "utf8_bytes": "café".encode(),
        "py_int": 7,
        "py_big_int": 2**62,
        "py_float": 2.5,
        "py_nan": math.nan,
        "py_inf": -math.inf,
        "py_bool": True,
        "py_none": None,
        "py_complex": 1.5 - 2j,
        "nested": [[1, 2], ["a", [3.5, None]], {"k": "v"}],
        "mapping": {"a": 1, "b": ["x", "y"]},
        "np_bool": np.bool_(True),
        "np_str": np.str_("numpy text"),
        "np_bytes": np.bytes_(b"np\xffbytes"),
        "nan32": np.float32("nan"),
        "inf64": np.float64("inf"),
        "neg_inf16": np.float16("-inf"),
        "str_array": np.array(["a", "bc"]),
        "bytes_array": np.array([b"a", b"b\xff"]),
        "température": "a non-ASCII name",
    }
    for w in WIDTHS:
        dt = np.dtype(w)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            attrs[f"scalar_{w}"] = dt.type(info.max)
            attrs[f"array_{w}"] = np.array([info.min, 0, info.max], dtype=dt)
        elif dt.kind == "f":
            attrs[f"scalar_{w}"] = dt.type(0.1)
            attrs[f"array_{w}"] = np.array([0.1, np.nan, -np.inf], dtype=dt)
        else:
            attrs[f"scalar_{w}"] = dt.type(1.5 - 0.25j)
            attrs[f"array_{w}"] = np.array([1 + 1j, complex(np.nan, 0)], dtype=dt)
    return attrs


def assert_same(back: dict[str, Any], want: dict[str, Any], where: str) -> None:
    """Same keys; every value of the same type and equal (NaN equal to NaN)."""
    missing = [k for k in want if k not in back]
    assert missing == [], f"{where}: attributes lost: {missing}"
    for key, value in want.items():
        got = back[key]
        assert type(got) is type(value), f"{where}: {key}: {type(got)} is not {type(value)}"
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype, f"{where}: {key}: {got.dtype} vs {value.dtype}"
            np.testing.assert_array_equal(got, value, err_msg=f"{where}: {key}")
        elif isinstance(value, np.generic):
            assert got.dtype == value.dtype, f"{where}: {key}"
            np.testing.assert_array_equal(got, value, err_msg=f"{where}: {key}")
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(got), f"{where}: {key}"
        else:
            assert got == value, f"{where}: {key}: {got!r} vs {value!r}"


# ---------------------------------------------------------------------- the encoder itself
def test_every_value_survives_json_with_its_record() -> None:
    import json

    attrs = exotic_attrs()
    text = dumps(attrs)  # valid, strict JSON: no NaN literals, no bytes
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    record = json.loads(json.dumps(attribute_dtypes(attrs)))
    assert_same(restore_attrs(json.loads(text), record), attrs, "json")


def test_jsonable_is_idempotent_and_plain() -> None:
    once = jsonable(exotic_attrs())
    assert jsonable(once) == once
    plain = (dict, list, str, int, float, bool, type(None))

    def check(v: Any) -> None:
        assert type(v) in plain, type(v)
        if isinstance(v, dict):
            for x in v.values():
                check(x)
        elif isinstance(v, list):
            for x in v:
                check(x)

    check(once)


def test_a_malformed_record_keeps_the_json_value() -> None:
    back = restore_attrs({"a": "x", "b": 1.5, "c": [1, 2]}, {"a": "<f4", "b": "nonsense", "c": 3})
    assert back == {"a": "x", "b": 1.5, "c": [1, 2]}


# ---------------------------------------------------------------------- every output format
@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attrs") / "src.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("x", 4)
        x = nc.createVariable("x", "f8", ("x",))
        x[:] = np.arange(4.0)
        v = nc.createVariable("v", "i2", ("x",), chunksizes=(2,), zlib=True)
        v[:] = np.arange(4, dtype="i2")
    return path


def dataset_with_attrs(path: Path) -> xr.Dataset:
    vds = vz.open_virtual_dataset(path)  # x loaded, v virtual
    attrs = exotic_attrs()
    vds.attrs = dict(attrs)
    vds["v"].attrs = dict(attrs)
    vds["x"].attrs = dict(attrs)
    return vds


def write(vds: xr.Dataset, fmt: str, out: Path) -> Any:
    if fmt == "dict":
        return vds.virtualize.to_kerchunk(format="dict")
    if fmt == "zarr":
        vds.virtualize.to_zarr(out)
    else:
        vds.virtualize.to_kerchunk(out, format=fmt)
    return out


@pytest.mark.parametrize("fmt", ["dict", "json", "parquet", "zarr"])
def test_attributes_come_back_identical_from_every_output(
    source: Path, tmp_path: Path, fmt: str
) -> None:
    vds = dataset_with_attrs(source)
    want = exotic_attrs()
    target = write(vds, fmt, tmp_path / f"out.{fmt}")
    back = vz.open_virtual_dataset(target, loadable_variables=[])
    for where, attrs in [("dataset", back.attrs), ("virtual", back["v"].attrs)]:
        assert_same(dict(attrs), want, f"{fmt}, open_virtual_dataset, {where}")
    # the loaded coordinate was CF-encoded for writing: its attributes pass through as given
    assert_same(dict(back["x"].attrs), want, f"{fmt}, open_virtual_dataset, loaded")
    with xr.open_dataset(target, engine="virtualizarr") as ds:
        assert_same(dict(ds.attrs), want, f"{fmt}, engine, dataset")
        assert_same(dict(ds["v"].attrs), want, f"{fmt}, engine, virtual")
        np.testing.assert_array_equal(ds["v"].values, np.arange(4, dtype="i2"))
