"""Zarr stores written by zarr-python and xarray, one per layout the Zarr reader handles.

Each case writes a store under a directory and returns ``(store_path, consolidated)``:
what ``xr.open_zarr`` needs to open it without warnings. Used by the reader tests, the S3
tests and the fuzz corpus.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.codecs.numcodecs
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

Case = Callable[[Path], tuple[Path, bool]]


def _quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's v2/fixed-string notices
        return fn()


def cf_dataset(n: int = 6) -> xr.Dataset:
    """A CF dataset: packed int16 with a _FillValue and masked values, a float with NaN,
    times, strings, a 2-D coordinate, attributes of several types."""
    rng = np.random.default_rng(1)
    temp = (rng.normal(280, 5, (n, 4, 5))).astype("f4")
    temp[0, 0, 0] = np.nan
    ds = xr.Dataset(
        {
            "temp": (("time", "y", "x"), temp, {"units": "K", "long_name": "temperature"}),
            "counts": (("time", "y", "x"), rng.integers(0, 9, (n, 4, 5)).astype("i4")),
            "station": (("y",), np.array(["alpha", "b", "", "delta"], dtype=object)),
            "area": (("y", "x"), rng.random((4, 5)), {"coordinates": "lat"}),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=n, freq="D"),
            "x": np.arange(5, dtype="f8"),
            "y": np.arange(4, dtype="i8") * 10,
            "lat": (("y", "x"), np.linspace(-40, 40, 20).reshape(4, 5)),
        },
        attrs={"title": "cf sample", "version": 3, "ratio": 0.5, "tags": ["a", "b"]},
    )
    ds["temp"].encoding = {
        "dtype": "int16",
        "scale_factor": 0.01,
        "add_offset": 280.0,
        "_FillValue": -32768,
        "chunks": (2, 4, 5),
    }
    ds["counts"].encoding = {"chunks": (3, 2, 5)}
    return ds


def xarray_v2(d: Path) -> tuple[Path, bool]:
    p = d / "xr_v2.zarr"
    _quiet(lambda: cf_dataset().to_zarr(p, zarr_format=2, consolidated=True))
    return p, True


def xarray_v3(d: Path) -> tuple[Path, bool]:
    p = d / "xr_v3.zarr"
    _quiet(lambda: cf_dataset().to_zarr(p, zarr_format=3, consolidated=True))
    return p, True


def xarray_v3_unconsolidated(d: Path) -> tuple[Path, bool]:
    p = d / "xr_v3u.zarr"
    _quiet(lambda: cf_dataset().to_zarr(p, zarr_format=3, consolidated=False))
    return p, False


def _v2_group(p: Path) -> Any:
    return zarr.open_group(p, mode="w", zarr_format=2)


def zarr_v2_codecs(d: Path) -> tuple[Path, bool]:
    """zarr-python v2 arrays: every compressor, value filters, '/' and '.' separators,
    F order, big-endian, fill values (none, NaN, a number) and missing chunks."""
    p = d / "v2_codecs.zarr"

    def write() -> None:
        g = _v2_group(p)
        g.attrs["source"] = "zarr-python"
        x = np.arange(24, dtype="i4").reshape(4, 6)
        cases: dict[str, dict[str, Any]] = {
            "blosc": {"compressors": numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2)},
            "zlib": {"compressors": numcodecs.Zlib(level=4)},
            "gzip": {"compressors": numcodecs.GZip(level=1)},
            "zstd": {"compressors": numcodecs.Zstd(level=2)},
            "lz4": {"compressors": numcodecs.LZ4()},
            "bz2": {"compressors": numcodecs.BZ2()},
            "lzma": {"compressors": numcodecs.LZMA()},
            "none": {"compressors": None},
            "delta": {"filters": [numcodecs.Delta(dtype="<i4")], "compressors": numcodecs.Zlib()},
            "shuffle": {"filters": [numcodecs.Shuffle(elementsize=4)], "compressors": None},
            "slash": {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
            "forder": {"order": "F"},
        }
        for name, kw in cases.items():
            a = g.create_array(name, shape=x.shape, chunks=(3, 4), dtype="i4", **kw)
            a[:] = x
            a.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
        f = g.create_array(
            "scaled",
            shape=(4, 6),
            chunks=(2, 3),
            dtype="f8",
            filters=[numcodecs.FixedScaleOffset(offset=10, scale=100, dtype="f8", astype="i4")],
            compressors=numcodecs.Zlib(),
            fill_value=None,
        )
        f[:] = x / 7.0
        f.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
        be = g.create_array("bigend", shape=(4, 6), chunks=(4, 6), dtype=">f8", fill_value=-1.5)
        be[:] = x * 0.25
        be.attrs.update({"_ARRAY_DIMENSIONS": ["y", "x"], "units": "m"})
        # missing chunks: fill value NaN (masked by xarray), a number, none
        for name, fill in (("nanfill", np.nan), ("numfill", 7), ("nofill", None)):
            dt = "f4" if name == "nanfill" else "i2"
            a = g.create_array(name, shape=(4, 6), chunks=(2, 3), dtype=dt, fill_value=fill)
            a[0:2, 0:3] = 1
            a[2:4, 3:6] = 0  # real zeros, not missing values
            a.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
        s = g.create_array("scalar", shape=(), dtype="f8", fill_value=None)
        s[()] = 3.25
        s.attrs["_ARRAY_DIMENSIONS"] = []
        b = g.create_array("flags", shape=(6,), chunks=(4,), dtype="bool", fill_value=False)
        b[:] = [True, False, True, True, False, False]
        b.attrs["_ARRAY_DIMENSIONS"] = ["x"]
        st = g.create_array("names", shape=(6,), chunks=(4,), dtype=str)
        st[:] = ["a", "", "ccc", "dd", "é", "f"]
        st.attrs["_ARRAY_DIMENSIONS"] = ["x"]

    _quiet(write)
    return p, False


def zarr_v2_groups(d: Path) -> tuple[Path, bool]:
    """Nested v2 groups, consolidated at the root."""
    p = d / "v2_groups.zarr"

    def write() -> None:
        g = _v2_group(p)
        g.attrs["level"] = "root"
        sub = g.create_group("inner")
        sub.attrs["level"] = "inner"
        a = sub.create_array("v", shape=(5,), chunks=(2,), dtype="f4", fill_value=None)
        a[:] = np.arange(5)
        a.attrs["_ARRAY_DIMENSIONS"] = ["t"]
        top = g.create_array("w", shape=(3,), chunks=(3,), dtype="u1", fill_value=None)
        top[:] = [1, 2, 3]
        top.attrs["_ARRAY_DIMENSIONS"] = ["k"]
        zarr.consolidate_metadata(p)

    _quiet(write)
    return p, True


def zarr_v3_codecs(d: Path) -> tuple[Path, bool]:
    """zarr-python v3 arrays: codec chains, big-endian bytes, transpose, '.' keys, the v2
    key encoding, fill values and missing chunks."""
    p = d / "v3_codecs.zarr"

    def write() -> None:
        g = zarr.open_group(p, mode="w", zarr_format=3)
        g.attrs.update({"source": "zarr-python", "_nc_hidden": 1})
        x = np.arange(30, dtype="f4").reshape(5, 6)
        kw = {"dimension_names": ["y", "x"], "chunks": (2, 4)}
        chains: dict[str, dict[str, Any]] = {
            "zstd": {"compressors": ZstdCodec(level=3, checksum=True)},
            "gzip": {"compressors": GzipCodec(level=2)},
            "blosc": {"compressors": BloscCodec(cname="lz4", shuffle="bitshuffle")},
            "crc": {"compressors": [Crc32cCodec()]},
            "bigend": {"serializer": BytesCodec(endian="big"), "compressors": None},
            "transposed": {"filters": [TransposeCodec(order=(1, 0))]},
            "dotkeys": {"chunk_key_encoding": {"name": "default", "separator": "."}},
            "v2keys": {"chunk_key_encoding": {"name": "v2", "separator": "."}},
            "delta": {"filters": [zarr.codecs.numcodecs.Delta(dtype="<f4")]},
        }
        for name, extra in chains.items():
            a = g.create_array(name, shape=x.shape, dtype="f4", **kw, **extra)
            a[:] = x
        a = g.create_array("holes", shape=(5, 6), dtype="i2", fill_value=-9, **kw)
        a[0:2, 0:4] = 0
        a.attrs["_FillValue"] = -9  # an integer _FillValue, as xarray writes it
        s = g.create_array("strings", shape=(6,), chunks=(4,), dtype=str, dimension_names=["x"])
        s[:] = ["a", "", "ccc", "dd", "é", "f"]
        z = g.create_array("scalar", shape=(), dtype="i8", dimension_names=[])
        z[()] = 42

    _quiet(write)
    return p, False


def zarr_v3_sharded(d: Path) -> tuple[Path, bool]:
    """Sharded v3 arrays: the index at the end (with crc32c) and at the start (without),
    edge shards, inner chunks not written, compression inside shards."""
    p = d / "v3_sharded.zarr"

    def write() -> None:
        g = zarr.open_group(p, mode="w", zarr_format=3)
        x = np.arange(7 * 9, dtype="i4").reshape(7, 9)
        a = g.create_array(
            "end",
            shape=x.shape,
            chunks=(2, 3),
            shards=(4, 6),
            dtype="i4",
            compressors=ZstdCodec(level=1),
            dimension_names=["y", "x"],
            fill_value=-1,
        )
        a[:] = x
        a[0:2, 0:3] = -1  # an inner chunk of fill values: zarr does not write it
        start = ShardingCodec(
            chunk_shape=(2, 3),
            codecs=[BytesCodec(), GzipCodec(level=1)],
            index_codecs=[BytesCodec()],
            index_location="start",
        )
        b = g.create_array(
            "start",
            shape=x.shape,
            chunks=(4, 6),
            serializer=start,
            compressors=None,
            dtype="f8",
            dimension_names=["y", "x"],
        )
        b[:] = x / 3
        b[4:, :] = 0  # real zeros
        c = g.create_array(
            "partial", shape=(7, 9), chunks=(2, 3), shards=(4, 6), dtype="u2",
            dimension_names=["y", "x"], fill_value=0,
        )  # fmt: skip
        c[0:2, 0:6] = 5  # the other shards are never written

    _quiet(write)
    return p, False


CASES: dict[str, Case] = {
    "xarray_v2": xarray_v2,
    "xarray_v3": xarray_v3,
    "xarray_v3_unconsolidated": xarray_v3_unconsolidated,
    "zarr_v2_codecs": zarr_v2_codecs,
    "zarr_v2_groups": zarr_v2_groups,
    "zarr_v3_codecs": zarr_v3_codecs,
    "zarr_v3_sharded": zarr_v3_sharded,
}


def open_original(store: Path | str, consolidated: bool, **kw: Any) -> xr.Dataset:
    """``xr.open_zarr`` of a case, loaded (the truth the reader is compared with)."""
    with xr.open_zarr(store, consolidated=consolidated, **kw) as ds:
        return ds.load()
