"""Zarr v3 codec chains as JSON, checked and completed the way zarr-python does, without zarr.

Our array metadata keeps its codecs as their JSON configurations. zarr-python parses a
chain into codec objects, *evolves* each against the data type it will see (a ``bytes``
codec forgets its endianness for one-byte types, ``numcodecs.shuffle`` learns its
``elementsize``, ``blosc`` its ``typesize``...), checks it (one array-to-bytes codec, a
``vlen-utf8`` serializer for strings, a ``transpose`` order per axis) and writes each
codec back with its defaults filled in. :func:`normalize_codecs` does the same for the
codecs zarr ships and ours, so that the chain we write is the one zarr writes;
``tests/manifests`` checks it against zarr for every chain the readers produce.

A codec name this module does not know (a third-party Zarr codec) is looked up in
zarr's registry -- the one place zarr is imported here, and only for such a name -- to
learn where it sits in a chain; its configuration is kept as given.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import numpy as np

from virtualizarr.errors import InvalidMetadataError
from virtualizarr.manifests.data_types import native_data_type

__all__ = ["CODEC_KINDS", "CodecKind", "codec_kind", "normalize_codecs"]

CodecKind = Literal["array", "array_bytes", "bytes"]
"""Where a codec sits: array-to-array, the serializer (array-to-bytes), bytes-to-bytes."""

_NUMCODECS_KINDS: Final[dict[str, CodecKind]] = {
    "adler32": "bytes",
    "astype": "array",
    "bitround": "array",
    "blosc": "bytes",
    "bz2": "bytes",
    "crc32": "bytes",
    "crc32c": "bytes",
    "delta": "array",
    "fixedscaleoffset": "array",
    "fletcher32": "bytes",
    "gzip": "bytes",
    "jenkins_lookup3": "bytes",
    "lz4": "bytes",
    "lzma": "bytes",
    "packbits": "array",
    "pcodec": "array_bytes",
    "quantize": "array",
    "shuffle": "bytes",
    "zfpy": "array_bytes",
    "zlib": "bytes",
    "zstd": "bytes",
    # ours (virtualizarr.manifests.chunk_codecs): bytes-to-bytes wrappers in zarr
    "virtualizarr_grib": "bytes",
    "imagecodecs_delta": "bytes",
    "imagecodecs_floatpred": "bytes",
    "imagecodecs_jpeg": "bytes",
    "imagecodecs_jpeg2k": "bytes",
    "imagecodecs_jpegxl": "bytes",
    "imagecodecs_lerc": "bytes",
    "imagecodecs_lzw": "bytes",
    "imagecodecs_packbits": "bytes",
    "imagecodecs_png": "bytes",
    "imagecodecs_webp": "bytes",
}

CODEC_KINDS: Final[dict[str, CodecKind]] = {
    "blosc": "bytes",
    "bytes": "array_bytes",
    "cast_value": "array",
    "crc32c": "bytes",
    "endian": "array_bytes",
    "gzip": "bytes",
    "scale_offset": "array",
    "sharding_indexed": "array_bytes",
    "transpose": "array",
    "vlen-bytes": "array_bytes",
    "vlen-utf8": "array_bytes",
    "zstd": "bytes",
    **{f"numcodecs.{k}": v for k, v in _NUMCODECS_KINDS.items()},
}
"""The Zarr v3 codecs zarr-python 3.4 ships (and ours), by where they sit in a chain."""

_BLOSC_CNAMES: Final = ("lz4", "lz4hc", "blosclz", "snappy", "zlib", "zstd")
_BLOSC_SHUFFLES: Final = ("noshuffle", "shuffle", "bitshuffle")


def _bad(message: str) -> InvalidMetadataError:
    return InvalidMetadataError(message)


@functools.lru_cache(maxsize=64)
def _zarr_codec_kind(name: str) -> CodecKind:
    """A third-party codec's kind, from zarr's registry (zarr is imported now)."""
    from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
    from zarr.registry import get_codec_class

    try:
        cls = get_codec_class(name)
    except Exception as e:  # zarr's UnknownCodecError, or an entry point that fails to load
        raise _bad(
            f"the codec {name!r} is not one Zarr knows ({e}); install the package that "
            "registers it (numcodecs, imagecodecs...)."
        ) from None
    if issubclass(cls, ArrayArrayCodec):
        return "array"
    if issubclass(cls, ArrayBytesCodec):
        return "array_bytes"
    if issubclass(cls, BytesBytesCodec):
        return "bytes"
    raise _bad(f"the codec {name!r} is registered with zarr as {cls!r}, which is not a codec")


def codec_kind(name: str) -> CodecKind:
    """Where a codec of this name sits in a Zarr v3 chain.

    Raises
    ------
    InvalidMetadataError
        If neither this module nor zarr's registry knows the name.

    Examples
    --------
    >>> codec_kind("numcodecs.delta")
    'array'
    >>> codec_kind("numcodecs.zlib")
    'bytes'
    """
    kind = CODEC_KINDS.get(name)
    return kind if kind is not None else _zarr_codec_kind(name)


_NEEDS_CONFIGURATION: Final = frozenset({"gzip", "zstd", "blosc", "transpose"})
"""Codecs zarr reads only with a ``configuration`` (as all ``numcodecs.*`` ones)."""


def _named(raw: Any) -> tuple[str, dict[str, Any]]:
    """A codec's name and configuration, read as zarr reads them (other keys ignored)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise _bad(f"a codec must be an object with a string 'name'; found {raw!r:.100}")
    name = str(raw["name"])
    if "configuration" not in raw:
        if name in _NEEDS_CONFIGURATION or name.startswith("numcodecs."):
            raise _bad(f"the codec {name!r} needs a 'configuration' object; found {raw!r:.100}")
        return name, {}
    conf = raw["configuration"]
    if not isinstance(conf, Mapping):
        raise _bad(f"the configuration of codec {name!r} must be an object; found {conf!r:.80}")
    return name, dict(conf)


