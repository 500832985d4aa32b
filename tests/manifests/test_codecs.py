"""The GRIB and TIFF codec names our metadata carries, as numcodecs and zarr resolve them."""

from __future__ import annotations

import subprocess
import sys

import numcodecs
import numpy as np
import pytest
from zarr.codecs.numcodecs import _NumcodecsBytesBytesCodec
from zarr.registry import get_codec_class

from virtualizarr.manifests.codecs import (
    GRIB_CODEC_ID,
    IMAGECODECS_IDS,
    GribCodec,
    codec_package,
    register_codecs,
)


def test_every_name_resolves_in_numcodecs_and_zarr() -> None:
    register_codecs()  # idempotent
    for codec_id in (GRIB_CODEC_ID, *IMAGECODECS_IDS):
        assert issubclass(get_codec_class(f"numcodecs.{codec_id}"), _NumcodecsBytesBytesCodec)
        assert codec_package(codec_id) in ("eccodes", "imagecodecs")
    pytest.importorskip("imagecodecs", reason="the stand-ins hand over to imagecodecs")
    lzw = numcodecs.get_codec({"id": "imagecodecs_lzw"})
    assert type(lzw).__module__ == "imagecodecs.numcodecs"


def test_grib_codec_config_round_trip_and_raw_chunks() -> None:
    codec = numcodecs.get_codec({"id": GRIB_CODEC_ID, "dtype": "<f4", "grid_2d": True})
    assert isinstance(codec, GribCodec)
    assert codec.get_config() == {"id": GRIB_CODEC_ID, "key": "values", "dtype": "<f4",
                                  "grid_2d": True}  # fmt: skip
    values = np.array([1.5, np.nan, -2.0], "<f4")
    # encoding stores values raw (a writer's fill chunk); decoding reads them back
    raw = codec.encode(values)
    np.testing.assert_array_equal(codec.decode(raw), values)
    np.testing.assert_array_equal(codec.decode(codec.encode(values.tobytes())), values)


def test_registration_imports_no_codec_library() -> None:
    script = (
        "import sys, numcodecs, virtualizarr\n"
        "print(sorted(m for m in ('eccodes', 'imagecodecs', 'gribapi') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
