"""Zarr stores, GRIB, TIFF and FITS files through Icechunk: ``to_icechunk``, commit,
``xr.open_zarr(session.store)``, compared with each format's usual reader -- the truth
the kerchunk and engine paths are compared with (``xr.open_zarr`` of the original store,
cfgrib, tifffile, astropy).

Documented limits asserted here (docs/usage.md): a string variable with a ``_FillValue``
is refused (xarray cannot read it from Zarr v3); FITS images scaled to float32 decode to
float64 through plain Zarr; TIFF strips whose last one is short make a rectilinear grid,
which Zarr reads with its experimental ``array.rectilinear_chunks`` option.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import virtualizarr as vz
from tests.readers.test_zarr_store import FIXTURE
from tests.readers.zarr_cases import CASES, open_original
from tests.writers.icechunk_support import (
    assert_string_fill_refused,
    string_fills,
    through_icechunk,
)
from virtualizarr.io.objects import Location

# ---------------------------------------------------------------------- Zarr stores


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[Path, bool]]]:
    d = tmp_path_factory.mktemp("zarr_cases")
    return d, {name: case(d) for name, case in CASES.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_zarr_stores(case: str, built: tuple[Path, dict[str, tuple[Path, bool]]]) -> None:
    """Every layout of the Zarr reader (v2 and v3, every codec, F order, sharding, fill
    values, groups), nothing loaded and the default loading."""
    root, stores = built
    store, consolidated = stores[case]
    truth = open_original(store, consolidated)
    for loadable in ([], None):
        vds = vz.open_virtual_dataset(store, loadable_variables=loadable)
        names = string_fills(vds)
        assert names == (["names"] if case == "zarr_v2_codecs" else [])
        if names:  # a v2 string array with fill_value "": xarray masks "" -> NaN
            assert_string_fill_refused(vds, root)
        got = through_icechunk(vds.drop_vars(names), root)
        xr.testing.assert_identical(got, truth.drop_vars(names))
        for name, var in truth.drop_vars(names).variables.items():
            assert got[name].dtype == var.dtype, name


def test_zarr_groups(built: tuple[Path, dict[str, tuple[Path, bool]]]) -> None:
    root, stores = built
    store, consolidated = stores["zarr_v2_groups"]
    truth = open_original(store, consolidated, group="inner")
    vds = vz.open_virtual_dataset(store, group="inner", loadable_variables=[])
    xr.testing.assert_identical(through_icechunk(vds, root), truth)


@pytest.mark.parametrize("group", [None, "0", "10", "20"])
def test_stores_written_by_zarr_2(tmp_path: Path, group: str | None) -> None:
    """zarr-python 2's fixture: every compressor, Fortran order, both key layouts."""
    store = tmp_path / "fixture"
    shutil.copytree(FIXTURE, store)
    for zarray in store.rglob(".zarray"):  # the dimension names xarray needs
        ndim = len(json.loads(zarray.read_text())["shape"])
        name = zarray.parent.relative_to(store).as_posix().replace("/", "_")
        zattrs = zarray.with_name(".zattrs")
        attrs = json.loads(zattrs.read_text()) if zattrs.exists() else {}
        attrs["_ARRAY_DIMENSIONS"] = [f"{name}_{i}" for i in range(ndim)]
        zattrs.write_text(json.dumps(attrs))
    truth = open_original(store, False, group=group)
    vds = vz.open_virtual_dataset(store, group=group, loadable_variables=[])
    xr.testing.assert_identical(through_icechunk(vds, tmp_path), truth)


# ---------------------------------------------------------------------- GRIB
GRIB = Path(__file__).resolve().parent.parent / "data" / "grib"


def _cfgrib(path: Path, **kwargs: Any) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # cfgrib's own xr.merge
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": "", **kwargs})
    ds.attrs.pop("history")  # "<now> GRIB to CDM+CF via cfgrib-...": cfgrib's clock
    return ds.load()


@pytest.mark.parametrize(
    "name",
    [
        "regular_ll_sfc.grib",
        "multi_param_on_multi_dims.grib",
        "lambert_grid.grib",
        "reduced_gg.grib",
        "fields_with_missing_values.grib",
        "alternate-scanning.grib",
        "step_60m.grib",
    ],
)
def test_grib_files_identical_to_cfgrib(name: str) -> None:
    pytest.importorskip("cfgrib", reason="cfgrib is the reference reader for GRIB")
    got = through_icechunk(vz.open_virtual_dataset(GRIB / name), GRIB)
    xr.testing.assert_identical(got, _cfgrib(GRIB / name))


@pytest.mark.parametrize("name", ["t_on_different_level_types.grib", "cfrzr_and_cprat.grib"])
def test_grib_groups_each_identical_to_a_cfgrib_dataset(name: str) -> None:
    cfgrib = pytest.importorskip("cfgrib", reason="cfgrib is the reference reader for GRIB")
    from virtualizarr.readers.grib.reader import read_grib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        parts = cfgrib.open_datasets(str(GRIB / name), backend_kwargs={"indexpath": ""})
        parts = [p.load() for p in parts]
    for part in parts:
        part.attrs.pop("history", None)
    for group in sorted(read_grib(Location.of(GRIB / name)).groups):
        got = through_icechunk(vz.open_virtual_dataset(GRIB / name, group=group), GRIB)
        assert sum(got.identical(p) for p in parts) == 1, group