def _only(name: str, conf: dict[str, Any], allowed: Iterable[str]) -> None:
    extra = set(conf) - set(allowed)
    if extra:
        raise _bad(f"codec {name!r} does not take the configuration keys {sorted(extra)}")


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise _bad(f"{what} must be an integer; found {value!r:.40}")
    return int(value)


def _has_endianness(dtype: np.dtype[Any]) -> bool:
    """Whether zarr's data type for ``dtype`` has a byte order (multi-byte scalars)."""
    if dtype.fields is not None or dtype.kind in "OTSVb":
        return False
    return dtype.kind in "UmM" or dtype.itemsize > 1


def _bytes_codec(conf: dict[str, Any], dtype: np.dtype[Any]) -> dict[str, Any]:
    _only("bytes", conf, ("endian",))
    endian = conf.get("endian")
    if endian not in (None, "big", "little"):
        raise _bad(f"the bytes codec's endian must be 'big' or 'little'; found {endian!r:.40}")
    if dtype.fields is not None:
        if any(dtype.fields[n][0].itemsize > 1 for n in dtype.names or ()):
            endian = endian or "little"  # zarr's reading of a legacy record without one
        else:
            endian = None
    elif not _has_endianness(dtype):
        endian = None
    elif endian is None:
        raise _bad(
            f"the bytes codec needs an 'endian' configuration for the multi-byte data type {dtype}"
        )
    if endian is None:
        return {"name": "bytes"}
    return {"name": "bytes", "configuration": {"endian": endian}}


def _blosc_codec(conf: dict[str, Any], dtype: np.dtype[Any]) -> dict[str, Any]:
    _only("blosc", conf, ("typesize", "cname", "clevel", "shuffle", "blocksize"))
    item = 1 if dtype.kind in "OT" else dtype.itemsize
    typesize = conf.get("typesize")
    typesize = item if typesize is None else _int(typesize, "blosc typesize")
    if typesize <= 0:
        raise _bad(f"blosc typesize must be greater than 0; found {typesize}")
    cname = conf.get("cname", "zstd")
    if cname not in _BLOSC_CNAMES:
        raise _bad(f"blosc cname must be one of {list(_BLOSC_CNAMES)}; found {cname!r:.40}")
    shuffle = conf.get("shuffle")
    if shuffle is None:
        shuffle = "bitshuffle" if item == 1 else "shuffle"
    elif shuffle not in _BLOSC_SHUFFLES:
        raise _bad(f"blosc shuffle must be one of {list(_BLOSC_SHUFFLES)}; found {shuffle!r:.40}")
    return {
        "name": "blosc",
        "configuration": {
            "typesize": typesize,
            "cname": cname,
            "clevel": _int(conf.get("clevel", 5), "blosc clevel"),
            "shuffle": shuffle,
            "blocksize": _int(conf.get("blocksize", 0), "blosc blocksize"),
        },
    }


def _numcodecs_codec(
    name: str, conf: dict[str, Any], dtype: np.dtype[Any]
) -> tuple[dict[str, Any], np.dtype[Any]]:
    """A ``numcodecs.<id>`` codec as zarr's wrapper writes it, and the dtype it passes on."""
    codec_id = name.removeprefix("numcodecs.")
    if "id" in conf:
        if conf["id"] != codec_id:
            raise _bad(f"codec {name!r} has the mismatched id {conf['id']!r:.40}")
        del conf["id"]
    out = dtype
    try:
        if codec_id == "shuffle" and conf.get("elementsize") is None:
            conf["elementsize"] = dtype.itemsize
        elif codec_id in ("fixedscaleoffset", "quantize") and conf.get("dtype") is None:
            conf["dtype"] = str(dtype)
        elif codec_id == "astype" and conf.get("decode_dtype") is None:
            conf["decode_dtype"] = str(dtype)
        if codec_id in ("delta", "fixedscaleoffset") and conf.get("astype"):
            out = native_data_type(np.dtype(conf["astype"]))
        elif codec_id == "astype":
            out = native_data_type(np.dtype(conf["encode_dtype"]))
        elif codec_id == "packbits":
            if dtype != np.dtype(bool):
                raise _bad(f"the packbits filter needs a bool array; the data type is {dtype}")
            out = np.dtype("uint8")
    except (TypeError, ValueError, KeyError) as e:
        raise _bad(f"invalid configuration {conf!r:.100} of codec {name!r} ({e})") from None
    return {"name": name, "configuration": conf}, out


