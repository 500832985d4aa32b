"""The kerchunk reference format: how our Zarr v3 model maps onto its Zarr v2 metadata.

A kerchunk document (specification version 1) is ``{"version": 1, "refs": {...}}``: Zarr
v2 metadata documents (``.zgroup``, ``.zattrs``, ``<var>/.zarray``, ``<var>/.zattrs``)
and, per chunk key (``"<var>/0.1"``), a reference ``[url, offset, length]``, a whole-file
reference ``[url]`` or inline data (``"base64:..."`` or plain text). Version 0 is the
bare ``refs`` object. The Parquet layout holds the same metadata and references.

The kerchunk reader and writers share the conversions here, so a document we write reads
back exactly: codecs (v3 configurations <-> numcodecs filters), dtypes with their byte
order, and fill values, including what a missing chunk of a v2 array with
``"fill_value": null`` reads as (zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict

import numpy as np

from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.manifests.data_types import fill_from_json, fill_to_json, native_data_type

__all__ = [
    "META_SUFFIXES",
    "KerchunkRefs",
    "is_zero_fill",
    "v2_codec_to_v3",
    "v2_default_fill",
    "v2_fill_from_json",
    "v2_fill_to_json",
    "v3_codecs_to_v2",
    "v2_dtype_from_json",
    "zarr_v2_dtype",
]

META_SUFFIXES: Final = (".zarray", ".zattrs", ".zgroup", ".zmetadata")
"""Keys ending in these are metadata documents, not chunk references."""


class KerchunkRefs(TypedDict):
    """A kerchunk reference document, specification version 1.

    ``virtualizarr`` is our record of attribute types and source identities (see
    :mod:`virtualizarr.formats.attrs`); fsspec ignores it.
    """

    version: int
    refs: dict[str, str | list[str | int]]
    virtualizarr: NotRequired[dict[str, Any]]


# ---------------------------------------------------------------------- codecs
_BLOSC_SHUFFLE: Final = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def v3_codecs_to_v2(codecs: list[dict[str, Any]], name: str) -> tuple[str, list[dict[str, Any]]]:
    """Split a v3 codec pipeline into a v2 byte order and a list of numcodecs filters.

    Parameters
    ----------
    codecs : list of dict
        The pipeline as JSON (:func:`~virtualizarr.manifests.metadata.codecs_to_json`).
    name : str
        The variable, for the message.

    Returns
    -------
    endian : {"<", ">", "|"}
    filters : list of numcodecs configurations, in encoding order

    Raises
    ------
    UnsupportedFeatureError
        For codecs Zarr v2 cannot express (such as ``transpose`` or sharding).

    Examples
    --------
    >>> v3_codecs_to_v2([{"name": "bytes", "configuration": {"endian": "big"}}], "x")
    ('>', [])
    """
    endian = "|"
    filters: list[dict[str, Any]] = []
    for c in codecs:
        cname, conf = c["name"], dict(c.get("configuration") or {})
        if cname == "bytes":
            e = conf.get("endian")
            endian = {"big": ">", "little": "<"}.get(e, "|") if e else "|"
        elif cname == "vlen-utf8":
            filters.append({"id": "vlen-utf8"})
        elif cname.startswith("numcodecs."):
            filters.append({"id": cname.removeprefix("numcodecs."), **conf})
        elif cname == "gzip":
            filters.append({"id": "gzip", "level": conf.get("level", 5)})
        elif cname == "zstd":
            filters.append({"id": "zstd", "level": conf.get("level", 0)})
        elif cname == "crc32c":
            filters.append({"id": "crc32c"})
        elif cname == "blosc":
            shuffle = conf.get("shuffle", "noshuffle")
            filters.append(
                {
                    "id": "blosc",
                    "cname": conf.get("cname", "lz4"),
                    "clevel": conf.get("clevel", 5),
                    "shuffle": _BLOSC_SHUFFLE.get(shuffle, shuffle),
                    "blocksize": conf.get("blocksize", 0),
                }
            )
        else:
            raise UnsupportedFeatureError(
                f"variable {name!r} uses the Zarr v3 codec {cname!r}, which kerchunk's Zarr v2 "
                "metadata cannot express; write it with ds.virtualize.to_zarr(...) instead."
            )
    return endian, filters


def v2_codec_to_v3(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A numcodecs configuration (``{"id": "zlib", "level": 4}``) as a Zarr v3 codec.

    Examples
    --------
    >>> v2_codec_to_v3({"id": "zlib", "level": 4})
    {'name': 'numcodecs.zlib', 'configuration': {'level': 4}}
    """
    rest = {k: v for k, v in conf.items() if k != "id"}
    return {"name": f"numcodecs.{conf['id']}", "configuration": rest}


