"""Attributes as JSON, and back with their exact types: the one encoder of every output.

JSON has one number type and no bytes, so a ``float32`` ``scale_factor`` written to a
reference document would read back as a Python ``float`` -- and xarray would then decode a
packed ``int16`` variable to ``float64`` instead of ``float32``. Every writer therefore
encodes attributes with :func:`jsonable` (the same rules for every output format) and
records, beside the JSON, the type of each attribute JSON would lose, in a place the
standard fsspec + zarr path ignores:

* kerchunk JSON and Parquet: a top-level ``"virtualizarr"`` object beside ``"version"`` and
  ``"refs"`` (JSON) or ``"metadata"`` and ``"record_size"`` (Parquet ``.zmetadata``);
* Zarr manifest stores: the ``"virtualizarr"`` extension field of each node's ``zarr.json``.

The record is ``{"attribute_dtypes": {"<variable>": {"<attr>": "<f4", ...}, "": {...}}}``
(the empty name is the group itself). Its values:

* a NumPy dtype string (``"<f4"``, ``"|S5"``, ``"<U3"``) for a NumPy scalar;
* a one-element list (``["<i2"]``) for a 1-D NumPy array;
* ``"py:bytes"``, ``"py:complex"`` or ``"py:float"`` for a Python ``bytes``, a ``complex``
  or a non-finite ``float`` (finite floats, ints, bools, strings, ``None``, lists and
  dicts come back from JSON as they were).

How values are written (:func:`jsonable`): NumPy scalars and arrays as their Python
values; bytes as UTF-8 text, undecodable bytes kept as lone surrogates
(``surrogateescape``, which JSON escapes as ``\\udcXX``); complex numbers as
``[real, imag]``; NaN and infinities as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (Zarr v3's spelling; JSON has no literal for them) -- except in the
attributes of kerchunk references (``.zattrs``, also in Parquet's ``.zmetadata``), which
fsspec and zarr open: there they are the bare tokens ``NaN``/``Infinity`` that zarr-python
itself writes in ``.zattrs`` and reads back as floats (``keep_non_finite=True``). Icechunk
refuses bare tokens, so its attributes keep the strings (a plain reader sees ``"NaN"``).

Known limits: a non-finite float or bytes *inside* a nested list or dict comes back as its
JSON text; a NumPy array of two or more dimensions comes back as nested lists; a
``longdouble`` keeps only float64 precision.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

__all__ = [
    "AttributeDtypes",
    "attribute_dtypes",
    "attrs_to_json",
    "dumps",
    "jsonable",
    "restore_attrs",
]

AttributeDtypes = dict[str, str | list[str]]
"""Per attribute name: a type record (see the module documentation)."""

_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_PY_BYTES: Final = "py:bytes"
_PY_COMPLEX: Final = "py:complex"
_PY_FLOAT: Final = "py:float"


def _float(x: float, keep: bool = False) -> float | str:
    if keep or math.isfinite(x):
        return float(x)
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def jsonable(obj: Any, *, keep_non_finite: bool = False) -> Any:
    """An attribute value (or a whole document) as JSON-compatible Python.

    Parameters
    ----------
    obj : Any
        A NumPy scalar or array, bytes, str, number, or a list/tuple/dict of them.
    keep_non_finite : bool, default False
        Keep NaN and infinities as floats, to be written as the bare ``NaN``/``Infinity``
        tokens zarr-python writes in attributes (and Python's, ujson's and zarr's readers
        accept), instead of the strings ``"NaN"``/``"Infinity"``.

    Returns
    -------
    Any
        Built from dict, list, str, int, float (finite unless ``keep_non_finite``), bool
        and None only.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": b"x", "c": [np.nan, 1 + 2j]})
    {'a': 0.5, 'b': 'x', 'c': ['NaN', [1.0, 2.0]]}
    """
    if obj is None or type(obj) in (str, bool, int):
        return obj
    if isinstance(obj, str):
        return str(obj)  # np.str_ and other subclasses
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(obj, keep_non_finite)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, keep_non_finite=keep_non_finite) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, keep_non_finite=keep_non_finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return (
            [jsonable(v, keep_non_finite=keep_non_finite) for v in obj.tolist()]
            if obj.ndim
            else jsonable(obj[()], keep_non_finite=keep_non_finite)
        )
    if isinstance(obj, np.generic):
        if isinstance(obj, np.floating) and not isinstance(obj.item(), float):
            return _float(float(obj), keep_non_finite)  # long double: no Python type of its own
        if isinstance(obj, np.complexfloating):
            return [
                _float(float(obj.real), keep_non_finite),
                _float(float(obj.imag), keep_non_finite),
            ]
        return jsonable(obj.item(), keep_non_finite=keep_non_finite)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "surrogateescape")
    if isinstance(obj, complex):
        return [_float(obj.real, keep_non_finite), _float(obj.imag, keep_non_finite)]
    return obj


def attrs_to_json(attrs: Mapping[str, Any], *, keep_non_finite: bool = False) -> dict[str, Any]:
    """All attributes as JSON-compatible values (see :func:`jsonable`)."""
    return {str(k): jsonable(v, keep_non_finite=keep_non_finite) for k, v in attrs.items()}


def dumps(doc: Any, *, indent: int | None = None, keep_non_finite: bool = False) -> bytes:
    """A JSON document (attributes, Zarr metadata) as UTF-8 bytes, through :func:`jsonable`.

    Examples
    --------
    >>> dumps({"scale_factor": np.float32(0.5)})
    b'{"scale_factor": 0.5}'
    >>> dumps({"valid_max": np.inf}, keep_non_finite=True)
    b'{"valid_max": Infinity}'
    """
    value = jsonable(doc, keep_non_finite=keep_non_finite)
    return json.dumps(value, indent=indent, allow_nan=keep_non_finite).encode()


def _numpy_record(dtype: np.dtype[Any]) -> str | None:
    return dtype.str if dtype.kind in "biufcSU" else None


def attribute_dtypes(attrs: Mapping[str, Any]) -> AttributeDtypes:
    """The types of those attributes JSON would lose.

    Parameters
    ----------
    attrs : mapping
        Attributes as the source file (or xarray) gives them.

    Returns
    -------
    dict
        See the module documentation for the record's values.

    Examples
    --------
    >>> attribute_dtypes({"scale_factor": np.float32(0.5), "units": "K", "raw": b"x"})
    {'scale_factor': '<f4', 'raw': 'py:bytes'}
    """
    out: AttributeDtypes = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic):
            rec = _numpy_record(v.dtype)
            if rec is not None:
                out[str(k)] = rec
        elif isinstance(v, np.ndarray) and v.ndim <= 1:
            rec = _numpy_record(v.dtype)
            if rec is not None:
                out[str(k)] = [rec] if v.ndim == 1 else rec
        elif isinstance(v, bytes):
            out[str(k)] = _PY_BYTES
        elif isinstance(v, complex):
            out[str(k)] = _PY_COMPLEX
        elif isinstance(v, float) and not math.isfinite(v):
            out[str(k)] = _PY_FLOAT
    return out


def _scalar(value: Any, dt: np.dtype[Any]) -> Any:
    """One JSON value as a value of ``dt`` (before the array is built)."""
    if dt.kind in "fc" and isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if dt.kind == "c" and isinstance(value, list) and len(value) == 2:
        re, im = (_NON_FINITE[p] if p in _NON_FINITE else float(p) for p in value)
        return complex(re, im)
    if dt.kind == "S" and isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return value


def _restore_one(value: Any, spec: Any) -> Any:
    if spec == _PY_BYTES and isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if spec == _PY_FLOAT and isinstance(value, str | float | int):
        return float(_NON_FINITE.get(value, value) if isinstance(value, str) else value)
    if spec == _PY_COMPLEX and isinstance(value, list) and len(value) == 2:
        return _scalar(value, np.dtype("c16"))
    if isinstance(spec, list) and len(spec) == 1:
        dt = np.dtype(spec[0])
        values = value if isinstance(value, list) else [value]
        return np.array([_scalar(v, dt) for v in values], dtype=dt)
    if isinstance(spec, str) and not spec.startswith("py:"):
        dt = np.dtype(spec)
        if isinstance(value, list) and len(value) == 1 and dt.kind != "c":
            value = value[0]
        return np.array(_scalar(value, dt), dtype=dt)[()]
    return value


def restore_attrs(attrs: Mapping[str, Any], dtypes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes from JSON with the types :func:`attribute_dtypes` recorded.

    Parameters
    ----------
    attrs : mapping
        Attributes as read from JSON.
    dtypes : mapping, optional
        The record for these attributes; malformed entries are ignored (the JSON value
        is kept).

    Returns
    -------
    dict

    Examples
    --------
    >>> restore_attrs({"scale_factor": 0.5}, {"scale_factor": "<f4"})["scale_factor"].dtype
    dtype('float32')
    """
    out = dict(attrs)
    for k, spec in (dtypes or {}).items():
        if k not in out:
            continue
        try:
            out[k] = _restore_one(out[k], spec)
        except (TypeError, ValueError, OverflowError):
            continue
    return out
