"""The codecs GRIB and TIFF chunks need, registered with numcodecs (and zarr, on demand).

A GRIB message or a JPEG/LZW tile is one chunk, decoded by a codec. Both read paths must
know these codecs by the names the metadata carries: the native read path
(:mod:`virtualizarr.reading.decode`, through numcodecs' registry) and zarr (a Zarr v3
codec ``numcodecs.<id>`` resolves through zarr's registry to a wrapper that asks numcodecs
for ``<id>``). Kerchunk's Zarr v2 metadata names the same codecs by their numcodecs id.

* ``virtualizarr_grib`` (:class:`GribCodec`): one GRIB message to its values with ecCodes,
  exactly as cfgrib decodes them (missing points NaN, alternative row scanning undone).
* ``imagecodecs_*`` (:data:`IMAGECODECS_IDS`): TIFF compressions and predictors, decoded by
  imagecodecs' own numcodecs classes (``imagecodecs.numcodecs``).

Registration costs nothing at import: numcodecs gets small stand-ins whose
``from_config`` imports the real implementation on first use (and raises
:class:`~virtualizarr.errors.MissingDependencyError` naming the package to install when
it is missing). zarr is not imported here: :func:`register_zarr_codecs` gives it wrapper
classes, for names no installed package already provides, when something is about to
hand our metadata to zarr (:meth:`~virtualizarr.manifests.ArrayMetadata.to_zarr`, the
:class:`~virtualizarr.reading.store.ManifestStore`). ecCodes and imagecodecs are imported
only when a chunk is decoded. (:mod:`virtualizarr.manifests.codecs` is the zarr-facing
module the ``zarr.codecs`` entry point names.)
"""

from __future__ import annotations

import functools
import threading
from typing import Any, ClassVar, Final

import numcodecs
import numpy as np
from numcodecs.abc import Codec
from numcodecs.registry import codec_registry, entries

from virtualizarr.errors import MissingDependencyError

__all__ = [
    "GRIB_CODEC_ID",
    "IMAGECODECS_IDS",
    "GribCodec",
    "codec_package",
    "register_numcodecs",
    "register_zarr_codecs",
    "zarr_codec_class",
]

GRIB_CODEC_ID: Final = "virtualizarr_grib"
"""numcodecs id of :class:`GribCodec` (Zarr v3 name ``numcodecs.virtualizarr_grib``)."""

IMAGECODECS_IDS: Final = (
    "imagecodecs_delta",
    "imagecodecs_floatpred",
    "imagecodecs_jpeg",
    "imagecodecs_jpeg2k",
    "imagecodecs_jpegxl",
    "imagecodecs_lerc",
    "imagecodecs_lzw",
    "imagecodecs_packbits",
    "imagecodecs_png",
    "imagecodecs_webp",
)
"""imagecodecs' numcodecs ids that TIFF chunks may need (deflate, zstd and LZMA use
numcodecs' own ``zlib``, ``zstd`` and ``lzma``)."""

_PACKAGES: Final = {GRIB_CODEC_ID: "eccodes", **dict.fromkeys(IMAGECODECS_IDS, "imagecodecs")}
_EXTRAS: Final = {"eccodes": "grib", "imagecodecs": "tiff"}


def codec_package(codec_id: str) -> str | None:
    """The package that implements one of our codecs (``"eccodes"``, ``"imagecodecs"``).

    Examples
    --------
    >>> codec_package("imagecodecs_jpeg")
    'imagecodecs'
    >>> codec_package("zlib") is None
    True
    """
    return _PACKAGES.get(codec_id)


def _missing(codec_id: str, error: ImportError) -> MissingDependencyError:
    package = _PACKAGES[codec_id]
    return MissingDependencyError(
        f"decoding chunks with the codec {codec_id!r} needs the package {package!r}, which "
        f"could not be imported ({error}). Install it with `pip install {package}` (or "
        f"`pip install virtualizarr[{_EXTRAS[package]}]`)."
    )


# ---------------------------------------------------------------------- GRIB
_ECCODES_LOCK = threading.RLock()
"""ecCodes handles are not shared between threads, but its global state is: one lock."""

