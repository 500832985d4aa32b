"""Decoding stored chunk bytes into NumPy arrays, without zarr's per-chunk machinery.

A Zarr v3 codec chain maps 1:1 onto numcodecs: ``bytes`` becomes a NumPy view in the
stored byte order, ``numcodecs.*`` codecs and zarr's ``gzip``/``zstd``/``blosc``/``crc32c``
their numcodecs equivalents, ``vlen-utf8`` numcodecs' decoder. :func:`chunk_decoder`
builds a :class:`ChunkDecoder` for a chain, or returns None for any chain it cannot map
(the caller then reads that array through zarr).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
import numpy.typing as npt
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    VLenUTF8Codec,
    ZstdCodec,
)
from zarr.codecs.numcodecs._codecs import _NumcodecsArrayArrayCodec, _NumcodecsBytesBytesCodec
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.manifests.metadata import metadata_chunks

__all__ = ["ChunkDecoder", "chunk_decoder"]

_Step = Callable[[Any], Any]


def _crc32c_strip(data: Any) -> Any:
    import google_crc32c

    buf = memoryview(data).cast("B")
    inner, stored = buf[:-4], bytes(buf[-4:])
    computed = np.uint32(google_crc32c.value(bytes(inner))).tobytes()
    if computed != stored:
        raise ValueError(
            f"Stored and computed checksum do not match. Stored: {stored!r}. "
            f"Computed: {computed!r}."
        )
    return inner


def _inflate(size_hint: int) -> _Step:
    """``zlib.decompress`` with an output buffer sized for the chunk (no regrowth)."""

    def inflate(data: Any) -> bytes:
        return zlib.decompress(data, bufsize=size_hint)

    return inflate


def _bytes_step(codec: object, size_hint: int) -> _Step | None:
    """The decode function of one bytes-to-bytes codec, or None if not mapped."""
    if isinstance(codec, _NumcodecsBytesBytesCodec):
        if codec.codec_config.get("id") == "zlib":
            return _inflate(size_hint)
        return numcodecs.get_codec(dict(codec.codec_config)).decode  # type: ignore[no-any-return]
    if isinstance(codec, GzipCodec):
        return numcodecs.GZip(codec.level).decode  # type: ignore[no-any-return]
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum).decode  # type: ignore[no-any-return]
    if isinstance(codec, BloscCodec):
        return numcodecs.Blosc().decode  # type: ignore[no-any-return]
    if isinstance(codec, Crc32cCodec):
        return _crc32c_strip
    return None


@dataclass(frozen=True, slots=True)
class ChunkDecoder:
    """Decodes the stored bytes of one chunk into a NumPy array.

    Attributes
    ----------
    steps : tuple of callable
        Bytes-to-bytes decode functions, in decoding order.
    view_dtype : numpy.dtype
        The dtype of the stored values (stored byte order), for fixed-size types.
    dtype : numpy.dtype
        The dtype values decode to (the array's native dtype).
    vlen_utf8 : bool
        True if values are variable-length UTF-8 strings.
    array_steps : tuple of callable
        Array-to-array decode functions (numcodecs filters such as
        ``fixedscaleoffset``), applied to the reshaped stored values, in decoding order.
    """

    steps: tuple[_Step, ...]
    view_dtype: np.dtype[Any]
    dtype: np.dtype[Any]
    vlen_utf8: bool = False
    array_steps: tuple[_Step, ...] = ()

    def decode(self, data: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        """Decode one chunk's bytes into an array of ``shape``.

        Parameters
        ----------
        data : bytes-like
        shape : tuple of int
            The chunk's (stored) shape.

        Returns
        -------
        numpy.ndarray
            Possibly a read-only view of the decoded buffer, in the stored byte order.
        """
        for step in self.steps:
            data = step(data)
        if self.vlen_utf8:
            values = numcodecs.VLenUTF8().decode(data)
            return np.asarray(values).reshape(shape).astype(self.dtype, copy=False)
        out = np.frombuffer(data, dtype=self.view_dtype).reshape(shape)
        for step in self.array_steps:
            out = np.asarray(step(out)).reshape(shape)
        return out


def chunk_decoder(metadata: ArrayV3Metadata) -> ChunkDecoder | None:
    """A :class:`ChunkDecoder` for an array's codec chain, or None if not mappable.

    Parameters
    ----------
    metadata : zarr.core.metadata.v3.ArrayV3Metadata

    Returns
    -------
    ChunkDecoder or None
        None when the chain has sharding, an array-to-array codec other than a numcodecs
        filter, or a codec without a direct numcodecs equivalent; read such arrays
        through zarr.
    """
    codecs = tuple(metadata.codecs)
    dtype = np.dtype(metadata.data_type.to_native_dtype())
    array_steps: list[_Step] = []
    while codecs and isinstance(codecs[0], _NumcodecsArrayArrayCodec):
        if dtype.hasobject:
            return None
        numcodec = numcodecs.get_codec(dict(codecs[0].codec_config))
        array_steps.insert(0, numcodec.decode)
        astype = codecs[0].codec_config.get("astype")
        dtype = np.dtype(str(astype)) if astype else dtype  # what the next codec holds
        codecs = codecs[1:]
    if not codecs:
        return None
    chunks = metadata_chunks(metadata)
    largest = [c if isinstance(c, int) else max(c, default=1) for c in chunks]
    size_hint = max(16384, math.prod(largest) * dtype.itemsize)
    steps: list[_Step] = []
    for c in reversed(codecs[1:]):
        step = _bytes_step(c, size_hint)
        if step is None:
            return None
        steps.append(step)
    first = codecs[0]
    if isinstance(first, VLenUTF8Codec):
        return ChunkDecoder(tuple(steps), dtype, dtype, vlen_utf8=True)
    if not isinstance(first, BytesCodec) or dtype.hasobject:
        return None
    endian = getattr(first.endian, "value", first.endian)
    view = dtype.newbyteorder("<" if endian == "little" else ">") if endian else dtype
    final = np.dtype(metadata.data_type.to_native_dtype())
    return ChunkDecoder(tuple(steps), view, final, array_steps=tuple(array_steps))
