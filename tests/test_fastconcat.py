"""The column-wise fast path of open_virtual_mfdataset gives exactly what combining Datasets
with xr.combine_nested gives -- or declines and lets that happen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr.mfdataset as mf
from virtualizarr import open_virtual_mfdataset
from virtualizarr.errors import IncompatibleArraysError
from virtualizarr.manifests import ManifestArray


def write_day(
    path: Path,
    day: int,
    *,
    units: str = "days since 2026-01-01",
    lat0: float = 0.0,
    static: bool = True,
    fmt: str = "NETCDF4",
) -> Path:
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.title = f"day {day}"
        nc.createDimension("time", None)
        nc.createDimension("lat", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = units
        t.calendar = "noleap"
        offset = 0 if units.endswith("2026-01-01") else -day
        t[:] = [day + offset, day + offset + 0.5]
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat[:] = np.arange(3) + lat0
        kw: dict[str, Any] = {"zlib": True} if fmt == "NETCDF4" else {}
        if fmt == "NETCDF4":
            kw["chunksizes"] = (1, 3)
        v = nc.createVariable("air", "i2", ("time", "lat"), fill_value=np.int16(-9), **kw)
        v.scale_factor = np.float32(0.5)
        v.note = f"from day {day}"
        v[:] = np.arange(6).reshape(2, 3) + 10 * day
        if static:
            m = nc.createVariable("mask", "i1", ("lat",))
            m[:] = [1, 0, day % 2]
    return path


def both_ways(
    paths: list[Path], monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[xr.Dataset, xr.Dataset, bool]:
    """(fast path, Datasets combined by xarray, whether the fast path took it)."""
    used = []
    real = mf.concat_prepared

    def spy(*a: Any) -> Any:
        out = real(*a)
        used.append(out is not None)
        return out

    kw = {"combine": "nested", "concat_dim": "time", "parallel": False, **kw}
    with monkeypatch.context() as m:
        m.setattr(mf, "concat_prepared", spy)
        fast = open_virtual_mfdataset(paths, **kw)
    with monkeypatch.context() as m:
        m.setattr(mf, "concat_prepared", lambda *a: None)
        slow = open_virtual_mfdataset(paths, **kw)
    return fast, slow, bool(used and used[0])


def assert_same(fast: xr.Dataset, slow: xr.Dataset) -> None:
    xr.testing.assert_identical(fast, slow)
    assert set(fast.variables) == set(slow.variables)
    for name in fast.variables:
        a, b = fast[name].variable, slow[name].variable
        assert a.encoding == b.encoding, name
        assert type(a.data) is type(b.data), name
        if isinstance(a.data, ManifestArray):
            assert a.data.manifest.equals(b.data.manifest), name
            assert a.data.manifest.sources == b.data.manifest.sources, name
            assert a.data.chunk_sizes == b.data.chunk_sizes, name
    assert fast.virtualize.to_kerchunk() == slow.virtualize.to_kerchunk()


FileMaker = Callable[..., list[Path]]


@pytest.fixture
def days(tmp_path: Path) -> FileMaker:
    def make(n: int = 4, **kw: Any) -> list[Path]:
        return [write_day(tmp_path / f"d{i}.nc", i, **kw) for i in range(n)]

    return make


@pytest.mark.parametrize("loadable", [None, ["time", "lat"], ["time", "lat", "mask"]])
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_fast_path_equals_combining_datasets(
    days: FileMaker, monkeypatch: pytest.MonkeyPatch, loadable: list[str] | None, fmt: str
) -> None:
    paths = days(fmt=fmt)
    fast, slow, used = both_ways(paths, monkeypatch, loadable_variables=loadable)
    assert used
    assert_same(fast, slow)
    with xr.open_mfdataset(
        paths,
        combine="nested",
        concat_dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    ) as truth:
        refs = fast.virtualize.to_kerchunk()
        xr.testing.assert_identical(
            xr.open_dataset(refs, engine="virtualizarr").load(), truth.load()
        )


def test_time_units_that_differ_per_file_are_decoded_per_file(
    days: FileMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [write_day(p, i, units=f"days since 2026-01-{i + 1:02d}") for i, p in enumerate(days())]
    fast, slow, used = both_ways(paths, monkeypatch)
    assert not used  # concatenating the raw values would decode them wrongly
    assert_same(fast, slow)
    np.testing.assert_array_equal(fast["time"].dt.day.values, [1, 1, 2, 2, 3, 3, 4, 4])


def test_an_index_that_differs_between_files_is_left_to_xarray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [write_day(tmp_path / f"d{i}.nc", i, lat0=float(i)) for i in range(2)]
    with pytest.raises(ValueError, match="lat"):  # join="exact", as before
        open_virtual_mfdataset(paths, combine="nested", concat_dim="time", parallel=False)
    fast, slow, used = both_ways(paths, monkeypatch, join="override")
    assert not used
    assert_same(fast, slow)


def test_files_with_different_variables_are_left_to_xarray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [write_day(tmp_path / "a.nc", 0), write_day(tmp_path / "b.nc", 1, static=False)]
    fast, slow, used = both_ways(paths, monkeypatch, compat="override")
    assert not used
    assert_same(fast, slow)


def test_incompatible_files_give_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = write_day(tmp_path / "a.nc", 0)
    b = write_day(tmp_path / "b.nc", 1)
    with netCDF4.Dataset(b, "a") as nc:
        nc["air"].scale_factor = np.float32(2.0)
    with pytest.raises(IncompatibleArraysError, match=r"scale_factor.*a\.nc.*b\.nc"):
        open_virtual_mfdataset([a, b], combine="nested", concat_dim="time", parallel=False)


def test_other_options_take_xarrays_path(days: FileMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = days(2, static=False)
    for kw in (
        {"data_vars": "all"},
        {"coords": "all"},
        {"compat": "no_conflicts"},
        {"preprocess": lambda ds: ds},
        {"combine_attrs": "drop"},
    ):
        _, _, used = both_ways(paths, monkeypatch, **kw)
        assert not used, kw