_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
"""cfgrib's missing-value indicator: the missing points of a field decode to it, then NaN."""


class GribCodec(Codec):  # type: ignore[misc]
    """Decode one GRIB message (edition 1 or 2) to the values cfgrib shows.

    ``key="values"`` gives the field as cfgrib's ``OnDiskArray`` does: missing points
    (bitmap) are NaN, rows of an alternative-row-scanning grid are put in order, and the
    values are cast to ``dtype``. Other keys (``"latitudes"``, ``"longitudes"``) give that
    ecCodes array as it is, cast to ``dtype``.

    Encoding does not make GRIB: it stores the values raw (little-endian ``dtype``), and
    decoding accepts such raw chunks too (so a writer can materialize a missing field as
    an inline chunk of fill values).

    Parameters
    ----------
    key : str
        The ecCodes array key to decode (default ``"values"``).
    dtype : str
        The NumPy dtype of the decoded values (default ``"<f4"``, cfgrib's).
    grid_2d : bool
        True when the field is laid out as rows (cfgrib's ``(y, x)`` or ``(latitude,
        longitude)`` grids): the rows of a message with ``alternativeRowScanning`` are
        then put in order, as cfgrib does; False for one-dimensional (reduced) grids.

    Examples
    --------
    >>> GribCodec(dtype="<f4").decode(np.zeros(2, "<f4").tobytes()).tolist()
    [0.0, 0.0]
    """

    codec_id = GRIB_CODEC_ID

    def __init__(self, key: str = "values", dtype: str = "<f4", grid_2d: bool = False) -> None:
        self.key = str(key)
        self.dtype = np.dtype(dtype).str
        self.grid_2d = bool(grid_2d)

    def encode(self, buf: Any) -> bytes:
        """Store values raw (no GRIB is written)."""
        if isinstance(buf, np.ndarray) and buf.dtype.kind in "iuf":
            return np.ascontiguousarray(buf, dtype=self.dtype).tobytes()
        return bytes(memoryview(buf).cast("B"))

    def decode(self, buf: Any, out: Any = None) -> Any:
        """The values of one GRIB message (or raw values, as :meth:`encode` stores them)."""
        data = memoryview(buf).cast("B")
        if bytes(data[:4]) != b"GRIB":
            values = np.frombuffer(data, dtype=self.dtype)
        else:
            values = self._decode_message(bytes(data))
        if out is not None:
            return numcodecs.compat.ndarray_copy(values, out)
        return values

    def _decode_message(self, message: bytes) -> Any:
        try:
            import eccodes
        except ImportError as e:
            raise _missing(GRIB_CODEC_ID, e) from e
        with _ECCODES_LOCK:
            handle = eccodes.codes_new_from_message(message)
            nx = 0
            try:
                if self.key == "values":
                    eccodes.codes_set(handle, "missingValue", _FLOAT32_MAX)
                    values = eccodes.codes_get_array(handle, "values")
                    if (
                        self.grid_2d
                        and eccodes.codes_is_defined(handle, "alternativeRowScanning")
                        and eccodes.codes_get(handle, "alternativeRowScanning", int)
                    ):
                        nx = int(eccodes.codes_get(handle, "Nx", int))
                else:
                    values = eccodes.codes_get_array(handle, self.key)
            finally:
                eccodes.codes_release(handle)
        values = np.asarray(values)
        if self.key == "values":
            if nx > 0 and values.size % nx == 0:
                rows = values.reshape(-1, nx).copy()
                rows[1::2, :] = rows[1::2, ::-1]
                values = rows.ravel()
            values = values.astype(self.dtype)
            values[values == np.float32(_FLOAT32_MAX)] = np.nan
            return values
        return values.astype(self.dtype)

    def get_config(self) -> dict[str, Any]:
        """The codec's configuration (JSON)."""
        config: dict[str, Any] = {"id": self.codec_id, "key": self.key, "dtype": self.dtype}
        if self.grid_2d:
            config["grid_2d"] = True
        return config

    def __repr__(self) -> str:
        return f"GribCodec(key={self.key!r}, dtype={self.dtype!r}, grid_2d={self.grid_2d})"


