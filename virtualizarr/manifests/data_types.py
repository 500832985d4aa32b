"""Zarr data types and fill values as JSON, the way zarr-python 3 spells them, without zarr.

Our array metadata (:class:`~virtualizarr.manifests.array_metadata.ArrayMetadata`) holds
a NumPy dtype and a NumPy scalar fill value; this module turns them into the JSON of a
``zarr.json`` document (Zarr v3) or a ``.zarray`` (Zarr v2, for kerchunk) and back,
exactly as zarr-python's data types (``zarr.core.dtype``) do, so that what we write is
what zarr writes and what we read is what zarr reads. ``tests/manifests`` compares both
over every data type and fill value the readers produce.

================================  ===============================================
NumPy dtype                       Zarr v3 ``data_type``; fill value JSON
================================  ===============================================
``bool``                          ``"bool"``; ``true``/``false``
``int8`` ... ``uint64``           ``"int8"`` ...; an integer
``float16/32/64``                 ``"float32"`` ...; a number, ``"NaN"``, ``"Infinity"``
``complex64/128``                 ``"complex64"`` ...; ``[re, im]``, each as a float
``S<n>``                          ``null_terminated_bytes``; base64
``V<n>``                          ``raw_bytes``; base64
``U<n>``                          ``fixed_length_utf32``; a string
object / ``StringDType``          ``"string"`` (values: ``StringDType``); a string
``datetime64/timedelta64[u]``     ``numpy.datetime64`` ...; the integer count (NaT: min int64)
record (structured)               ``struct`` with its fields; v3: an object of field
                                  values, v2: base64 of the packed bytes
================================  ===============================================
"""

from __future__ import annotations

import base64
import functools
import math
from datetime import datetime, timedelta
from typing import Any, Final, SupportsComplex, SupportsFloat, SupportsIndex, SupportsInt

import numpy as np

from virtualizarr.errors import InvalidMetadataError

__all__ = [
    "cast_fill",
    "data_type_from_json",
    "data_type_to_json",
    "default_fill",
    "fill_from_json",
    "fill_to_json",
    "native_data_type",
]

