"""The FITS reader against astropy.io.fits (``fits.open(f)[i].data``, its defaults).

Files: astropy's own test data (``tests/data/fits``, see its README) and files astropy
writes here, covering every ``BITPIX`` with each kind of scaling. Every file goes through
kerchunk references and back, by the native path and by zarr, and through the kerchunk
reader (references opened as a virtual dataset again).
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

fits = pytest.importorskip("astropy.io.fits", reason="astropy is the reference FITS reader")

DATA = Path(__file__).resolve().parent.parent / "data" / "fits"
SAMPLES = [
    "arange.fits",
    "test0.fits",
    "o4sp040b0_raw.fits",
    "fixed-1890.fits",
    "scale.fits",
    "blank.fits",
    "btable.fits",
]


def _hdu_names(path: Path) -> list[str]:
    from virtualizarr.readers.fits.reader import _names

    with fits.open(path) as hdus:
        return _names(list(hdus))


def _compare(got: np.ndarray[Any, Any], expected: Any, where: str, exact: bool = True) -> None:
    if expected.dtype.names:  # a table: field by field, as astropy shows the columns
        assert got.dtype.names == expected.dtype.names, where
        for name in expected.dtype.names:
            np.testing.assert_array_equal(got[name], np.asarray(expected.base[name]), where)
        return
    if not exact:  # plain kerchunk JSON loses float32 scale_factor: xarray decodes to float64
        assert got.shape == expected.shape, where
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=where)
        return
    assert got.dtype == expected.dtype.newbyteorder("="), where
    assert got.shape == expected.shape, where
    np.testing.assert_array_equal(got, expected, where)


def _read_backs(vds: xr.Dataset, tmp_path: Path) -> list[xr.Dataset]:
    refs = vds.virtualize.to_kerchunk(format="dict")
    native = xr.open_dataset(refs, engine="virtualizarr")
    via_zarr = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": refs}},
    )
    json = tmp_path / "refs.json"
    vds.virtualize.to_kerchunk(str(json), format="json")
    again = open_virtual_dataset(json, loadable_variables=[])  # the kerchunk reader
    store = tmp_path / "store.zarr"
    again.virtualize.to_zarr(str(store))
    from_store = xr.open_dataset(store, engine="virtualizarr")
    return [native, via_zarr, from_store]


def _check(path: Path, tmp_path: Path) -> None:
    vds = open_virtual_dataset(path)
    names = _hdu_names(path)
    backs = _read_backs(vds, tmp_path)
    with fits.open(path) as hdus:
        for name in vds.data_vars:
            expected = hdus[names.index(name)].data
            for ds, how in zip(backs, ("native", "zarr", "store"), strict=True):
                if how == "zarr" and expected.dtype.names:
                    continue  # xarray's zarr backend casts record dtypes to raw void
                scaled = "scale_factor" in vds[name].attrs
                exact = how != "zarr" or not scaled
                _compare(ds[name].values, expected, f"{path.name} {name} {how}", exact)


@pytest.mark.parametrize("name", SAMPLES)
def test_astropy_samples_read_back_as_astropy_reads_them(name: str, tmp_path: Path) -> None:
    _check(DATA / name, tmp_path)


BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
SCALINGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "unsigned": {"BSCALE": 1, "BZERO": "unsigned"},
    "scaled": {"BSCALE": 0.37, "BZERO": -12.5},
    "blank": {"BLANK": 3},
    "scaled_blank": {"BSCALE": 2.5, "BZERO": 1.0, "BLANK": 3},
    "offset_only": {"BZERO": 100},
}


def _write_raw(path: Path, raw: np.ndarray[Any, Any], cards: dict[str, Any]) -> None:
    """An image HDU with the given stored values and scaling cards (astropy's header)."""
    bitpix = -8 * raw.dtype.itemsize if raw.dtype.kind == "f" else 8 * raw.dtype.itemsize
    hdr = fits.Header()
    hdr["SIMPLE"] = True
    hdr["BITPIX"] = bitpix
    hdr["NAXIS"] = raw.ndim
    for k, n in enumerate(reversed(raw.shape), start=1):
        hdr[f"NAXIS{k}"] = n
    for key, value in cards.items():
        if value == "unsigned":
            value = -128 if bitpix == 8 else 2 ** (bitpix - 1)
        hdr[key] = value
    data = raw.astype(raw.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(hdr.tostring().encode() + data + b"\0" * (-len(data) % 2880))


@pytest.mark.parametrize("bitpix", list(BITPIX))
@pytest.mark.parametrize("scaling", list(SCALINGS))
def test_every_bitpix_and_scaling_as_astropy(bitpix: int, scaling: str, tmp_path: Path) -> None:
    cards = SCALINGS[scaling]
    if bitpix < 0 and "BLANK" in cards:
        pytest.skip("BLANK applies to integer images only (FITS standard 4.4.2.5)")
    rng = np.random.default_rng(bitpix % 97)
    dtype = np.dtype(BITPIX[bitpix])
    if dtype.kind == "f":
        raw = (rng.standard_normal((6, 7)) * 100).astype(dtype)
    else:
        info = np.iinfo(dtype)
        raw = rng.integers(max(info.min, -1000), min(info.max, 1000), (6, 7)).astype(dtype)
        raw[0, :3] = 3  # BLANK where it applies
    path = tmp_path / f"img_{bitpix}_{scaling}.fits"
    _write_raw(path, raw, cards)
    if bitpix == 64 and scaling == "unsigned":
        with pytest.raises(UnsupportedFeatureError, match="64-bit unsigned"):
            open_virtual_dataset(path)
        return
    _check(path, tmp_path)


def test_hdus_become_variables_with_their_headers(tmp_path: Path) -> None:
    path = tmp_path / "multi.fits"
    primary = fits.PrimaryHDU()
    primary.header["OBSERVER"] = "Edwin"
    primary.header["COMMENT"] = "first line"
    primary.header["COMMENT"] = "second line"
    sci = fits.ImageHDU(np.arange(12, dtype=">f4").reshape(3, 4), name="SCI")
    sci.header["EXPTIME"] = 30.5
    err = fits.ImageHDU(np.ones((5, 4), ">i2"), name="ERR")
    cube = fits.ImageHDU(np.zeros((2, 3, 4), ">i4"))
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="id", format="J", array=np.arange(4)),
            fits.Column(name="flux", format="D", array=np.linspace(0, 1, 4)),
            fits.Column(name="band", format="2A", array=np.array(["g", "r", "i", "z"])),
        ],
        name="CAT",
    )
    fits.HDUList([primary, sci, err, cube, table]).writeto(path)
    vds = open_virtual_dataset(path)
    assert list(vds.data_vars) == ["SCI", "ERR", "HDU3", "CAT"]
    assert vds.attrs["OBSERVER"] == "Edwin"
    assert vds.attrs["COMMENT"] == "first line\nsecond line"
    assert vds["SCI"].dims == ("y", "x") and vds["SCI"].attrs["EXPTIME"] == 30.5
    # y is 3 long in SCI, 5 in ERR: ERR's dimensions take its name
    assert vds["ERR"].dims == ("y_ERR", "x_ERR")
    assert vds["HDU3"].dims == ("z", "y", "x")
    assert vds["CAT"].dims == ("CAT_row",)
    sci_chunk = vds["SCI"].data.manifest
    with fits.open(path) as hdus:
        assert sci_chunk.offsets.item() == hdus[1].fileinfo()["datLoc"]
        assert sci_chunk.lengths.item() == 3 * 4 * 4
    assert vds["SCI"].data.metadata.codecs[0]["configuration"]["endian"] == "big"  # kept
    _check(path, tmp_path)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("comp.fits", "tile-compressed image"),
        ("group.fits", "random groups"),
    ],
)
def test_unsupported_hdus_are_refused_by_name(name: str, match: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=match) as e:
        open_virtual_dataset(DATA / name)
    assert "drop_variables=" in str(e.value)


