"""The zarr face of our codecs: what the ``zarr.codecs`` entry points name.

zarr finds the Zarr v3 codecs ``numcodecs.virtualizarr_grib`` and
``numcodecs.imagecodecs_*`` through the package's entry points (``ZarrGribCodec``,
``ZarrImagecodecsLzw``... here), so that a Zarr reader decodes our references without
importing virtualizarr; importing this module imports zarr. virtualizarr itself never
imports it (``import virtualizarr`` stays free of zarr): where it hands metadata to zarr,
:func:`~virtualizarr.manifests.chunk_codecs.register_zarr_codecs` registers the same
classes for installs whose entry points are missing.
The codecs themselves live in :mod:`virtualizarr.manifests.chunk_codecs`; their names are
re-exported here for code written against earlier versions.
"""

from __future__ import annotations

from virtualizarr.manifests.chunk_codecs import (
    GRIB_CODEC_ID,
    IMAGECODECS_IDS,
    GribCodec,
    codec_package,
    register_numcodecs,
    register_zarr_codecs,
    zarr_codec_class,
)

__all__ = [
    "GRIB_CODEC_ID",
    "IMAGECODECS_IDS",
    "GribCodec",
    "ZarrGribCodec",
    "ZarrImagecodecsDelta",
    "ZarrImagecodecsFloatpred",
    "ZarrImagecodecsJpeg",
    "ZarrImagecodecsJpeg2k",
    "ZarrImagecodecsJpegxl",
    "ZarrImagecodecsLerc",
    "ZarrImagecodecsLzw",
    "ZarrImagecodecsPackbits",
    "ZarrImagecodecsPng",
    "ZarrImagecodecsWebp",
    "codec_package",
    "register_codecs",
    "register_numcodecs",
    "register_zarr_codecs",
]

ZarrGribCodec = zarr_codec_class(GRIB_CODEC_ID)
"""The Zarr v3 codec ``numcodecs.virtualizarr_grib`` (an entry point of the package)."""

# The TIFF codecs, ``numcodecs.imagecodecs_<id>`` (entry points of the package)
ZarrImagecodecsDelta = zarr_codec_class("imagecodecs_delta")
ZarrImagecodecsFloatpred = zarr_codec_class("imagecodecs_floatpred")
ZarrImagecodecsJpeg = zarr_codec_class("imagecodecs_jpeg")
ZarrImagecodecsJpeg2k = zarr_codec_class("imagecodecs_jpeg2k")
ZarrImagecodecsJpegxl = zarr_codec_class("imagecodecs_jpegxl")
ZarrImagecodecsLerc = zarr_codec_class("imagecodecs_lerc")
ZarrImagecodecsLzw = zarr_codec_class("imagecodecs_lzw")
ZarrImagecodecsPackbits = zarr_codec_class("imagecodecs_packbits")
ZarrImagecodecsPng = zarr_codec_class("imagecodecs_png")
ZarrImagecodecsWebp = zarr_codec_class("imagecodecs_webp")

register_codecs = register_zarr_codecs
"""Register our codec names with numcodecs and zarr (the earlier name)."""