_NAMES: Final = {
    "b": {1: "bool"},
    "i": {1: "int8", 2: "int16", 4: "int32", 8: "int64"},
    "u": {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"},
    "f": {2: "float16", 4: "float32", 8: "float64"},
    "c": {8: "complex64", 16: "complex128"},
}
_BY_NAME: Final = {
    name: np.dtype(f"{'?' if kind == 'b' else kind}{'' if kind == 'b' else size}")
    for kind, sizes in _NAMES.items()
    for size, name in sizes.items()
}
_TIME_NAMES: Final = {"M": "numpy.datetime64", "m": "numpy.timedelta64"}
_TIME_UNITS: Final = frozenset(
    ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs", "as", "generic")
)
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _bad(message: str) -> InvalidMetadataError:
    return InvalidMetadataError(message)


# ---------------------------------------------------------------------- data types
@functools.lru_cache(maxsize=512)
def native_data_type(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The NumPy dtype a Zarr array of ``dtype`` holds, as zarr-python gives it.

    The byte order becomes the machine's (Zarr stores it in the ``bytes`` codec, not in
    the data type), object and NumPy string dtypes become ``StringDType`` (Zarr's
    variable-length UTF-8 strings), and a record dtype is packed (no padding, no
    offsets) with its fields converted likewise.

    Parameters
    ----------
    dtype : numpy.dtype

    Returns
    -------
    numpy.dtype

    Raises
    ------
    InvalidMetadataError
        For dtypes Zarr has no data type for (``float128``, zero-length strings, record
        fields with titles or subarray shapes...).

    Examples
    --------
    >>> native_data_type(np.dtype(">i4"))
    dtype('int32')
    >>> native_data_type(np.dtype(object))
    StringDType()
    """
    kind = dtype.kind
    if kind in "OT":
        return np.dtype(np.dtypes.StringDType())
    if dtype.fields is not None:
        fields: list[tuple[str, np.dtype[Any]]] = []
        for name in dtype.names or ():
            field = dtype.fields[name]
            if len(field) > 2:
                raise _bad(
                    f"the record dtype {dtype} has a field title ({field[2]!r}) for {name!r}"
                )
            if field[0].subdtype is not None:
                raise _bad(f"the record dtype {dtype} has a subarray field {name!r}")
            fields.append((name, native_data_type(field[0])))
        return np.dtype(fields)
    if kind in _NAMES and dtype.itemsize in _NAMES[kind]:
        return dtype.newbyteorder("=")
    if kind in "SUV":
        if dtype.itemsize == 0:
            raise _bad(f"zero-length {dtype} has no Zarr data type (length must be >= 1)")
        return dtype.newbyteorder("=") if kind == "U" else dtype
    if kind in "mM":
        return dtype.newbyteorder("=")
    raise _bad(f"Zarr has no data type for NumPy dtype {dtype}")


def data_type_to_json(dtype: np.dtype[Any]) -> Any:
    """The Zarr v3 ``data_type`` of a native dtype (see :func:`native_data_type`).

    Examples
    --------
    >>> data_type_to_json(np.dtype("S4"))
    {'name': 'null_terminated_bytes', 'configuration': {'length_bytes': 4}}
    """
    kind = dtype.kind
    if kind in "OT":
        return "string"
    if dtype.fields is not None:
        return {
            "name": "struct",
            "configuration": {
                "fields": [
                    {"name": name, "data_type": data_type_to_json(dtype.fields[name][0])}
                    for name in dtype.names or ()
                ]
            },
        }
    if kind in _NAMES:
        return _NAMES[kind][dtype.itemsize]
    if kind == "S":
        return {"name": "null_terminated_bytes", "configuration": {"length_bytes": dtype.itemsize}}
    if kind == "V":
        return {"name": "raw_bytes", "configuration": {"length_bytes": dtype.itemsize}}
    if kind == "U":
        return {"name": "fixed_length_utf32", "configuration": {"length_bytes": dtype.itemsize}}
    unit, scale = np.datetime_data(dtype)
    return {"name": _TIME_NAMES[kind], "configuration": {"unit": unit, "scale_factor": scale}}


def _length(doc: Any, name: str) -> int:
    if (
        isinstance(doc, dict)
        and set(doc) == {"name", "configuration"}
        and isinstance(doc["configuration"], dict)
        and set(doc["configuration"]) == {"length_bytes"}
        and isinstance(doc["configuration"]["length_bytes"], int)
        and doc["configuration"]["length_bytes"] >= 1
    ):
        return int(doc["configuration"]["length_bytes"])
    raise _bad(f"invalid Zarr v3 data type {doc!r:.120} ({name} needs a positive length_bytes)")


def data_type_from_json(doc: Any) -> np.dtype[Any]:
    """The native NumPy dtype of a Zarr v3 ``data_type`` (see :func:`native_data_type`).

    Raises
    ------
    InvalidMetadataError
        If ``doc`` is not a Zarr v3 data type zarr-python knows.

    Examples
    --------
    >>> data_type_from_json({"name": "numpy.datetime64",
    ...                      "configuration": {"unit": "s", "scale_factor": 1}})
    dtype('<M8[s]')
    """
    if isinstance(doc, str):
        if doc in _BY_NAME:
            return _BY_NAME[doc]
        if doc == "string":
            return np.dtype(np.dtypes.StringDType())
        if doc in ("variable_length_bytes", "bytes"):
            return np.dtype(object)
        raise _bad(f"unknown Zarr v3 data type {doc!r:.80}")
    name = doc.get("name") if isinstance(doc, dict) else None
    if name == "null_terminated_bytes":
        return np.dtype(f"S{_length(doc, name)}")
    if name == "raw_bytes":
        return np.dtype(f"V{_length(doc, name)}")
    if name == "fixed_length_utf32":
        return np.dtype(f"<U{_length(doc, name) // 4}")
    if name in ("numpy.datetime64", "numpy.timedelta64"):
        conf = doc.get("configuration") if set(doc) == {"name", "configuration"} else None
        if not (isinstance(conf, dict) and set(conf) == {"unit", "scale_factor"}):
            raise _bad(f"invalid Zarr v3 data type {doc!r:.120} (needs unit and scale_factor)")
        unit, scale = conf["unit"], conf["scale_factor"]
        if unit not in _TIME_UNITS or not isinstance(scale, int) or not 0 < scale < 2**31:
            raise _bad(f"invalid unit or scale factor in the Zarr v3 data type {doc!r:.120}")
        code = "M8" if name == "numpy.datetime64" else "m8"
        spec = code if unit == "generic" and scale == 1 else f"{code}[{scale}{unit}]"
        return np.dtype(spec).newbyteorder("<")
    if name in ("struct", "structured"):
        conf = doc.get("configuration") if set(doc) == {"name", "configuration"} else None
        fields = conf.get("fields") if isinstance(conf, dict) and set(conf) == {"fields"} else None
        if not isinstance(fields, list):
            raise _bad(f"invalid Zarr v3 struct data type {doc!r:.120} (needs fields)")
        out: list[tuple[str, np.dtype[Any]]] = []
        for f in fields:
            if isinstance(f, dict) and set(f) == {"name", "data_type"}:
                fname, ftype = f["name"], f["data_type"]
            elif isinstance(f, list | tuple) and len(f) == 2:  # the legacy "structured" form
                fname, ftype = f
            else:
                raise _bad(f"invalid field {f!r:.80} in the Zarr v3 struct data type")
            if not isinstance(fname, str):
                raise _bad(f"invalid field name {fname!r:.80} in the Zarr v3 struct data type")
            out.append((fname, data_type_from_json(ftype)))
        try:
            return np.dtype(out)
        except (TypeError, ValueError) as e:
            raise _bad(f"invalid Zarr v3 struct data type {doc!r:.120} ({e})") from None
    raise _bad(f"unknown Zarr v3 data type {doc!r:.120}")


# ---------------------------------------------------------------------- fill values
def default_fill(dtype: np.dtype[Any]) -> Any:
    """Zarr's default scalar of a data type (zeros, empty strings), for record fields."""
    if dtype.kind in "OT":
        return ""
    if dtype.fields is not None:
        return np.array(
            [tuple(default_fill(dtype.fields[n][0]) for n in dtype.names or ())], dtype=dtype
        )[0]
    if dtype.kind == "M" and np.datetime_data(dtype)[0] == "generic":
        return np.zeros(1, dtype="i8").view(dtype)[0]
    return np.zeros(1, dtype=dtype)[0]


def _refuse(value: Any, dtype: np.dtype[Any]) -> TypeError:
    return TypeError(f"cannot use {value!r:.60} as a fill value of dtype {dtype}")


def cast_fill(value: Any, dtype: np.dtype[Any]) -> Any:
    """``value`` as a scalar of the native ``dtype``, as zarr's ``cast_scalar`` makes it.

    Raises
    ------
    TypeError, ValueError, OverflowError
        If ``value`` is not a value of ``dtype``.

    Examples
    --------
    >>> cast_fill(3, np.dtype("float32"))
    np.float32(3.0)
    """
    kind = dtype.kind
    if kind in "biufc":
        return _cast_number(value, dtype)
    if kind in "OT":
        return str(value)
    if kind == "U":
        return dtype.type(str(value)[: dtype.itemsize // 4])
    if kind == "S":
        if isinstance(value, int):
            return dtype.type(str(value)[: dtype.itemsize])
        if not isinstance(value, bytes | str):
            raise _refuse(value, dtype)
        return dtype.type(value[: dtype.itemsize])
    if dtype.fields is not None:
        if isinstance(value, bytes):
            return np.frombuffer(value, dtype=dtype)[0]
        if isinstance(value, list | tuple):
            return np.array([tuple(value)], dtype=dtype)[0]
        if not isinstance(value, int | np.void):
            raise _refuse(value, dtype)
        return np.array([value], dtype=dtype)[0]
    if kind == "V":
        if not isinstance(value, bytes | str | np.void):
            raise _refuse(value, dtype)
        return dtype.type(value, dtype)
    return _cast_time(value, dtype)


def _cast_number(value: Any, dtype: np.dtype[Any]) -> Any:
    kind = dtype.kind
    if kind == "b":
        return np.bool_(value)
    if kind in "iu":
        if not isinstance(value, SupportsInt | SupportsIndex | bytes | str):
            raise _refuse(value, dtype)
    elif kind == "f":
        if isinstance(value, str):
            try:
                dtype.type(value)  # only strings that are floats ("nan", "1e3")
            except (ValueError, OverflowError):
                raise _refuse(value, dtype) from None
        elif not isinstance(value, SupportsIndex | SupportsFloat | bytes):
            raise _refuse(value, dtype)
    elif not isinstance(value, SupportsFloat | SupportsIndex | SupportsComplex | bytes | str):
        raise _refuse(value, dtype)
    return dtype.type(value)


def _cast_time(value: Any, dtype: np.dtype[Any]) -> Any:
    unit, scale = np.datetime_data(dtype)
    if dtype.kind == "M":
        if not (value is None or isinstance(value, str | int | bytes | np.datetime64 | datetime)):
            raise _refuse(value, dtype)
        if isinstance(value, int):
            return np.int64(value).view(f"datetime64[{scale}{unit}]")
        return dtype.type(value, f"{scale}{unit}")
    if not (value is None or isinstance(value, str | int | bytes | np.timedelta64 | timedelta)):
        raise _refuse(value, dtype)
    if isinstance(value, np.timedelta64) and np.isnat(value):
        value = "NaT"
    return dtype.type(value, f"{scale}{unit}")


def _float_json(value: Any) -> Any:
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def fill_to_json(value: Any, dtype: np.dtype[Any], zarr_format: int = 3) -> Any:
    """A fill value as Zarr JSON (``zarr_format`` 3: ``zarr.json``; 2: ``.zarray``).

    ``value`` is cast to ``dtype`` first (:func:`cast_fill`), as zarr does.

    Raises
    ------
    TypeError, ValueError, OverflowError
        If ``value`` is not a value of ``dtype``.

    Examples
    --------
    >>> fill_to_json(float("nan"), np.dtype("float32"))
    'NaN'
    >>> fill_to_json(b"ab", np.dtype("S2"))
    'YWI='
    """
    kind = dtype.kind
    if kind in "OTU":  # zarr writes strings as given (a fixed-length one uncut)
        return str(value)
    scalar = cast_fill(value, dtype)
    if kind == "b":
        return bool(scalar)
    if kind in "iu":
        return int(scalar)
    if kind == "f":
        return _float_json(scalar)
    if kind == "c":
        return (_float_json(scalar.real), _float_json(scalar.imag))
    if kind == "S":
        return base64.standard_b64encode(scalar).decode("ascii")
    if dtype.fields is not None:
        if zarr_format == 2:
            return base64.b64encode(np.asarray(scalar).astype(dtype).tobytes()).decode("ascii")
        return {
            name: fill_to_json(scalar[name], dtype.fields[name][0], zarr_format)
            for name in dtype.names or ()
        }
    if kind == "V":
        return base64.standard_b64encode(scalar.tobytes()).decode("ascii")
    return int(scalar.view(np.int64).item())


def _is_json_float(doc: Any, zarr_format: int) -> bool:
    """A number, ``"NaN"``/``"Infinity"``/``"-Infinity"``, or (v3) a hex string."""
    if isinstance(doc, str):
        return doc in _SPECIAL_FLOATS or (zarr_format == 3 and doc.startswith("0x"))
    return isinstance(doc, int | float)


def _json_float(doc: Any) -> float:
    if isinstance(doc, str):
        if doc in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[doc]
        code = {4: ">f2", 8: ">f4", 16: ">f8"}.get(len(doc) - 2)
        if code is None:
            raise ValueError(f"invalid hexadecimal float {doc!r:.40}: 4, 8 or 16 digits expected")
        return float(np.frombuffer(bytes.fromhex(doc[2:]), dtype=code)[0])
    return float(doc)


def _float_from_json(doc: Any, dtype: np.dtype[Any], zarr_format: int) -> Any:
    if _is_json_float(doc, zarr_format):
        return dtype.type(_json_float(doc))
    if isinstance(doc, str):
        try:
            return dtype.type(float(doc))  # a float spelled as a string ("1.5")
        except ValueError:
            pass
    raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected a float")


def fill_from_json(doc: Any, dtype: np.dtype[Any], zarr_format: int = 3) -> Any:
    """A Zarr JSON fill value as a scalar of the native ``dtype``, as zarr reads it.

    Raises
    ------
    TypeError, ValueError, OverflowError
        If ``doc`` is not a fill value of ``dtype`` in that Zarr format.

    Examples
    --------
    >>> fill_from_json("-Infinity", np.dtype("float64"))
    np.float64(-inf)
    >>> fill_from_json([1.0, "NaN"], np.dtype("complex64"))
    np.complex64(1+nanj)
    """
    kind = dtype.kind
    if kind == "b":  # zarr reads anything as a boolean
        return np.bool_(doc)
    if kind in "iu":
        if (isinstance(doc, float) and doc.is_integer()) or isinstance(doc, str):
            doc = int(doc)
        if not isinstance(doc, int):
            raise TypeError(
                f"invalid fill value {doc!r:.60} for dtype {dtype}: expected an integer"
            )
        return dtype.type(doc)
    if kind == "f":
        return _float_from_json(doc, dtype, zarr_format)
    if kind == "c":
        if isinstance(doc, str) or not isinstance(doc, list | tuple) or len(doc) != 2:
            raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected [re, im]")
        if not all(_is_json_float(v, zarr_format) for v in doc):
            raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected floats")
        return dtype.type(complex(_json_float(doc[0]), _json_float(doc[1])))
    if kind in "OT":
        if not isinstance(doc, int | str | float):
            raise TypeError(f"invalid fill value {doc!r:.60} for a string array")
        return str(doc)
    if kind == "U":
        if not isinstance(doc, str):
            raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected a string")
        return dtype.type(doc)
    if dtype.fields is not None:
        return _record_from_json(doc, dtype, zarr_format)
    if kind in "SV":
        if not isinstance(doc, str):
            raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected base64")
        return dtype.type(base64.standard_b64decode(doc.encode("ascii")))
    if not (isinstance(doc, int) or doc == "NaT"):
        raise TypeError(f"invalid fill value {doc!r:.60} for dtype {dtype}: expected an integer")
    return _cast_time(doc, dtype)


def _record_from_json(doc: Any, dtype: np.dtype[Any], zarr_format: int) -> Any:
    if isinstance(doc, dict):
        values = [
            fill_from_json(doc[n], dtype.fields[n][0], zarr_format)  # type: ignore[index]
            if n in doc
            else default_fill(dtype.fields[n][0])  # type: ignore[index]
            for n in dtype.names or ()
        ]
        return np.array([tuple(values)], dtype=dtype)[0]
    if isinstance(doc, str):
        raw = base64.b64decode(doc.encode("ascii"))
        stored = dtype if zarr_format == 2 else dtype.newbyteorder("<")
        return np.frombuffer(raw, dtype=stored).astype(dtype)[0]
    raise TypeError(f"invalid fill value {doc!r:.60} for a record dtype: expected an object")
