"""Fuzz corpus files of the GRIB, TIFF and FITS readers, written by the real libraries.

ecCodes (plus one of cfgrib's GRIB 1 samples), tifffile and astropy write small files;
:mod:`fuzzlib` mutates them. The bytes are deterministic for given library versions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"

FILES: dict[str, tuple[str, ...]] = {
    "grib": ("grib_ecc.grib2", "grib1_sfc.grib"),
    "tiff": ("tiff_tiles.tif", "tiff_geo_strips.tif"),
    "fits": ("fits_multi.fits", "fits_table.fits"),
}


def grib_files(d: Path) -> None:
    import eccodes
    import numpy as np

    rng = np.random.default_rng(7)
    with (d / "grib_ecc.grib2").open("wb") as f:
        for step in (0, 6):
            for level in (500, 850):
                h = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
                try:
                    eccodes.codes_set(h, "Ni", 6)
                    eccodes.codes_set(h, "Nj", 4)
                    eccodes.codes_set(h, "step", step)
                    eccodes.codes_set(h, "level", level)
                    eccodes.codes_set(h, "bitmapPresent", 1)
                    values = rng.random(24) * 50
                    values[3] = 9999.0  # the sample's missing value: a bitmap hole
                    eccodes.codes_set_values(h, values)
                    eccodes.codes_write(h, f)
                finally:
                    eccodes.codes_release(h)
    shutil.copyfile(DATA / "grib" / "regular_ll_sfc.grib", d / "grib1_sfc.grib")


def tiff_files(d: Path) -> None:
    import numpy as np
    import tifffile

    rng = np.random.default_rng(8)
    u16 = rng.integers(0, 4000, (40, 50), dtype=np.uint16)
    tifffile.imwrite(d / "tiff_tiles.tif", u16, tile=(16, 16), compression="zlib", predictor=2)
    geo = [
        (33550, 12, 3, (30.0, 30.0, 0.0), False),
        (33922, 12, 6, (0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0), False),
        (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32611), False),
        (42113, 2, None, "0", False),
    ]
    tifffile.imwrite(
        d / "tiff_geo_strips.tif",
        rng.random((30, 20)).astype(">f4"),
        rowsperstrip=7,
        byteorder=">",
        extratags=geo,
    )


def fits_files(d: Path) -> None:
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(9)
    primary = fits.PrimaryHDU(rng.integers(0, 60000, (6, 8)).astype(np.uint16))
    primary.header["OBSERVER"] = "fuzz"
    scaled = fits.ImageHDU(rng.integers(-100, 100, (3, 4, 5)).astype(">i2"), name="SCALED")
    scaled.header["BSCALE"] = 0.5
    scaled.header["BZERO"] = 10.0
    scaled.header["BLANK"] = -100
    fits.HDUList([primary, scaled]).writeto(d / "fits_multi.fits")
    cols = [
        fits.Column(name="id", format="J", array=np.arange(5)),
        fits.Column(name="flux", format="E", array=rng.random(5).astype("f4")),
        fits.Column(name="name", format="4A", array=np.array(["a", "bb", "ccc", "d", "e"])),
    ]
    table = fits.BinTableHDU.from_columns(cols, name="CAT")
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(d / "fits_table.fits")


def build(d: Path) -> None:
    """Write every file of :data:`FILES` into ``d``."""
    grib_files(d)
    tiff_files(d)
    fits_files(d)
