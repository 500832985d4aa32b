"""HDF5 filter pipelines as Zarr v3 codec configurations.

An HDF5 chunked dataset lists its filters in the order they are applied when writing.
Each filter whose byte format numcodecs decodes identically maps to one bytes-to-bytes
codec, in the same order (Zarr codecs are also listed in encoding order):

=============================  =====================  ======================================
HDF5 filter (id)               Zarr v3 codec          why the bytes match
=============================  =====================  ======================================
deflate (1)                    ``numcodecs.zlib``     both are a zlib stream (RFC 1950)
shuffle (2)                    ``numcodecs.shuffle``  both transpose the bytes of elements
fletcher32 (3)                 ``numcodecs.fletcher32`` both append HDF5's 4-byte checksum
bzip2 (307)                    ``numcodecs.bz2``      a plain bzip2 stream
blosc (32001)                  ``numcodecs.blosc``    the chunk is one blosc frame
zstd (32015)                   ``numcodecs.zstd``     one zstd frame with its content size
=============================  =====================  ======================================

Filters without a byte-compatible codec: szip (4), nbit (5), scaleoffset (6), LZF (32000),
HDF5's LZ4 filter (32004: its framing -- big-endian total size, block size, then
size-prefixed blocks -- differs from numcodecs' LZ4, which prefixes one little-endian size),
bitshuffle (32008: no numcodecs codec) and any unknown id. Such variables are read and
inlined when small, or refused (see :mod:`virtualizarr.readers.hdf5`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numcodecs
import numpy as np

__all__ = [
    "FILTER_NAMES",
    "CodecConfig",
    "FilterPipeline",
    "UnmappableFilter",
    "decode_chunk",
    "pipeline_codecs",
    "reencode_chunk",
]

CodecConfig = dict[str, Any]

FILTER_NAMES: Final[dict[int, str]] = {
    1: "deflate",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    307: "bzip2",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32013: "zfp",
    32015: "zstd",
    32017: "sz",
    32026: "blosc2",
}
"""Names of well-known HDF5 filter ids (registered at The HDF Group)."""

_BLOSC_CNAMES: Final = ("blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd")


@dataclass(frozen=True, slots=True)
class UnmappableFilter:
    """A filter in a pipeline that no Zarr codec decodes byte for byte."""

    filter_id: int
    name: str

    def describe(self) -> str:
        """``"szip (id 4)"``-style label for messages.

        Returns
        -------
        str
        """
        return f"{self.name} (id {self.filter_id})"


@dataclass(frozen=True, slots=True)
class FilterPipeline:
    """The codecs for a dataset's filters, or the first filter that has none."""

    codecs: tuple[CodecConfig, ...]
    unmappable: UnmappableFilter | None = None


def _filter_codec(fid: int, cd: tuple[int, ...], itemsize: int) -> CodecConfig | None:
    """The codec configuration for one HDF5 filter, or None when none matches."""
    if fid == 1:
        return {"name": "numcodecs.zlib", "configuration": {"level": int(cd[0]) if cd else 6}}
    if fid == 2:
        return {"name": "numcodecs.shuffle", "configuration": {"elementsize": int(itemsize)}}
    if fid == 3:
        return {"name": "numcodecs.fletcher32", "configuration": {}}
    if fid == 307:
        level = int(cd[0]) if cd and 1 <= int(cd[0]) <= 9 else 9
        return {"name": "numcodecs.bz2", "configuration": {"level": level}}
    if fid == 32015:
        return {"name": "numcodecs.zstd", "configuration": {"level": int(cd[0]) if cd else 3}}
    if fid == 32001:
        # cd_values: filter revision, blosc format version, typesize, chunk bytes, clevel,
        # shuffle, compressor code. Decoding reads everything it needs from the frame.
        clevel = int(cd[4]) if len(cd) > 4 else 5
        shuffle = int(cd[5]) if len(cd) > 5 else 1
        code = int(cd[6]) if len(cd) > 6 else 0
        cname = _BLOSC_CNAMES[code] if 0 <= code < len(_BLOSC_CNAMES) else "blosclz"
        return {
            "name": "numcodecs.blosc",
            "configuration": {"cname": cname, "clevel": clevel, "shuffle": shuffle, "blocksize": 0},
        }
    return None