def _codec(
    name: str, conf: dict[str, Any], dtype: np.dtype[Any], ndim: int
) -> tuple[dict[str, Any], np.dtype[Any]]:
    """One codec as zarr writes it after evolving it for ``dtype``; the dtype after it."""
    if name in ("bytes", "endian"):
        return _bytes_codec(conf, dtype), dtype
    if name in ("vlen-utf8", "vlen-bytes"):
        _only(name, conf, ())
        return {"name": name, "configuration": {}}, dtype
    if name == "transpose":
        _only(name, conf, ("order",))
        order = conf.get("order")
        if not isinstance(order, list | tuple) or not all(isinstance(a, int) for a in order):
            raise _bad(f"the transpose order must be a list of integers; found {order!r:.60}")
        if sorted(order) != list(range(ndim)):
            raise _bad(f"the transpose order {list(order)} is not a permutation of {ndim} axes")
        return {"name": "transpose", "configuration": {"order": tuple(order)}}, dtype
    if name == "gzip":
        _only(name, conf, ("level",))
        level = _int(conf.get("level", 5), "gzip level")
        if level not in range(10):
            raise _bad(f"gzip level must be 0 to 9; found {level}")
        return {"name": "gzip", "configuration": {"level": level}}, dtype
    if name == "zstd":
        _only(name, conf, ("level", "checksum"))
        level = _int(conf.get("level", 0), "zstd level")
        if level >= 23:
            raise _bad(f"zstd level must be at most 22; found {level}")
        checksum = conf.get("checksum", False)
        if not isinstance(checksum, bool):
            raise _bad(f"zstd checksum must be true or false; found {checksum!r:.40}")
        return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}, dtype
    if name == "crc32c":
        return {"name": "crc32c"}, dtype
    if name == "blosc":
        return _blosc_codec(conf, dtype), dtype
    if name.startswith("numcodecs.") and name in CODEC_KINDS:
        return _numcodecs_codec(name, conf, dtype)
    return {"name": name, "configuration": conf}, dtype


def normalize_codecs(
    codecs: Iterable[Any], dtype: np.dtype[Any], ndim: int
) -> tuple[dict[str, Any], ...]:
    """A codec chain as zarr-python writes it for an array of ``dtype`` and ``ndim`` axes.

    Parameters
    ----------
    codecs : iterable of mapping
        Codec configurations (``{"name": ..., "configuration": {...}}``), in encoding
        order.
    dtype : numpy.dtype
        The array's native data type (:func:`~virtualizarr.manifests.data_types.native_data_type`).
    ndim : int

    Returns
    -------
    tuple of dict
        Each codec with zarr's defaults filled in, as zarr's ``to_dict`` spells it.

    Raises
    ------
    InvalidMetadataError
        For an unknown codec, a malformed configuration, a chain without exactly one
        array-to-bytes codec, or strings without the ``vlen-utf8`` serializer.

    Examples
    --------
    >>> normalize_codecs([{"name": "bytes", "configuration": {"endian": "little"}},
    ...                   {"name": "numcodecs.shuffle", "configuration": {}}], np.dtype("uint8"), 1)
    ({'name': 'bytes'}, {'name': 'numcodecs.shuffle', 'configuration': {'elementsize': 1}})
    """
    out: list[dict[str, Any]] = []
    serializers: list[str] = []
    current = dtype
    for raw in codecs:
        name, conf = _named(raw)
        kind = codec_kind(name)
        if kind == "array_bytes":
            serializers.append(name)
        codec, current = _codec(name, conf, current, ndim)
        out.append(codec)
    if not serializers:
        raise _bad("a Zarr v3 codec chain needs an array-to-bytes codec (such as 'bytes').")
    if len(serializers) > 1:
        raise _bad(f"a Zarr v3 codec chain has one array-to-bytes codec; found {serializers}.")
    if dtype.kind in "OT" and serializers[0] != "vlen-utf8":
        raise _bad(
            f"a string array's array-to-bytes codec must be vlen-utf8; found {serializers[0]!r}."
        )
    return tuple(out)
