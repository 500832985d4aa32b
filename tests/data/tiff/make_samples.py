"""Write the GeoTIFF samples of this directory with GDAL (through rasterio).

Run from the repository root: ``python tests/data/tiff/make_samples.py``. The pixel
values come from a seeded generator, so the files are reproducible for a given GDAL.
"""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent


def write(name, data, driver="GTiff", crs="EPSG:32633", transform=None, **options):
    transform = transform or from_origin(500000.0, 4600000.0, 30.0, 30.0)
    with rasterio.open(
        HERE / name, "w", driver=driver, height=data.shape[1], width=data.shape[2],
        count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform, **options,
    ) as dst:  # fmt: skip
        dst.write(data)


def main():
    rng = np.random.default_rng(17)
    u16 = rng.integers(0, 4000, (1, 96, 128)).astype("uint16")
    u16[0, :40, :40] = 0  # a nodata corner: GDAL leaves its tiles out of the file
    rgb = (np.indices((96, 128)).sum(0) % 256).astype("uint8")[None].repeat(3, 0)
    f32 = rng.random((2, 70, 50)).astype("float32")
    write("cog_deflate_u16.tif", u16, driver="COG", compress="DEFLATE", predictor=2,
          blocksize=32, overview_resampling="nearest", nodata=0, sparse_ok=True)  # fmt: skip
    write("cog_jpeg_rgb.tif", rgb, driver="COG", compress="JPEG", blocksize=32,
          overview_resampling="nearest")  # fmt: skip
    write("striped_lzw_point.tif", u16, compress="LZW", blockysize=7, AREA_OR_POINT="Point")
    write("geographic_zstd_f32.tif", f32, tiled=True, blockxsize=16, blockysize=16,
          compress="ZSTD", predictor=3, nodata=-9999.0, crs="EPSG:4326",
          transform=from_origin(10.0, 50.0, 0.01, 0.01))  # fmt: skip


if __name__ == "__main__":
    main()
