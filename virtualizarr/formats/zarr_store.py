"""Zarr v2 and v3 array metadata, as the plain-store reader and the kerchunk reader read it.

Pure functions from the JSON documents of a Zarr store (``.zarray``, ``zarr.json``) to a
:class:`ZarrArraySpec`: what a virtual array needs to know -- shape, stored dtype, chunk
shape, fill value, and the codec chain split the way Zarr v3 orders it (array-to-array
codecs, the serializer, bytes-to-bytes codecs) -- plus how chunk keys are spelled and, for
sharded v3 arrays, how the shard index is laid out.

Zarr v2 pipelines map onto v3 ones: a filter that transforms values (``delta``,
``fixedscaleoffset``, ``astype``, ``quantize``, ``bitround``, ``packbits``) becomes an
array-to-array ``numcodecs.*`` codec before the ``bytes`` serializer, every other filter
and the compressor a bytes-to-bytes codec after it, the ``vlen-utf8`` filter the
``vlen-utf8`` serializer, and ``"order": "F"`` a ``transpose`` codec. Filters with no Zarr
v3 equivalent (``vlen-bytes``, ``json``, ``pickle``, ``categorize``...) are refused.

The fill value is kept twice, because xarray reads it two ways: ``fill_value`` is what a
missing chunk reads as, and :attr:`ZarrArraySpec.mask_fill` is what ``xr.open_zarr``
turns into ``_FillValue`` (a v2 array's fill value; never a v3 array's).
"""

from __future__ import annotations

import base64
import math
import struct
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from virtualizarr.errors import (
    FileFormatError,
    InvalidMetadataError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.formats.kerchunk import v2_default_fill, v2_fill_from_json
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.codec_chain import codec_kind
from virtualizarr.manifests.metadata import codecs_to_json, metadata_chunks

__all__ = [
    "METADATA_KEYS",
    "ShardSpec",
    "ZarrArraySpec",
    "decode_v3_fill_attr",
    "parse_v2_array",
    "parse_v3_array",
    "split_v2_codecs",
    "stored_dtype",
]

METADATA_KEYS: Final = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})
"""Names of metadata documents: never chunks."""

_PARSE_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
_UNSUPPORTED_V2: Final = frozenset(
    {"vlen-bytes", "vlen-array", "json", "json2", "pickle", "msgpack", "msgpack2", "categorize"}
)


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """How a sharded array's shards hold their inner chunks.

    Attributes
    ----------
    shape : tuple of int
        The shard (outer chunk) shape.
    chunks_per_shard : tuple of int
        Inner chunks along each axis of a shard.
    index_at_end : bool
        Whether the index is the shard's last bytes (else its first).
    index_endian : str
        ``"<"`` or ``">"``: the byte order of the index's uint64 pairs.
    index_crc32c : bool
        Whether a CRC-32C checksum (4 bytes) follows the index.
    """

    shape: tuple[int, ...]
    chunks_per_shard: tuple[int, ...]
    index_at_end: bool
    index_endian: str
    index_crc32c: bool

    @property
    def index_bytes(self) -> int:
        """Size of the index in bytes (checksum included)."""
        return 16 * math.prod(self.chunks_per_shard) + (4 if self.index_crc32c else 0)


@dataclass(frozen=True, slots=True)
class ZarrArraySpec:
    """One Zarr array, described for virtualization.

    Attributes
    ----------
    zarr_format : int
        2 or 3.
    shape : tuple of int
    dtype : numpy.dtype
        The stored dtype, its byte order that of the stored bytes.
    chunks : tuple of int
        The shape of the chunks a manifest references (the inner chunks of a sharded
        array).
    fill_value : object
        What a missing chunk reads as.
    mask_fill : object
        The value ``xr.open_zarr`` reads as ``_FillValue`` (None for none).
    array_codecs, bytes_codecs : tuple of dict
        Zarr v3 codec configurations before and after the serializer.
    key_prefix : str
        What every stored chunk key starts with (``"c/"`` for Zarr v3's default
        encoding, ``""`` otherwise).
    separator : str
        Between the indices of a chunk key.
    dimension_names : tuple of (str or None), or None
        Zarr v3's ``dimension_names`` (None for v2, or when absent).
    attributes : dict
        The array's attributes as stored (v3), or ``{}`` (v2: they live in ``.zattrs``).
    shard : ShardSpec or None
        For a sharded array, its shards' layout; its stored objects are shards.
    """

    zarr_format: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunks: tuple[int, ...]
    fill_value: Any
    mask_fill: Any
    array_codecs: tuple[dict[str, Any], ...]
    bytes_codecs: tuple[dict[str, Any], ...]
    key_prefix: str
    separator: str
    dimension_names: tuple[str | None, ...] | None = None
    attributes: dict[str, Any] | None = None
    shard: ShardSpec | None = None

    @property
    def stored_chunks(self) -> tuple[int, ...]:
        """The shape of the stored objects' chunks (shards, for a sharded array)."""
        return self.shard.shape if self.shard is not None else self.chunks

    def scalar_key(self) -> str:
        """The key of a 0-d array's one chunk."""
        return "c" if self.key_prefix else "0"


