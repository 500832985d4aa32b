"""The GRIB reader against ``xr.open_dataset(f, engine="cfgrib")``.

The files are cfgrib's own sample data (``tests/data/grib``, see its README) plus files
ecCodes writes here from its samples. Every dataset must be identical to cfgrib's
(``history``, which carries cfgrib's clock, aside) after a round trip through kerchunk
references, read by the native path and by zarr.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from virtualizarr import open_virtual_dataset
from virtualizarr.errors import (
    FileFormatError,
    MissingDependencyError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
)
from virtualizarr.io.objects import Location
from virtualizarr.readers.grib.messages import check_message
from virtualizarr.readers.grib.reader import read_grib

cfgrib = pytest.importorskip("cfgrib", reason="cfgrib is the reference reader for GRIB")
eccodes = pytest.importorskip("eccodes", reason="ecCodes decodes GRIB messages")

DATA = Path(__file__).resolve().parent.parent / "data" / "grib"
SINGLE = [
    "regular_ll_sfc.grib",
    "multi_param_on_multi_dims.grib",
    "lambert_grid.grib",
    "reduced_gg.grib",
    "fields_with_missing_values.grib",
    "alternate-scanning.grib",
    "step_60m.grib",
]
SPLIT = ["t_on_different_level_types.grib", "cfrzr_and_cprat.grib"]


def _cfgrib(path: Path, **kwargs: Any) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # cfgrib's own xr.merge
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": "", **kwargs})
    ds.attrs.pop("history")  # "<now> GRIB to CDM+CF via cfgrib-...": cfgrib's clock
    return ds.load()


def _round_trips(vds: xr.Dataset) -> list[xr.Dataset]:
    refs = vds.virtualize.to_kerchunk(format="dict")
    native = xr.open_dataset(refs, engine="virtualizarr").load()
    via_zarr = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": refs}},
    ).load()
    return [native, via_zarr]


@pytest.mark.parametrize("name", SINGLE)
def test_identical_to_cfgrib(name: str) -> None:
    path = DATA / name
    expected = _cfgrib(path)
    vds = open_virtual_dataset(path)
    native, via_zarr = _round_trips(vds)
    xr.testing.assert_identical(native, expected)
    # zarr gives the same values; xarray's zarr backend drops nothing we check here
    for name_ in expected.data_vars:
        np.testing.assert_array_equal(via_zarr[name_].values, expected[name_].values)


@pytest.mark.parametrize("name", SPLIT)
def test_files_cfgrib_splits_open_as_groups(name: str) -> None:
    path = DATA / name
    groups = sorted(read_grib(Location.of(path)).groups)
    with pytest.raises(UnsupportedFeatureError, match="open one group at a time") as e:
        open_virtual_dataset(path)
    assert str(groups) in str(e.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        parts = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
    assert len(groups) == len(parts)
    for group in groups:
        (native, _) = _round_trips(open_virtual_dataset(path, group=group))
        matches = []
        for part in parts:
            part = part.load()
            part.attrs.pop("history", None)
            try:
                xr.testing.assert_identical(native, part)
                matches.append(part)
            except AssertionError:
                pass
        assert len(matches) == 1, group


def test_filter_by_keys_as_reader_option() -> None:
    path = DATA / "t_on_different_level_types.grib"
    fbk = {"typeOfLevel": "isobaricInhPa"}
    vds = open_virtual_dataset(path, reader_options={"filter_by_keys": fbk})
    native, _ = _round_trips(vds)
    xr.testing.assert_identical(native, _cfgrib(path, filter_by_keys=fbk))


def test_one_chunk_per_message_and_missing_fields(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "holes.grib2"
    fields = [
        (step, level) for step in (0, 6, 12) for level in (500, 850) if (step, level) != (6, 850)
    ]
    with path.open("wb") as f:
        for step, level in fields:
            _write_message(f, rng.random((3, 5)) * 10, step=step, typeOfLevel="isobaricInhPa",
                           level=level)  # fmt: skip
    vds = open_virtual_dataset(path)
    (name,) = list(vds.data_vars)
    arr = vds[name].data
    m = arr.manifest
    assert arr.chunk_sizes[-2:] == arr.shape[-2:]
    assert all(c == 1 for c in arr.chunk_sizes[:-2])
    stored = m.path_ids >= 0
    data = path.read_bytes()
    assert stored.sum() == data.count(b"GRIB") > 0
    # every reference is exactly one message: 'GRIB' ... '7777'
    for off, n in zip(m.offsets[stored].tolist(), m.lengths[stored].tolist(), strict=True):
        assert data[off : off + 4] == b"GRIB" and data[off + n - 4 : off + n] == b"7777"
    assert (~stored).sum() == 1  # the hypercube's hole: a missing chunk, NaN like cfgrib
    assert np.isnan(arr.metadata.fill_value)
    native, via_zarr = _round_trips(vds)
    xr.testing.assert_identical(native, _cfgrib(path))
    assert int(np.isnan(native[name].values).all(axis=(-1, -2)).sum()) == 1
    np.testing.assert_array_equal(via_zarr[name].values, native[name].values)


def test_large_grid_coordinates_reference_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import virtualizarr.readers.grib.reader as grib_reader

    monkeypatch.setattr(grib_reader, "INLINE_COORDINATE_BYTES", 1024)
    path = DATA / "lambert_grid.grib"
    vds = open_virtual_dataset(path)
    lat = vds["latitude"].data
    assert lat.manifest.inline == () and lat.manifest.lengths.item() > 0
    native, _ = _round_trips(vds)
    xr.testing.assert_identical(native, _cfgrib(path))


def _write_message(f: Any, values: np.ndarray[Any, Any], **keys: Any) -> None:
    """One GRIB 2 message made by ecCodes from its sample."""
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    try:
        eccodes.codes_set(h, "Ni", values.shape[1])
        eccodes.codes_set(h, "Nj", values.shape[0])
        for k, val in keys.items():
            eccodes.codes_set(h, k, val)
        eccodes.codes_set_values(h, values.ravel())
        eccodes.codes_write(h, f)
    finally:
        eccodes.codes_release(h)


def _write_grib2(path: Path, values: list[np.ndarray[Any, Any]], **keys: Any) -> None:
    """GRIB 2 messages from ecCodes' sample, one per field, 6 hours apart."""
    with path.open("wb") as f:
        for i, v in enumerate(values):
            _write_message(f, v, step=i * 6, **keys)