# ---------------------------------------------------------------------- imagecodecs
class _LazyImagecodecs(Codec):  # type: ignore[misc]
    """Stands in for an imagecodecs codec in numcodecs' registry until it is used."""

    codec_id: ClassVar[str] = ""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """The real imagecodecs codec for ``config`` (imagecodecs is imported now)."""
        try:
            import imagecodecs.numcodecs
        except ImportError as e:
            raise _missing(cls.codec_id, e) from e
        real: type[Codec] = codec_registry.get(cls.codec_id, cls)
        if real is cls:  # replace the stand-ins by imagecodecs' classes, once
            for name in imagecodecs.numcodecs.__all__:
                found = getattr(imagecodecs.numcodecs, name)
                codec_id = getattr(found, "codec_id", None)
                if codec_id in IMAGECODECS_IDS and codec_registry.get(codec_id) is not found:
                    numcodecs.register_codec(found, codec_id)
            real = codec_registry[cls.codec_id]
        if real is cls or issubclass(real, _LazyImagecodecs):
            raise _missing(cls.codec_id, ImportError("imagecodecs.numcodecs lacks it"))
        return real.from_config(config)

    def encode(self, buf: Any) -> Any:  # pragma: no cover - never instantiated
        raise NotImplementedError

    def decode(self, buf: Any, out: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError


@functools.cache
def zarr_codec_class(codec_id: str) -> type[Any]:
    """The Zarr v3 codec class ``numcodecs.<codec_id>``: a bytes-to-bytes wrapper that asks
    numcodecs for ``codec_id`` (one class per id; zarr is imported now).

    Examples
    --------
    >>> zarr_codec_class("virtualizarr_grib").codec_name
    'numcodecs.virtualizarr_grib'
    """
    from zarr.codecs.numcodecs import _NumcodecsBytesBytesCodec

    name = "".join(part.capitalize() for part in codec_id.split("_"))
    cls = type(name, (_NumcodecsBytesBytesCodec,), {}, codec_name=codec_id)
    cls.__module__ = "virtualizarr.manifests.codecs"
    return cls


_registered = False
_zarr_registered = False
_lock = threading.Lock()


def register_numcodecs() -> None:
    """Make our codec ids known to numcodecs (idempotent, imports nothing heavy).

    numcodecs gets :class:`GribCodec` and, for each imagecodecs id it does not know yet, a
    stand-in that loads ``imagecodecs.numcodecs`` on first use.

    Examples
    --------
    >>> register_numcodecs()
    >>> numcodecs.get_codec({"id": "virtualizarr_grib"}).key
    'values'
    """
    global _registered
    with _lock:
        if _registered:
            return
        if GRIB_CODEC_ID not in codec_registry:
            numcodecs.register_codec(GribCodec)
        for codec_id in IMAGECODECS_IDS:
            if codec_id not in codec_registry and codec_id not in entries:
                stand_in = type(f"Lazy_{codec_id}", (_LazyImagecodecs,), {"codec_id": codec_id})
                numcodecs.register_codec(stand_in, codec_id)
        _registered = True


def register_zarr_codecs() -> None:
    """Make our codec names (``numcodecs.virtualizarr_grib``, ``numcodecs.imagecodecs_*``)
    known to zarr, and our ids to numcodecs (idempotent; imports zarr).

    zarr gets a bytes-to-bytes wrapper (:func:`zarr_codec_class`) for each name no
    installed package registers (an entry point, such as ours for GRIB, is left to zarr).

    Examples
    --------
    >>> register_zarr_codecs()
    >>> from zarr.registry import get_codec_class
    >>> get_codec_class("numcodecs.imagecodecs_lzw").codec_name
    'numcodecs.imagecodecs_lzw'
    """
    global _zarr_registered
    register_numcodecs()
    if _zarr_registered:
        return
    from zarr.registry import _codec_registries, register_codec

    with _lock:
        for codec_id in (GRIB_CODEC_ID, *IMAGECODECS_IDS):
            name = f"numcodecs.{codec_id}"
            known = _codec_registries.get(name)
            if known is None or not (known or known.lazy_load_list):
                register_codec(name, zarr_codec_class(codec_id))
        _zarr_registered = True


register_numcodecs()