def test_converted_table_columns_are_refused_and_can_be_dropped(tmp_path: Path) -> None:
    path = tmp_path / "vector.fits"
    cols = [fits.Column(name="v", format="3E", array=np.zeros((2, 3), "f4"))]
    img = fits.ImageHDU(np.ones((2, 2), ">i2"), name="IMG")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="T"), img]).writeto(
        path
    )
    with pytest.raises(UnsupportedFeatureError, match="column 'v' \\(TFORM 3E"):
        open_virtual_dataset(path)
    assert list(open_virtual_dataset(path, drop_variables=["T"]).data_vars) == ["IMG"]
    ascii_path = tmp_path / "ascii.fits"
    ascii_cols = [fits.Column(name="a", format="I4", array=np.arange(3))]
    fits.HDUList([fits.PrimaryHDU(), fits.TableHDU.from_columns(ascii_cols)]).writeto(ascii_path)
    with pytest.raises(UnsupportedFeatureError, match="ASCII table"):
        open_virtual_dataset(ascii_path)


def test_truncated_and_garbled_files_are_our_errors(tmp_path: Path) -> None:
    data = (DATA / "test0.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) - 3000])
    with pytest.raises(FileFormatError):
        open_virtual_dataset(cut)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = " + b"x" * 2870)
    with pytest.raises(FileFormatError):
        open_virtual_dataset(bad)


def test_detection_options_and_missing_astropy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "image.dat"
    odd.write_bytes((DATA / "arange.fits").read_bytes())
    assert open_virtual_dataset(odd)["PRIMARY"].shape == (7, 10, 11)
    assert "PRIMARY" in open_virtual_dataset(DATA / "arange.fits", filetype="fit")
    with pytest.raises(UnexpectedOptionError):
        open_virtual_dataset(DATA / "arange.fits", reader_options={"ext": 1})
    with pytest.raises(UnsupportedFeatureError, match="no groups"):
        open_virtual_dataset(DATA / "arange.fits", group="SCI")
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    monkeypatch.setitem(sys.modules, "astropy.io.fits", None)
    with pytest.raises(MissingDependencyError, match="pip install astropy"):
        open_virtual_dataset(DATA / "arange.fits")


def test_values_are_astropys_with_cf_decoding_of_scaling() -> None:
    """The scaled image is virtual, encoded; xarray's CF decoding gives astropy's floats."""
    vds = open_virtual_dataset(DATA / "scale.fits")
    attrs = vds["PRIMARY"].attrs
    assert attrs["scale_factor"].dtype == np.float32 and "add_offset" in attrs
    assert vds["PRIMARY"].data.dtype == np.dtype("int16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = xr.open_dataset(vds.virtualize.to_kerchunk(format="dict"), engine="virtualizarr")
    with fits.open(DATA / "scale.fits") as hdus:
        np.testing.assert_array_equal(back["PRIMARY"].values, hdus[0].data)