def pipeline_codecs(filters: list[tuple[int, tuple[int, ...]]], itemsize: int) -> FilterPipeline:
    """Map an HDF5 filter pipeline to Zarr v3 bytes-to-bytes codecs.

    Parameters
    ----------
    filters : list of (int, tuple of int)
        ``(filter id, client data values)`` in pipeline (encoding) order, as
        ``H5Pget_filter`` reports them.
    itemsize : int
        Size in bytes of one stored element (the shuffle codec's element size).

    Returns
    -------
    FilterPipeline
        The codecs in encoding order, or the first filter no codec reproduces.

    Examples
    --------
    >>> pipeline_codecs([(2, (4,)), (1, (4,))], 4).codecs[1]
    {'name': 'numcodecs.zlib', 'configuration': {'level': 4}}
    >>> pipeline_codecs([(4, (0,))], 4).unmappable
    UnmappableFilter(filter_id=4, name='szip')
    """
    out: list[CodecConfig] = []
    extra: int | None = 0  # bytes earlier filters added to the chunk (None: unknown)
    for fid, cd in filters:
        codec = _filter_codec(fid, cd, itemsize)
        if codec is None:
            name = FILTER_NAMES.get(fid, "unknown filter")
            return FilterPipeline(tuple(out), UnmappableFilter(fid, name))
        if fid == 2:
            elementsize = int(cd[0]) if cd else itemsize
            codec["configuration"]["elementsize"] = elementsize
            # HDF5 leaves a tail shorter than one element unshuffled; numcodecs refuses
            # such buffers (netCDF-C puts fletcher32 first: 8-byte data + 4-byte sum).
            if extra is None or (elementsize > 1 and extra % elementsize):
                return FilterPipeline(
                    tuple(out), UnmappableFilter(fid, "shuffle of a partial element")
                )
        elif fid == 3:
            extra = None if extra is None else extra + 4
        else:
            extra = None
        out.append(codec)
    return FilterPipeline(tuple(out))


def _numcodecs(config: CodecConfig) -> Any:
    """A numcodecs codec object for a ``numcodecs.*`` Zarr v3 codec configuration."""
    codec_id = str(config["name"]).removeprefix("numcodecs.")
    return numcodecs.get_codec({"id": codec_id, **config.get("configuration", {})})


def reencode_chunk(raw: bytes, filter_mask: int, codecs: tuple[CodecConfig, ...]) -> bytes:
    """Re-encode a chunk some of whose optional filters were skipped when it was written.

    HDF5 skips an optional filter for a chunk when it fails (deflate on incompressible
    data, for instance) and records that in the chunk's filter mask: bit ``i`` set means
    filter ``i`` was not applied. Such a chunk cannot be decoded by the dataset's codec
    pipeline, so we undo the filters that were applied and encode the values again with
    all of them.

    Parameters
    ----------
    raw : bytes
        The chunk as stored.
    filter_mask : int
        The chunk's filter mask.
    codecs : tuple of dict
        The dataset's codec configurations, one per filter, in encoding order.

    Returns
    -------
    bytes
        The chunk encoded by the full pipeline.
    """
    objs = [_numcodecs(c) for c in codecs]
    data: Any = raw
    for i in reversed(range(len(objs))):
        if not (filter_mask >> i) & 1:
            data = objs[i].decode(data)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    encoded: Any = buf
    for obj in objs:
        encoded = obj.encode(encoded)
    return bytes(encoded)


def decode_chunk(raw: bytes, codecs: tuple[CodecConfig, ...]) -> bytes:
    """Decode one chunk through ``codecs`` (reverse order) to the raw array bytes.

    Parameters
    ----------
    raw : bytes
        The chunk as stored.
    codecs : tuple of dict
        Bytes-to-bytes codec configurations in encoding order.

    Returns
    -------
    bytes
    """
    data: Any = raw
    for config in reversed(codecs):
        data = _numcodecs(config).decode(data)
    return bytes(np.frombuffer(bytes(data), dtype=np.uint8).tobytes())