# ---------------------------------------------------------------------- codecs
def _codec_kind(name: str, where: str, error: type[VirtualiZarrError]) -> str:
    """``"array"`` or ``"bytes"``: where a v3 codec of this name sits in a pipeline."""
    try:
        kind = codec_kind(name)
    except InvalidMetadataError as e:
        raise UnsupportedFeatureError(
            f"{where}: {e}; install the package that registers it (numcodecs, imagecodecs) "
            "or leave the array out with drop_variables=[...]."
        ) from None
    if kind != "array_bytes":
        return kind
    raise UnsupportedFeatureError(
        f"{where}: the codec {name!r} turns arrays into bytes itself (a serializer such as "
        "pcodec or zfpy); only the bytes and vlen-utf8 serializers can be virtualized. Leave "
        "the array out with drop_variables=[...]."
    )


def split_v2_codecs(
    filters: Any,
    compressor: Any,
    where: str,
    error: type[VirtualiZarrError] = FileFormatError,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """A Zarr v2 pipeline (``filters`` then ``compressor``) as Zarr v3 codecs.

    Parameters
    ----------
    filters : list of dict or None
        numcodecs configurations (``{"id": "delta", "dtype": "<i4"}``), in encoding order.
    compressor : dict or None
    where : str
        The document, for messages.
    error : type
        The error class for a malformed pipeline.

    Returns
    -------
    array_codecs : list of dict
        Before the serializer.
    bytes_codecs : list of dict
        After it.
    vlen_utf8 : bool
        True if a ``vlen-utf8`` filter makes the values variable-length strings.

    Raises
    ------
    UnsupportedFeatureError
        For filters Zarr v3 cannot express.

    Examples
    --------
    >>> split_v2_codecs([{"id": "delta", "dtype": "<i4"}], {"id": "zlib", "level": 1}, "x")
    ([{'name': 'numcodecs.delta', 'configuration': {'dtype': '<i4'}}], \
[{'name': 'numcodecs.zlib', 'configuration': {'level': 1}}], False)
    """
    if not (filters is None or isinstance(filters, list)) or not (
        compressor is None or isinstance(compressor, dict)
    ):
        raise error(
            f"{where}: 'filters' must be a list of codec objects (or null) and 'compressor' "
            f"an object or null; found {filters!r:.80} and {compressor!r:.80}."
        )
    confs = [*(filters or []), *([compressor] if compressor else [])]
    array: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    vlen = False
    for conf in confs:
        if not isinstance(conf, dict) or not isinstance(conf.get("id"), str):
            raise error(
                f"{where}: a codec must be an object with a string 'id' (numcodecs "
                f"configuration); found {conf!r:.80}."
            )
        cid = conf["id"]
        if cid == "vlen-utf8":
            if array or after:
                raise UnsupportedFeatureError(
                    f"{where}: the vlen-utf8 filter must come first; found it after "
                    f"{[c['name'] for c in array + after]}."
                )
            vlen = True
            continue
        if cid in _UNSUPPORTED_V2:
            raise UnsupportedFeatureError(
                f"{where}: the Zarr v2 filter {cid!r} has no Zarr v3 equivalent, so the array "
                "cannot be virtualized; leave it out with drop_variables=[...]."
            )
        name = f"numcodecs.{cid}"
        codec: dict[str, Any] = {
            "name": name,
            "configuration": {k: v for k, v in conf.items() if k != "id"},
        }
        if _codec_kind(name, where, error) == "array":
            if after:
                raise UnsupportedFeatureError(
                    f"{where}: the filter {cid!r} transforms values but comes after a "
                    "bytes filter; Zarr v3 cannot order them so."
                )
            array.append(codec)
        else:
            after.append(codec)
    return array, after, vlen


# ---------------------------------------------------------------------- Zarr v2
def _ints(value: Any, what: str, where: str, *, positive: bool) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and (v > 0 if positive else v >= 0)
        for v in value
    ):
        kind = "positive" if positive else "non-negative"
        raise FileFormatError(
            f"{where}: '{what}' must be a list of {kind} integers; found {value!r:.80}."
        )
    return tuple(value)