# ---------------------------------------------------------------------- dtypes and fills
def zarr_v2_dtype(dtype: np.dtype[Any], endian: str) -> str | list[list[str]]:
    """The Zarr v2 dtype for ``dtype`` stored with byte order ``endian``: a string, or for
    a structured dtype the list of ``[field, dtype string]`` (packed, no padding).

    Examples
    --------
    >>> zarr_v2_dtype(np.dtype("int16"), ">")
    '>i2'
    >>> zarr_v2_dtype(np.dtype([("a", "<i4"), ("b", "S2")]), "<")
    [['a', '<i4'], ['b', '|S2']]
    """
    if dtype.fields is not None:
        return [
            [str(name), str(zarr_v2_dtype(dtype.fields[name][0], endian))]
            for name in dtype.names or ()
        ]
    if dtype.kind in "OT":
        return "|O"
    if dtype.itemsize == 1 or dtype.kind in "SUbV":
        return dtype.newbyteorder("|").str if dtype.kind != "U" else dtype.str
    return dtype.newbyteorder(">" if endian == ">" else "<" if endian == "<" else "=").str


def v2_dtype_from_json(value: Any) -> np.dtype[Any]:
    """The NumPy dtype of a Zarr v2 ``dtype`` (a string, or a structured dtype's list of
    ``[field, dtype]`` pairs).

    Raises
    ------
    TypeError, ValueError
        If ``value`` is not a dtype.

    Examples
    --------
    >>> v2_dtype_from_json([["a", "<i4"], ["b", "<f8"]]).names
    ('a', 'b')
    """
    if isinstance(value, list):
        return np.dtype([(str(f[0]), v2_dtype_from_json(f[1]), *f[2:]) for f in value])
    dtype: np.dtype[Any] = np.dtype(value)
    return dtype


def v2_fill_to_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """A fill value as Zarr v2 JSON, as zarr writes it (``None`` stays ``None``; a
    variable-length string array's is a string, or none).

    Examples
    --------
    >>> v2_fill_to_json(float("nan"), np.dtype(">f4")), v2_fill_to_json(b"x", np.dtype("S1"))
    ('NaN', 'eA==')
    """
    if value is None:
        return None
    if dtype.kind in "OT":
        return value if isinstance(value, str) else None
    return fill_to_json(value, native_data_type(dtype), zarr_format=2)


def v2_fill_from_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """A Zarr v2 JSON fill value as a value of ``dtype`` (``None`` stays ``None``).

    Raises
    ------
    TypeError, ValueError, OverflowError
        If ``value`` is not a value of ``dtype``.
    """
    if value is None:
        return None
    if dtype.kind == "O":  # variable-length strings: zarr writes a string (xarray masks it)
        return value if isinstance(value, str) else None
    return fill_from_json(value, native_data_type(dtype), zarr_format=2)


def v2_default_fill(dtype: np.dtype[Any]) -> Any:
    """What a missing chunk of a v2 array with ``fill_value: null`` reads as (zeros)."""
    if dtype.kind in "OTU":
        return ""
    if dtype.kind in "SV" and dtype.fields is None:
        return b""
    return np.zeros((), dtype=dtype.newbyteorder("="))[()]


def is_zero_fill(value: Any, dtype: np.dtype[Any]) -> bool:
    """True if a missing chunk with ``fill_value: null`` reads as ``value`` (zeros)."""
    if dtype.kind in "OT":
        return value in ("", None)
    if dtype.kind in "SV":  # structured values too: all bytes zero
        return bytes(value).strip(b"\x00") == b""
    v = np.asarray(value, dtype=dtype.newbyteorder("="))
    return bool((v == 0) & ~np.signbit(v)) if dtype.kind == "f" else bool(v == 0)