def test_grib2_written_by_eccodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "written.grib2"
    _write_grib2(path, [rng.random((4, 8)) * 300 for _ in range(3)], packingType="grid_ccsds")
    native, via_zarr = _round_trips(open_virtual_dataset(path))
    expected = _cfgrib(path)
    xr.testing.assert_identical(native, expected)
    np.testing.assert_array_equal(via_zarr["t"].values, expected["t"].values)
    assert native["step"].size == 3


def test_bytes_between_messages_are_skipped(tmp_path: Path) -> None:
    src = (DATA / "multi_param_on_multi_dims.grib").read_bytes()
    path = tmp_path / "junk.grib"
    pos = src.index(b"GRIB", 4)
    path.write_bytes(src[:pos] + b"\0junk between messages\n" + src[pos:])
    native, _ = _round_trips(open_virtual_dataset(path))
    xr.testing.assert_identical(native, _cfgrib(DATA / "multi_param_on_multi_dims.grib"))


def test_damaged_messages_are_refused_before_eccodes(tmp_path: Path) -> None:
    data = bytearray((DATA / "regular_ll_sfc.grib").read_bytes())
    cut = tmp_path / "cut.grib"
    cut.write_bytes(bytes(data[: len(data) - 10]))
    with pytest.raises(FileFormatError, match="truncated"):
        open_virtual_dataset(cut)
    no_end = tmp_path / "no_end.grib"
    data[-4:] = b"XXXX"
    no_end.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="damaged"):
        open_virtual_dataset(no_end)
    with pytest.raises(FileFormatError, match="damaged"):
        check_message(b"GRIB" + bytes(12) + b"7777", 0, "x")


def test_options_detection_and_missing_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = DATA / "regular_ll_sfc.grib"
    odd = tmp_path / "field.bin"
    odd.write_bytes(path.read_bytes())
    assert "skt" in open_virtual_dataset(odd)
    assert "skt" in open_virtual_dataset(path, filetype="grib2")
    with pytest.raises(UnexpectedOptionError, match="filter_by_keys"):
        open_virtual_dataset(path, reader_options={"indexpath": "x"})
    with pytest.raises(FileFormatError, match="no group"):
        open_virtual_dataset(DATA / "cfrzr_and_cprat.grib", group="nope")
    monkeypatch.setitem(sys.modules, "cfgrib", None)
    with pytest.raises(MissingDependencyError, match="pip install cfgrib eccodes"):
        open_virtual_dataset(path)


def test_missing_eccodes_at_decode_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    vds = open_virtual_dataset(DATA / "regular_ll_sfc.grib")
    refs = vds.virtualize.to_kerchunk(format="dict")
    monkeypatch.setitem(sys.modules, "eccodes", None)
    with pytest.raises(MissingDependencyError, match="pip install eccodes"):
        xr.open_dataset(refs, engine="virtualizarr")["skt"].load()


def test_step_beyond_timedelta64_is_our_error(tmp_path: Path) -> None:
    """xarray decodes loaded coordinates lazily; the failure must still be ours."""
    path = tmp_path / "far_step.grib2"
    with path.open("wb") as f:
        for step in (0, 3_211_270):  # hours: 366 years, past timedelta64[ns]
            _write_message(f, np.arange(12.0).reshape(3, 4), forecastTime=step)
    with pytest.raises(FileFormatError, match="could not CF-decode the loaded variable 'step'"):
        open_virtual_dataset(path)


def test_forecasts_concatenated_along_time_as_cfgrib_datasets(tmp_path: Path) -> None:
    """cfgrib's scalar coordinates (time here) are loaded to concatenate along them."""
    rng = np.random.default_rng(11)
    paths = []
    for day in range(3):
        paths.append(tmp_path / f"fc_{day}.grib2")
        _write_grib2(paths[-1], [rng.random((3, 5)) for _ in range(2)], dataDate=20260101 + day)
    loaded = ["time", "step", "valid_time", "latitude", "longitude"]
    vds = [open_virtual_dataset(p, loadable_variables=loaded) for p in paths]
    kw: dict[str, Any] = {"coords": "minimal", "compat": "override", "combine_attrs": "override"}
    combined = xr.concat(vds, dim="time", **kw)
    native, via_zarr = _round_trips(combined)
    expected = xr.concat([_cfgrib(p) for p in paths], dim="time", **kw)
    xr.testing.assert_identical(native, expected)
    np.testing.assert_array_equal(via_zarr["t"].values, expected["t"].values)
