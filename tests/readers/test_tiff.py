"""The TIFF / GeoTIFF / COG reader against tifffile (values) and rioxarray (coordinates).

Files come from two real writers: GDAL (``tests/data/tiff``, see its README) and tifffile
(written here, one per layout and compression). Every file is virtualized, written as
references and read back through both read paths -- the native one
(``engine="virtualizarr"``) and zarr (fsspec's reference filesystem, or a manifest store
for rectilinear grids) -- and compared with ``tifffile``'s ``series.asarray(level=...)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

from virtualizarr import open_virtual_dataset
from virtualizarr.errors import (
    FileFormatError,
    MissingDependencyError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "tiff"
GDAL_FILES = sorted(DATA.glob("*.tif"))


def _tifffile_variants(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
    u16 = rng.integers(0, 4000, (70, 90), dtype=np.uint16)
    f32 = rng.random((70, 90)).astype(np.float32)
    cases: dict[str, tuple[Any, dict[str, Any]]] = {
        "be_delta_lzw_tiles": (u16, dict(byteorder=">", compression="lzw", predictor=2,
                                         tile=(32, 32))),
        "be_floatpred_zlib_strips": (f32, dict(byteorder=">", compression="zlib", predictor=3,
                                               rowsperstrip=10)),
        "floatpred_zstd_tiles": (f32, dict(compression="zstd", predictor=3, tile=(16, 48))),
        "delta_lzw_short_strip": (u16, dict(compression="lzw", predictor=2, rowsperstrip=16)),
        "planar_tiles": (np.moveaxis(img8, -1, 0), dict(planarconfig="separate",
                                                        photometric="rgb", tile=(32, 32),
                                                        compression="zlib")),
        "planar_strips_raw": (np.moveaxis(img8, -1, 0), dict(planarconfig="separate",
                                                             photometric="rgb", rowsperstrip=16)),
        "page_stack_packbits": (rng.integers(0, 100, (5, 70, 90), dtype=np.int16),
                                dict(tile=(32, 32), compression="packbits",
                                     photometric="minisblack")),
        "shaped_4d_lzma": (rng.integers(0, 100, (2, 3, 40, 50), dtype=np.int32),
                           dict(compression="lzma", rowsperstrip=8,
                                photometric="minisblack")),
        "webp": (img8, dict(compression="webp", tile=(32, 32), photometric="rgb")),
        "jpeg2000": (img8, dict(compression="jpeg2000", tile=(32, 32), photometric="rgb")),
        "png": (img8, dict(compression="png", tile=(32, 32), photometric="rgb")),
        "jpeg_short_strip": (img8, dict(compression="jpeg", rowsperstrip=16,
                                        photometric="rgb")),
        "jpeg_gray_tiles": (img8[..., 0], dict(compression="jpeg", tile=(16, 16))),
        "f64_raw_tiles": (rng.random((33, 47)), dict(tile=(16, 16))),
        "int8_raw_strip": (rng.integers(-100, 100, (30, 20), dtype=np.int8), {}),
        "raw_short_strip_be": (f32, dict(rowsperstrip=30, byteorder=">")),
        "bigtiff": (u16, dict(bigtiff=True, tile=(32, 32), compression="zlib")),
        "rgba_strips": (np.dstack([img8, img8[..., :1]]), dict(photometric="rgb",
                                                               extrasamples=["unassalpha"],
                                                               rowsperstrip=7,
                                                               compression="zlib")),
    }  # fmt: skip
    out = {}
    for name, (data, kwargs) in cases.items():
        out[name] = d / f"{name}.tif"
        tifffile.imwrite(out[name], data, **kwargs)
    with tifffile.TiffWriter(d / "pyramid_subifds.tif") as tw:
        tw.write(img8, tile=(32, 32), subifds=2, compression="zlib", photometric="rgb")
        tw.write(img8[::2, ::2], tile=(32, 32), subfiletype=1, compression="zlib",
                 photometric="rgb")  # fmt: skip
        tw.write(img8[::4, ::4], tile=(32, 32), subfiletype=1, compression="zlib",
                 photometric="rgb")  # fmt: skip
    out["pyramid_subifds"] = d / "pyramid_subifds.tif"
    with tifffile.TiffWriter(d / "two_series.tif") as tw:
        tw.write(u16, tile=(32, 32), compression="zlib")
        tw.write(img8, photometric="rgb", rowsperstrip=20)
    out["two_series"] = d / "two_series.tif"
    return out


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _tifffile_variants(tmp_path_factory.mktemp("tiff"))


def _groups(path: Path) -> list[tuple[str | None, int, int]]:
    """(group, series index, level) of every series and level tifffile sees."""
    out = []
    with tifffile.TiffFile(path) as tif:
        for si, s in enumerate(tif.series):
            for lvl in range(len(s.levels)):
                parts = [f"series_{si}" if si else "", f"overview_{lvl}" if lvl else ""]
                out.append(("/".join(p for p in parts if p) or None, si, lvl))
    return out


def _expected(path: Path, series: int, level: int) -> np.ndarray[Any, Any]:
    with tifffile.TiffFile(path) as tif:
        return np.asarray(tif.series[series].asarray(level=level))


def _read_back(vds: xr.Dataset, tmp_path: Path) -> list[xr.Dataset]:
    """The references read through the native path and through zarr."""
    try:
        refs = vds.virtualize.to_kerchunk(format="dict")
    except UnsupportedFeatureError:  # a rectilinear grid: only manifest stores hold it
        store = tmp_path / f"s{len(list(tmp_path.iterdir()))}.zarr"
        vds.virtualize.to_zarr(str(store))
        with zarr.config.set({"array.rectilinear_chunks": True}):
            native = xr.open_dataset(store, engine="virtualizarr").load()
        assert not all(isinstance(c, int) for c in vds["image"].data.chunk_sizes)
        return [native]
    native = xr.open_dataset(refs, engine="virtualizarr")
    via_zarr = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": refs}},
    )
    return [native, via_zarr]


def _check_file(path: Path, tmp_path: Path) -> None:
    for group, si, lvl in _groups(path):
        vds = open_virtual_dataset(path, group=group)
        expected = _expected(path, si, lvl)
        for ds in _read_back(vds, tmp_path):
            got = ds["image"].values
            assert got.dtype == expected.dtype, (path.name, group)
            assert got.shape == expected.shape, (path.name, group)
            np.testing.assert_array_equal(got, expected, err_msg=f"{path.name} {group}")


@pytest.mark.parametrize("path", GDAL_FILES, ids=lambda p: p.name)
def test_gdal_files_read_back_as_tifffile_reads_them(path: Path, tmp_path: Path) -> None:
    _check_file(path, tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "be_delta_lzw_tiles", "be_floatpred_zlib_strips", "floatpred_zstd_tiles",
        "delta_lzw_short_strip", "planar_tiles", "planar_strips_raw", "page_stack_packbits",
        "shaped_4d_lzma", "webp", "jpeg2000", "png", "jpeg_short_strip", "jpeg_gray_tiles",
        "f64_raw_tiles", "int8_raw_strip", "raw_short_strip_be", "bigtiff", "rgba_strips",
        "pyramid_subifds", "two_series",
    ],
)  # fmt: skip
def test_tifffile_layouts_read_back_as_tifffile_reads_them(
    name: str, variants: dict[str, Path], tmp_path: Path
) -> None:
    _check_file(variants[name], tmp_path)


def test_chunks_are_the_files_tiles_and_strips(variants: dict[str, Path]) -> None:
    tiles = open_virtual_dataset(variants["be_delta_lzw_tiles"])["image"].data
    assert tiles.chunk_sizes == (32, 32)
    with tifffile.TiffFile(variants["be_delta_lzw_tiles"]) as tif:
        page = tif.pages[0]
        assert tiles.manifest.offsets.ravel().tolist() == list(page.dataoffsets)
        assert tiles.manifest.lengths.ravel().tolist() == list(page.databytecounts)
    # an uncompressed image with a short last strip: runs of gcd(30, 70) = 10 rows
    raw = open_virtual_dataset(variants["raw_short_strip_be"])["image"].data
    assert raw.chunk_sizes == (10, 90)
    assert raw.dtype == np.dtype("float32")
    assert raw.metadata.codecs[0]["configuration"]["endian"] == "big"
    # a compressed one: its strips, the last shorter (rectilinear)
    lzw = open_virtual_dataset(variants["delta_lzw_short_strip"])["image"].data
    assert lzw.chunk_sizes == ((16, 16, 16, 16, 6), 90)


def test_sparse_tiles_are_missing_chunks_reading_as_nodata() -> None:
    vds = open_virtual_dataset(DATA / "cog_deflate_u16.tif")
    m = vds["image"].data.manifest
    assert (m.path_ids < 0).sum() > 0  # GDAL left the empty tiles out
    assert vds["image"].data.metadata.fill_value == 0
    assert vds["image"].attrs["GDAL_NODATA"] == "0"


@pytest.mark.parametrize("path", GDAL_FILES, ids=lambda p: p.name)
@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray's
def test_geotiff_coordinates_are_rioxarrays(path: Path) -> None:
    rioxarray = pytest.importorskip("rioxarray", reason="rioxarray gives the reference coordinates")
    for group, _, lvl in _groups(path):
        expected = rioxarray.open_rasterio(path, overview_level=lvl - 1 if lvl else None)
        vds = open_virtual_dataset(path, group=group)
        np.testing.assert_array_equal(vds["x"].values, expected["x"].values)
        np.testing.assert_array_equal(vds["y"].values, expected["y"].values)
        assert vds["image"].attrs["crs"] == expected.rio.crs.to_string()
        assert vds.indexes["x"].equals(expected.indexes["x"])
        expected.close()


def test_geotiff_attributes_and_round_trip_identical(tmp_path: Path) -> None:
    path = DATA / "geographic_zstd_f32.tif"
    vds = open_virtual_dataset(path)
    attrs = vds["image"].attrs
    assert attrs["crs"] == "EPSG:4326"
    assert attrs["GTModelTypeGeoKey"] == 2
    assert attrs["GDAL_NODATA"] == "-9999"
    np.testing.assert_array_equal(attrs["transform"], [0.01, 0, 10.0, 0, -0.01, 50.0])
    assert vds.x.attrs["standard_name"] == "longitude"
    vds.virtualize.to_kerchunk(str(tmp_path / "refs.json"), format="json")
    back = xr.open_dataset(tmp_path / "refs.json", engine="virtualizarr")
    loaded = vds.copy()
    loaded["image"] = (vds["image"].dims, _expected(path, 0, 0), vds["image"].attrs)
    xr.testing.assert_identical(back, loaded)


def test_detection_by_magic_bytes_and_aliases(variants: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "image.data"  # no .tif suffix: detected by its first bytes
    odd.write_bytes(variants["bigtiff"].read_bytes())
    assert open_virtual_dataset(odd)["image"].shape == (70, 90)
    for alias in ("tiff", "geotiff", "cog", "tif"):
        assert "image" in open_virtual_dataset(variants["png"], filetype=alias)


def test_groups_errors_and_options(variants: dict[str, Path]) -> None:
    with pytest.raises(FileFormatError, match="overview_1") as e:
        open_virtual_dataset(variants["pyramid_subifds"], group="overview_9")
    assert "overview_2" in str(e.value)
    with pytest.raises(VirtualiZarrError, match="takes no reader options"):
        open_virtual_dataset(variants["png"], reader_options={"x": 1})
    ds = open_virtual_dataset(variants["two_series"], group="series_1")
    assert dict(ds.sizes) == {"y": 70, "x": 90, "band": 3}
    assert "image" not in open_virtual_dataset(variants["png"], drop_variables=["image"])


def test_unsupported_features_are_refused_by_name(tmp_path: Path) -> None:
    bits = tmp_path / "bilevel.tif"
    tifffile.imwrite(bits, np.zeros((8, 16), bool), photometric="minisblack")
    with pytest.raises(UnsupportedFeatureError, match="1-bit samples are packed"):
        open_virtual_dataset(bits)
    ccitt = tmp_path / "deflate_then_ccitt.tif"
    tifffile.imwrite(ccitt, np.zeros((8, 16), np.uint8), compression="zlib")
    data = bytearray(ccitt.read_bytes())
    with tifffile.TiffFile(ccitt) as tif:
        tag = tif.pages[0].tags["Compression"]
        data[tag.valueoffset : tag.valueoffset + 2] = (3).to_bytes(2, "little")
    ccitt.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFeatureError, match="TIFF compression 3"):
        open_virtual_dataset(ccitt)


def test_truncated_file_is_our_error(variants: dict[str, Path], tmp_path: Path) -> None:
    data = variants["be_delta_lzw_tiles"].read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError):
        open_virtual_dataset(cut)


def test_missing_tifffile_names_the_package(
    monkeypatch: pytest.MonkeyPatch, variants: dict[str, Path]
) -> None:
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(MissingDependencyError, match="pip install tifffile"):
        open_virtual_dataset(variants["png"])


def test_missing_imagecodecs_names_the_package(
    monkeypatch: pytest.MonkeyPatch, variants: dict[str, Path]
) -> None:
    import numcodecs

    from virtualizarr.manifests import chunk_codecs as our_codecs

    vds = open_virtual_dataset(variants["webp"])
    refs = vds.virtualize.to_kerchunk(format="dict")
    stand_in = type("Lazy", (our_codecs._LazyImagecodecs,), {"codec_id": "imagecodecs_webp"})
    monkeypatch.setitem(numcodecs.registry.codec_registry, "imagecodecs_webp", stand_in)
    monkeypatch.setitem(sys.modules, "imagecodecs.numcodecs", None)
    with pytest.raises(MissingDependencyError, match="pip install imagecodecs"):
        xr.open_dataset(refs, engine="virtualizarr")["image"].load()


def test_adjacent_geotiffs_combine_by_coords_into_a_mosaic(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    parts, images = [], []
    for i in range(2):  # 64 columns of 30 m each: the second starts where the first ends
        img = rng.integers(0, 999, (48, 64), dtype=np.uint16)
        tags = [
            (33550, 12, 3, (30.0, 30.0, 0.0), False),
            (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0 + 64 * 30.0 * i, 4600000.0, 0.0), False),
            (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), False),
        ]
        path = tmp_path / f"part_{i}.tif"
        tifffile.imwrite(path, img, tile=(16, 32), compression="zlib", extratags=tags)
        parts.append(open_virtual_dataset(path))
        images.append(img)
    mosaic = xr.combine_by_coords(
        parts, coords="minimal", compat="override", data_vars="minimal",
        combine_attrs="drop_conflicts",
    )  # fmt: skip
    assert dict(mosaic.sizes) == {"y": 48, "x": 128}
    assert mosaic["image"].attrs["crs"] == "EPSG:32633"
    back = xr.open_dataset(mosaic.virtualize.to_kerchunk(format="dict"), engine="virtualizarr")
    np.testing.assert_array_equal(back["image"].values, np.concatenate(images, axis=1))
    np.testing.assert_array_equal(back["x"].values, 500015.0 + 30.0 * np.arange(128))
