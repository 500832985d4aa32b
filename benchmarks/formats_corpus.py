"""Write the GRIB, TIFF and FITS files of the peer benchmark (``run_peers.py``).

    python benchmarks/formats_corpus.py DIR

* ``DIR/grib/*.grib2``: 8 forecasts, each 2 parameters x 5 pressure levels x 4 steps (40
  GRIB 2 messages, simple packing, 1-degree global grid), written by ecCodes;
* ``DIR/tiff/*.tif``: 50 GeoTIFF scenes of 8192 x 8192 uint16 (Landsat/Sentinel-2
  sized), 256 x 256 deflate tiles with the horizontal predictor (1024 tiles each),
  written by tifffile with GeoTIFF tags;
* ``DIR/tiff_small/*.tif``: 20 small GeoTIFFs of 2048 x 2048 (64 tiles each), alike;
* ``DIR/fits/*.fits``: 50 FITS files, each a primary header and 4 image extensions of
  512 x 512 16-bit unsigned integers (``BZERO = 32768``), written by astropy.

Values are seeded, so a corpus is the same on every machine with the same libraries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

GRIB_FILES, TIFF_SCENES, TIFF_FILES, FITS_FILES = 8, 50, 20, 50


def grib(d: Path) -> None:
    import eccodes

    rng = np.random.default_rng(1)
    d.mkdir(parents=True, exist_ok=True)
    base = np.cos(np.radians(np.linspace(90, -90, 181)))[:, None] * np.ones((1, 360))
    for i in range(GRIB_FILES):
        with (d / f"fc_{i:02d}.grib2").open("wb") as f:
            for param in (130, 131):  # temperature, u wind
                for level in (1000, 850, 700, 500, 250):
                    for step in (0, 6, 12, 18):
                        h = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
                        try:
                            for key, value in (
                                ("Ni", 360), ("Nj", 181), ("iDirectionIncrementInDegrees", 1.0),
                                ("jDirectionIncrementInDegrees", 1.0),
                                ("latitudeOfFirstGridPointInDegrees", 90.0),
                                ("longitudeOfFirstGridPointInDegrees", 0.0),
                                ("latitudeOfLastGridPointInDegrees", -90.0),
                                ("longitudeOfLastGridPointInDegrees", 359.0),
                                ("paramId", param), ("level", level), ("step", step),
                                ("dataDate", 20260101 + i), ("bitsPerValue", 16),
                            ):  # fmt: skip
                                eccodes.codes_set(h, key, value)
                            values = 250 + 40 * base + rng.standard_normal(base.shape)
                            eccodes.codes_set_values(h, values.ravel())
                            eccodes.codes_write(h, f)
                        finally:
                            eccodes.codes_release(h)


def _geotiffs(d: Path, n: int, size: int, noise: int) -> None:
    import tifffile

    rng = np.random.default_rng(size)
    d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = (yy + xx * (i + 1)) % 4000 + rng.integers(0, noise + 1, yy.shape)
        img = img.astype(np.uint16)
        tags = [
            (33550, 12, 3, (10.0, 10.0, 0.0), False),
            (33922, 12, 6, (0.0, 0.0, 0.0, 300000.0 + 10 * size * i, 5000000.0, 0.0), False),
            (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), False),
        ]
        tifffile.imwrite(
            d / f"tile_{i:02d}.tif", img, tile=(256, 256), compression="zlib", predictor=2,
            extratags=tags, metadata=None,  # no tifffile JSON description, as GDAL writes
        )  # fmt: skip


def tiff(d: Path) -> None:
    """Scenes: 8192 x 8192 pixels in 1024 tiles each (Landsat/Sentinel-2-sized)."""
    _geotiffs(d, TIFF_SCENES, 8192, 0)  # smooth: ~1 MB per file


def tiff_small(d: Path) -> None:
    """Small files: 2048 x 2048 pixels in 64 tiles each."""
    _geotiffs(d, TIFF_FILES, 2048, 7)


def fits(d: Path) -> None:
    from astropy.io import fits as afits

    rng = np.random.default_rng(3)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(FITS_FILES):
        hdus = [afits.PrimaryHDU()]
        hdus[0].header["OBSERVER"] = "bench"
        for k in range(4):
            img = rng.integers(0, 65535, (512, 512)).astype(np.uint16)
            hdus.append(afits.ImageHDU(img, name=f"CCD{k}"))
        afits.HDUList(hdus).writeto(d / f"exp_{i:03d}.fits", overwrite=True)


def main(root: str) -> None:
    out = Path(root)
    grib(out / "grib")
    tiff(out / "tiff")
    tiff_small(out / "tiff_small")
    fits(out / "fits")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vz-bench-grib-tiff-fits")