def parse_v2_array(doc: Any, where: str) -> ZarrArraySpec:
    """Read a Zarr v2 ``.zarray`` document.

    Parameters
    ----------
    doc : object
        The parsed JSON.
    where : str
        The document, for messages.

    Returns
    -------
    ZarrArraySpec

    Raises
    ------
    FileFormatError
        If the document is malformed.
    UnsupportedFeatureError
        For structured dtypes and filters Zarr v3 cannot express.

    Examples
    --------
    >>> spec = parse_v2_array({"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<i2",
    ...     "compressor": None, "fill_value": None, "filters": None, "order": "C"}, "a")
    >>> spec.chunks, spec.mask_fill
    ((2,), None)
    """
    if not isinstance(doc, dict):
        raise FileFormatError(f"{where} must be a JSON object; found {doc!r:.80}.")
    shape = _ints(doc.get("shape"), "shape", where, positive=False)
    chunks = _ints(doc.get("chunks"), "chunks", where, positive=True)
    if len(shape) != len(chunks):
        raise FileFormatError(
            f"{where}: 'shape' {list(shape)} and 'chunks' {list(chunks)} differ in length."
        )
    if doc.get("zarr_format", 2) != 2:
        found = doc.get("zarr_format")
        raise FileFormatError(f"{where}: expected zarr_format 2; found {found!r:.20}.")
    array, after, vlen = split_v2_codecs(doc.get("filters"), doc.get("compressor"), where)
    raw_dtype = doc.get("dtype")
    if isinstance(raw_dtype, list):
        raise UnsupportedFeatureError(
            f"{where}: structured dtypes ({raw_dtype!r:.60}) cannot be virtualized; leave the "
            "array out with drop_variables=[...]."
        )
    try:
        dtype: np.dtype[Any] = np.dtype(raw_dtype)
    except (TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: bad dtype {raw_dtype!r:.40} ({e}).") from None
    if dtype.kind == "O" and not vlen:
        raise UnsupportedFeatureError(
            f"{where}: an object array without the vlen-utf8 filter cannot be virtualized; "
            "leave it out with drop_variables=[...]."
        )
    if dtype.kind == "V" or (dtype.kind == "c" and dtype.itemsize > 16):
        raise UnsupportedFeatureError(f"{where}: dtype {dtype} cannot be virtualized.")
    if vlen:
        dtype = np.dtype(object)
    try:
        mask: Any = v2_fill_from_json(doc.get("fill_value"), dtype)
    except (*_PARSE_ERRORS, InvalidMetadataError) as e:
        raise FileFormatError(f"{where}: not valid Zarr v2 array metadata ({e}).") from None
    order = doc.get("order", "C")
    if order == "F" and len(shape) > 1:
        axes = list(range(len(shape)))[::-1]
        array.insert(0, {"name": "transpose", "configuration": {"order": axes}})
    elif order not in ("C", "F"):
        raise FileFormatError(f"{where}: 'order' must be 'C' or 'F'; found {order!r:.20}.")
    sep = doc.get("dimension_separator") or "."
    if sep not in (".", "/"):
        raise FileFormatError(
            f"{where}: dimension_separator must be '.' or '/'; found {sep!r:.20}."
        )
    if vlen:
        raw = doc.get("fill_value")
        mask = raw if isinstance(raw, str) else None
    elif mask is not None:
        mask = np.asarray(mask, dtype=dtype.newbyteorder("=")).reshape(())[()]
    fill = mask if mask is not None else v2_default_fill(dtype)
    return ZarrArraySpec(
        zarr_format=2,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        fill_value=fill,
        mask_fill=mask,
        array_codecs=tuple(array),
        bytes_codecs=tuple(after),
        key_prefix="",
        separator=sep,
    )


# ---------------------------------------------------------------------- Zarr v3
def _split_v3_chain(
    codecs: Sequence[Mapping[str, Any]], where: str
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """A v3 chain as (array-to-array codecs, the serializer, bytes-to-bytes codecs)."""
    array: list[dict[str, Any]] = []
    serializer: dict[str, Any] | None = None
    after: list[dict[str, Any]] = []
    for c in codecs:
        conf = {"name": c["name"], "configuration": dict(c.get("configuration") or {})}
        if serializer is None:
            name = conf["name"]
            if name in ("bytes", "vlen-utf8", "sharding_indexed"):
                serializer = conf
            elif name == "transpose" or _codec_kind(name, where, FileFormatError) == "array":
                array.append(conf)
            else:  # a bytes codec before any serializer: zarr would not have parsed it
                raise FileFormatError(f"{where}: codec {name!r} comes before the serializer.")
        else:
            after.append(conf)
    if serializer is None:
        raise FileFormatError(f"{where}: the codec chain has no serializer.")
    return array, serializer, after


def _endian_dtype(native: np.dtype[Any], serializer: Mapping[str, Any]) -> np.dtype[Any]:
    endian = (serializer.get("configuration") or {}).get("endian")
    if native.itemsize > 1 and native.kind in "iufcmM":
        return native.newbyteorder(">" if endian == "big" else "<")
    return native


def _shard_spec(
    config: Mapping[str, Any], outer: tuple[int, ...], where: str
) -> tuple[ShardSpec, tuple[int, ...], list[dict[str, Any]]]:
    inner = tuple(int(c) for c in config.get("chunk_shape") or ())
    if len(inner) != len(outer) or any(c <= 0 or o % c for c, o in zip(inner, outer, strict=True)):
        raise FileFormatError(
            f"{where}: the inner chunk shape {list(inner)} does not divide the shard shape "
            f"{list(outer)}."
        )
    index = [dict(c) for c in config.get("index_codecs") or ()]
    names = [c.get("name") for c in index]
    if names not in (["bytes"], ["bytes", "crc32c"]):
        raise UnsupportedFeatureError(
            f"{where}: the shard index is encoded with {names}; only an uncompressed index "
            "(bytes, optionally with crc32c) can be read to find the inner chunks. Leave the "
            "array out with drop_variables=[...]."
        )
    endian = (index[0].get("configuration") or {}).get("endian", "little")
    spec = ShardSpec(
        shape=outer,
        chunks_per_shard=tuple(o // c for o, c in zip(outer, inner, strict=True)),
        index_at_end=config.get("index_location", "end") != "start",
        index_endian=">" if endian == "big" else "<",
        index_crc32c=names[-1] == "crc32c",
    )
    return spec, inner, [dict(c) for c in config.get("codecs") or ()]


def parse_v3_array(doc: Any, where: str) -> ZarrArraySpec:
    """Read a Zarr v3 array's ``zarr.json`` document.

    Parameters
    ----------
    doc : object
        The parsed JSON.
    where : str
        The document, for messages.

    Returns
    -------
    ZarrArraySpec

    Raises
    ------
    FileFormatError
        If the document is malformed.
    UnsupportedFeatureError
        For storage transformers (a manifest store: open it with
        ``filetype="manifest_store"``), serializers other than ``bytes`` and
        ``vlen-utf8``, nested sharding and compressed shard indexes.
    """
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        raise FileFormatError(f"{where} does not describe a Zarr v3 array.")
    if doc.get("storage_transformers"):
        raise UnsupportedFeatureError(
            f"{where} uses storage transformers ({doc['storage_transformers']!r:.80}): it is "
            "a virtualizarr manifest store, not a plain Zarr store. Open it with "
            "filetype='manifest_store' (or no filetype)."
        )
    meta = _v3_metadata({**doc, "attributes": {}}, where)
    native = meta.data_type
    chain = codecs_to_json(meta)
    outer = metadata_chunks(meta)
    fill = meta.fill_value
    if not all(isinstance(c, int) for c in outer):
        raise UnsupportedFeatureError(f"{where}: rectilinear chunk grids are not supported.")
    array, serializer, after = _split_v3_chain(chain, where)
    shard = None
    chunks = tuple(int(c) for c in outer)  # type: ignore[arg-type]
    if serializer["name"] == "sharding_indexed":
        if array or after:
            raise UnsupportedFeatureError(
                f"{where}: codecs outside the sharding codec "
                f"({[c['name'] for c in array + after]}) cannot be virtualized."
            )
        shard, chunks, inner_chain = _shard_spec(serializer["configuration"], chunks, where)
        array, serializer, after = _split_v3_chain(inner_chain, where)
        if serializer["name"] == "sharding_indexed":
            raise UnsupportedFeatureError(f"{where}: nested sharding cannot be virtualized.")
    dtype = _endian_dtype(native, serializer)
    if serializer["name"] == "vlen-utf8":
        dtype = np.dtype(object)
    elif native.kind in "OT" or native.hasobject:
        raise UnsupportedFeatureError(
            f"{where}: data type {doc.get('data_type')!r:.40} with serializer "
            f"{serializer['name']!r} cannot be virtualized."
        )
    enc = meta.chunk_key_encoding.to_dict()
    conf: Any = enc.get("configuration") or {}
    default = enc.get("name") == "default"
    sep = str(conf.get("separator", "/" if default else "."))
    names = meta.dimension_names
    if fill is not None and dtype.kind not in "OT":
        fill = np.asarray(fill, dtype=dtype.newbyteorder("=")).reshape(())[()]
    return ZarrArraySpec(
        zarr_format=3,
        shape=tuple(int(s) for s in meta.shape),
        dtype=dtype,
        chunks=chunks,
        fill_value=fill,
        mask_fill=None,
        array_codecs=tuple(array),
        bytes_codecs=tuple(after),
        key_prefix="c" + sep if default else "",
        separator=sep,
        dimension_names=None if names is None else tuple(names),
        attributes=dict(doc.get("attributes") or {}),
        shard=shard,
    )


def _v3_metadata(doc: dict[str, Any], where: str) -> ArrayMetadata:
    """A ``zarr.json`` array document read as zarr reads it.

    Our own reading first; a document it refuses goes to zarr (imported now), which also
    reads documents older software wrote invalidly (chunk sizes as floats) by repairing
    them, so that what opens with zarr opens here.
    """
    try:
        return ArrayMetadata.from_dict(doc)
    except InvalidMetadataError as ours:
        from zarr.core.metadata.v3 import ArrayV3Metadata

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zarr's repair notices and spec warnings
                repaired = ArrayV3Metadata.from_dict(doc)
            return ArrayMetadata.from_zarr(repaired)
        except (*_PARSE_ERRORS, NotImplementedError, InvalidMetadataError):
            raise FileFormatError(f"{where}: not valid Zarr v3 array metadata ({ours}).") from None


def decode_v3_fill_attr(value: Any, dtype: np.dtype[Any]) -> Any:
    """A ``_FillValue`` attribute of a Zarr v3 array, decoded as xarray decodes it.

    xarray writes a float ``_FillValue`` into v3 attributes as the base64 of its
    little-endian float64 bytes (complex: a pair of those) and reads it back so.

    Raises
    ------
    FileFormatError
        If the value is not what xarray writes for the dtype.

    Examples
    --------
    >>> decode_v3_fill_attr("AAAAAAAA8L8=", np.dtype("f4"))
    -1.0
    """
    try:
        if dtype.kind in "OTU":
            return str(value)
        if dtype.kind == "S":
            return base64.standard_b64decode(value)
        if dtype.kind == "f":
            return struct.unpack("<d", base64.standard_b64decode(value))[0]
        if dtype.kind == "c":
            re_, im = (struct.unpack("<d", base64.standard_b64decode(v))[0] for v in value)
            return complex(re_, im)
        if dtype.kind == "b":
            return bool(value)
        if dtype.kind in "iu" and isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    except (TypeError, ValueError, struct.error) as e:
        raise FileFormatError(
            f"_FillValue {value!r:.60} is not what xarray writes for dtype {dtype} ({e})."
        ) from None
    raise FileFormatError(f"_FillValue {value!r:.60} is not what xarray writes for dtype {dtype}.")


def stored_dtype(array_codecs: list[dict[str, Any]], dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype the serializer stores after ``array_codecs``: the last ``astype``.

    A filter that changes the values' type (``fixedscaleoffset`` with ``astype``) runs
    before the serializer, which then stores the filter's ``astype`` (its byte order
    decides the ``bytes`` codec's endianness).

    Examples
    --------
    >>> stored_dtype(
    ...     [{"name": "numcodecs.fixedscaleoffset",
    ...       "configuration": {"offset": 1, "scale": 1, "dtype": "<u2", "astype": ">i2"}}],
    ...     np.dtype("<u2"))
    dtype('>i2')
    """
    stored = dtype
    for conf in array_codecs:
        astype = (conf.get("configuration") or {}).get("astype")
        if astype:
            stored = np.dtype(astype)
    return stored
