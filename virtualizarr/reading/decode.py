"""Decoding stored chunk bytes into NumPy arrays, without zarr's per-chunk machinery.

A Zarr v3 codec chain maps 1:1 onto numcodecs: ``bytes`` becomes a NumPy view in the
stored byte order, ``numcodecs.*`` codecs and zarr's ``gzip``/``zstd``/``blosc``/``crc32c``
their numcodecs equivalents, ``vlen-utf8`` numcodecs' decoder, ``transpose`` a NumPy
transpose. :func:`chunk_decoder` builds a :class:`ChunkDecoder` for a chain from the
metadata's codec configurations alone (zarr is not imported), or returns None for any
chain it cannot map; :class:`ZarrChunkDecoder` then decodes each chunk with zarr itself
(imported on first use), the same interface for the read paths.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numcodecs
import numpy as np
import numpy.typing as npt

from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.chunk_grids import RegularChunkGrid
from virtualizarr.manifests.codec_chain import codec_kind
from virtualizarr.manifests.metadata import metadata_chunks

__all__ = ["ChunkDecoder", "Decoder", "ZarrChunkDecoder", "chunk_decoder", "decoder_for"]

_Step = Callable[[Any], Any]


class Decoder(Protocol):
    """What the read paths need of a decoder: the values' dtype and ``decode``."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype values decode to."""
        ...

    def decode(self, data: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        """Decode one chunk's bytes into an array of ``shape`` (the chunk's stored shape)."""
        ...


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


def _numcodec(name: str, conf: Mapping[str, Any]) -> Any:
    return numcodecs.get_codec({"id": name.removeprefix("numcodecs."), **conf})


def _bytes_step(codec: Mapping[str, Any], size_hint: int) -> _Step | None:
    """The decode function of one bytes-to-bytes codec, or None if not mapped."""
    name, conf = codec["name"], dict(codec.get("configuration") or {})
    if name == "numcodecs.zlib":
        return _inflate(size_hint)
    if name.startswith("numcodecs."):
        return _numcodec(name, conf).decode  # type: ignore[no-any-return]
    if name == "gzip":
        return numcodecs.GZip(conf.get("level", 5)).decode  # type: ignore[no-any-return]
    if name == "zstd":
        return numcodecs.Zstd(  # type: ignore[no-any-return]
            level=conf.get("level", 0), checksum=conf.get("checksum", False)
        ).decode
    if name == "blosc":
        return numcodecs.Blosc().decode  # type: ignore[no-any-return]
    if name == "crc32c":
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
    order : tuple of int, optional
        A ``transpose`` codec's order (it comes first in encoding order, so its inverse is
        applied last): the stored values are laid out in this axis order.
    """

    steps: tuple[_Step, ...]
    view_dtype: np.dtype[Any]
    dtype: np.dtype[Any]
    vlen_utf8: bool = False
    array_steps: tuple[_Step, ...] = ()
    order: tuple[int, ...] | None = None

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
        stored = shape if self.order is None else tuple(shape[a] for a in self.order)
        if self.vlen_utf8:
            values = numcodecs.VLenUTF8().decode(data)
            out = np.asarray(values).reshape(stored).astype(self.dtype, copy=False)
        else:
            out = np.frombuffer(data, dtype=self.view_dtype).reshape(stored)
            for step in self.array_steps:
                out = np.asarray(step(out)).reshape(stored)
        if self.order is not None:
            out = out.transpose(np.argsort(self.order))
        return out


def chunk_decoder(metadata: ArrayMetadata) -> ChunkDecoder | None:
    """A :class:`ChunkDecoder` for an array's codec chain, or None if not mappable.

    Parameters
    ----------
    metadata : ArrayMetadata

    Returns
    -------
    ChunkDecoder or None
        None when the chain has sharding, an array-to-array codec other than a numcodecs
        value filter (or a leading ``transpose``), or a codec without a direct numcodecs
        equivalent; decode such arrays with :class:`ZarrChunkDecoder`.

    Examples
    --------
    >>> from virtualizarr.manifests import make_array_metadata
    >>> meta = make_array_metadata(shape=(4,), dtype=np.dtype(">i2"), chunks=(4,), fill_value=0)
    >>> chunk_decoder(meta).decode(np.arange(4, dtype=">i2").tobytes(), (4,)).tolist()
    [0, 1, 2, 3]
    """
    codecs = tuple(metadata.codecs)
    dtype = metadata.data_type
    order: tuple[int, ...] | None = None
    if codecs and codecs[0]["name"] == "transpose":
        order = tuple(codecs[0]["configuration"]["order"])
        codecs = codecs[1:]
    array_steps: list[_Step] = []
    while codecs and codec_kind(codecs[0]["name"]) == "array":
        name = codecs[0]["name"]
        conf = dict(codecs[0].get("configuration") or {})
        if dtype.hasobject or not name.startswith("numcodecs.") or name == "numcodecs.packbits":
            return None
        array_steps.insert(0, _numcodec(name, conf).decode)
        astype = conf.get("astype") if name != "numcodecs.astype" else conf.get("encode_dtype")
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
    if first["name"] == "vlen-utf8":
        if array_steps:
            return None
        return ChunkDecoder(tuple(steps), dtype, dtype, vlen_utf8=True, order=order)
    if first["name"] != "bytes" or dtype.hasobject or dtype.kind == "T":
        return None
    endian = (first.get("configuration") or {}).get("endian")
    view = dtype.newbyteorder("<" if endian == "little" else ">") if endian else dtype
    final = metadata.data_type
    return ChunkDecoder(tuple(steps), view, final, array_steps=tuple(array_steps), order=order)


class ZarrChunkDecoder:
    """Decodes chunks with zarr itself, for codec chains :func:`chunk_decoder` cannot map.

    Each chunk is read as a one-chunk Zarr array of the chunk's shape from an in-memory
    store, so zarr applies exactly the array's codecs (a third-party codec registered
    with zarr, sharding, ``packbits``...). zarr is imported when the first chunk is
    decoded.

    Parameters
    ----------
    metadata : ArrayMetadata

    Examples
    --------
    >>> from virtualizarr.manifests import make_array_metadata
    >>> meta = make_array_metadata(shape=(2, 3), dtype=np.dtype("<i4"), chunks=(2, 3),
    ...     fill_value=0, array_codecs=[{"name": "transpose", "configuration": {"order": [1, 0]}}])
    >>> data = np.arange(6, dtype="<i4").reshape(2, 3).T.tobytes()
    >>> ZarrChunkDecoder(meta).decode(data, (2, 3)).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """

    def __init__(self, metadata: ArrayMetadata) -> None:
        self.metadata = metadata
        self._docs: dict[tuple[int, ...], tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype values decode to."""
        return self.metadata.data_type

    def _doc(self, shape: tuple[int, ...]) -> tuple[bytes, str]:
        """The ``zarr.json`` of a one-chunk array of ``shape``, and its chunk's key."""
        with self._lock:
            found = self._docs.get(shape)
            if found is None:
                one = dataclasses.replace(
                    self.metadata,
                    shape=shape,
                    chunk_grid=RegularChunkGrid(shape),
                    dimension_names=None,
                    attributes={},
                    storage_transformers=(),
                    extra_fields={},
                )
                one.to_zarr()  # zarr accepts it (and knows our codec names) before any chunk
                found = (
                    json.dumps(one.to_dict(), default=str).encode(),
                    one.encode_chunk_key((0,) * len(shape)),
                )
                self._docs[shape] = found
            return found

    def decode(self, data: Any, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        """Decode one chunk's bytes into an array of ``shape`` (its stored shape)."""
        import zarr
        from zarr.core.buffer.cpu import Buffer
        from zarr.storage import MemoryStore

        doc, key = self._doc(shape)
        store = MemoryStore(
            {"zarr.json": Buffer.from_bytes(doc), key: Buffer.from_bytes(bytes(data))}
        )
        array = zarr.open_array(store, mode="r", zarr_format=3)
        return np.asarray(array[...])


def decoder_for(metadata: ArrayMetadata) -> Decoder:
    """The native :class:`ChunkDecoder` for an array, else a :class:`ZarrChunkDecoder`."""
    native = chunk_decoder(metadata)
    return native if native is not None else ZarrChunkDecoder(metadata)