# ---------------------------------------------------------------------- TIFF
def _tiff_files(d: Path) -> list[Path]:
    from tests.readers.test_tiff import GDAL_FILES, _tifffile_variants

    return [*GDAL_FILES, *sorted(_tifffile_variants(d).values())]


def test_tiff_files_as_tifffile_reads_them(tmp_path: Path) -> None:
    """GDAL's GeoTIFFs/COGs and tifffile's layouts (tiles, strips, planar, pyramids,
    predictors, every compression): every series and level, values and dtypes."""
    pytest.importorskip("tifffile", reason="tifffile is the reference TIFF reader")
    from tests.readers.test_tiff import _expected, _groups

    rectilinear = []
    for path in _tiff_files(tmp_path):
        for group, series, level in _groups(path):
            vds = vz.open_virtual_dataset(path, group=group)
            if not all(isinstance(c, int) for c in vds["image"].data.chunk_sizes):
                rectilinear.append(path.name)
            with zarr.config.set({"array.rectilinear_chunks": True}):
                got = through_icechunk(vds, path.parent)["image"].values
            expected = _expected(path, series, level)
            assert got.dtype == expected.dtype and got.shape == expected.shape, path.name
            np.testing.assert_array_equal(got, expected, err_msg=f"{path.name} {group}")
    assert sorted(set(rectilinear)) == [
        "delta_lzw_short_strip.tif",
        "jpeg_short_strip.tif",
        "striped_lzw_point.tif",
    ]


def test_geotiff_coordinates_and_attributes() -> None:
    """The whole dataset -- GDAL's coordinates and GeoTIFF attributes, tifffile's values --
    as test_tiff.py's round trip compares it."""
    from tests.readers.test_tiff import GDAL_FILES, _expected

    for path in GDAL_FILES:
        vds = vz.open_virtual_dataset(path)
        with zarr.config.set({"array.rectilinear_chunks": True}):
            got = through_icechunk(vds, path.parent)
        expected = vds.copy()
        image = vds["image"]
        expected["image"] = (image.dims, _expected(path, 0, 0), image.attrs)
        xr.testing.assert_identical(got, expected)


# ---------------------------------------------------------------------- FITS
FITS = Path(__file__).resolve().parent.parent / "data" / "fits"


@pytest.mark.parametrize(
    "name",
    [
        "arange.fits",
        "test0.fits",
        "o4sp040b0_raw.fits",
        "fixed-1890.fits",
        "scale.fits",
        "blank.fits",
        "btable.fits",
    ],
)
def test_fits_files_as_astropy_reads_them(name: str) -> None:
    """Images (scaled ones: float64 through plain Zarr, equal to float32 precision) and
    binary tables (Zarr v3 structured types, compared field by field)."""
    fits = pytest.importorskip("astropy.io.fits", reason="astropy is the reference reader")
    from virtualizarr.readers.fits.reader import _names

    path = FITS / name
    vds = vz.open_virtual_dataset(path)
    got = through_icechunk(vds, FITS)
    with fits.open(path) as hdus:
        names = _names(list(hdus))
        for var in vds.data_vars:
            expected = hdus[names.index(var)].data
            values = got[var].values
            if expected.dtype.names:
                assert values.dtype.names == expected.dtype.names
                for field in expected.dtype.names:
                    np.testing.assert_array_equal(values[field], np.asarray(expected.base[field]))
                continue
            assert values.shape == expected.shape
            if "scale_factor" in vds[var].attrs and expected.dtype == np.float32:
                assert values.dtype == np.float64  # the float32-packing limit
                np.testing.assert_allclose(values, expected, rtol=1e-6)
            else:
                assert values.dtype == expected.dtype.newbyteorder("=")
                np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("scaling", ["plain", "unsigned", "scaled", "blank", "scaled_blank"])
@pytest.mark.parametrize("bitpix", [8, 16, 32, 64, -32, -64])
def test_fits_every_bitpix_and_scaling(tmp_path: Path, bitpix: int, scaling: str) -> None:
    """Images astropy writes with each BITPIX and scaling (test_fits.py's cases)."""
    fits = pytest.importorskip("astropy.io.fits", reason="astropy is the reference reader")
    from tests.readers.test_fits import BITPIX, SCALINGS, _write_raw

    cards = SCALINGS[scaling]
    if (bitpix < 0 and "BLANK" in cards) or (bitpix == 64 and scaling == "unsigned"):
        pytest.skip("not a valid FITS image (BLANK on floats) or refused by the reader")
    rng = np.random.default_rng(bitpix % 97)
    dtype = np.dtype(BITPIX[bitpix])
    if dtype.kind == "f":
        raw = (rng.standard_normal((6, 7)) * 100).astype(dtype)
    else:
        info = np.iinfo(dtype)
        raw = rng.integers(max(info.min, -1000), min(info.max, 1000), (6, 7)).astype(dtype)
        raw[0, :3] = 3  # BLANK where it applies
    path = tmp_path / "img.fits"
    _write_raw(path, raw, cards)
    vds = vz.open_virtual_dataset(path)
    got = through_icechunk(vds, tmp_path)["PRIMARY"].values
    with fits.open(path) as hdus:
        expected = hdus[0].data
    assert got.shape == expected.shape
    if "scale_factor" in vds["PRIMARY"].attrs and expected.dtype.newbyteorder("=") == np.float32:
        assert got.dtype == np.float64  # the float32-packing limit
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        assert got.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, expected)
