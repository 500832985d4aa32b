"""HDF5 attributes as ``xr.open_dataset(path, engine="netcdf4")`` shows them.

netCDF-C reads HDF5 attributes and netCDF4-python converts them; we reproduce the result:

* numeric attributes keep their type; one value becomes a NumPy scalar
  (``np.int32(3)``), several a 1-D array in native byte order;
* strings (fixed or variable length, bytes or UTF-8) become ``str``, several a ``list``;
* attributes netCDF-C keeps to itself (dimension-scale bookkeeping, ``_Netcdf4Dimid``,
  ``_NCProperties`` ...) are hidden, as are attributes of types netCDF cannot show
  (enums such as h5py's booleans, compounds, references, opaque data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import h5py
import numpy as np

from virtualizarr.errors import FileFormatError

__all__ = ["HIDDEN_ATTRS", "read_attrs"]

HIDDEN_ATTRS: Final = frozenset(
    {
        "CLASS",
        "DIMENSION_LIST",
        "NAME",
        "REFERENCE_LIST",
        "_Netcdf4Coordinates",
        "_Netcdf4Dimid",
        "_nc3_strict",
        "_NCProperties",
        "_IsNetcdf4",
        "_SuperblockVersion",
        "_Format",
        "_Codecs",
    }
)
"""Attribute names netCDF-C never shows as attributes."""

_NUMERIC_CLASSES: Final = (h5py.h5t.INTEGER, h5py.h5t.FLOAT)

_NETCDF_NUMERIC: Final = frozenset({"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"})
"""Kinds and sizes of the numeric types netCDF has (half and long-double floats are not)."""


def _decode(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _string_attr(value: Any) -> str | list[str]:
    if isinstance(value, bytes | str):
        return _decode(value)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return _decode(arr.item())
    items = [_decode(v) for v in arr.ravel().tolist()]
    return items[0] if len(items) == 1 else items


def _numeric_attr(value: Any) -> Any:
    arr = np.asarray(value)
    native = arr.dtype.newbyteorder("=")
    if arr.dtype != native:
        arr = arr.astype(native)
    if arr.size == 1:
        return arr.reshape(()).copy()[()]
    return arr.ravel()


def read_attrs(obj: h5py.HLObject, enum_types: Sequence[Any] = ()) -> dict[str, Any]:
    """The attributes of an HDF5 group or dataset, converted as netCDF4-python does.

    Parameters
    ----------
    obj : h5py.Group or h5py.Dataset
    enum_types : sequence of h5py TypeID
        Enum types of the file's datasets. netCDF-C shows an enum attribute (as its
        integer value) when its type is committed or equals one of these, and hides it
        otherwise.

    Returns
    -------
    dict
        Attribute names to values (NumPy scalars, 1-D arrays, ``str`` or ``list`` of str).
    """
    out: dict[str, Any] = {}
    attrs = obj.attrs
    try:
        names = list(attrs)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise _corrupt(obj, None, e) from e
    for name in names:
        if name in HIDDEN_ATTRS:
            continue
        try:
            value = _read_attr(attrs, name, enum_types)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
            raise _corrupt(obj, name, e) from e
        if value is not _HIDDEN:
            out[name] = value
    return out


_HIDDEN: Final = object()


def _corrupt(obj: h5py.HLObject, name: str | None, e: Exception) -> FileFormatError:
    try:
        where = f"{obj.name!r} of {obj.file.filename}"
    except (OSError, RuntimeError, ValueError):  # pragma: no cover - a closed file
        where = "an HDF5 object"
    what = f"attribute {name!r}" if name is not None else "the attribute list"
    return FileFormatError(
        f"could not read {what} of {where}: expected a readable HDF5 attribute, h5py "
        f"reports {type(e).__name__}: {e}. The file is probably corrupt or truncated; check "
        "it with h5dump, or re-create it."
    )


def _read_attr(attrs: h5py.AttributeManager, name: str, enum_types: Sequence[Any]) -> Any:
    aid = attrs.get_id(name)
    atype = aid.get_type()
    cls = atype.get_class()
    if cls == h5py.h5t.STRING:
        if aid.shape is None:  # empty dataspace
            return ""
        return _string_attr(attrs[name])
    if cls == h5py.h5t.ENUM:
        if aid.shape is not None and (atype.committed() or any(atype == t for t in enum_types)):
            base = np.dtype(atype.get_super().dtype.str)
            if f"{base.kind}{base.itemsize}" in _NETCDF_NUMERIC:
                return _numeric_attr(np.asarray(attrs[name]).astype(base))
        return _HIDDEN
    if cls in _NUMERIC_CLASSES:
        if atype.get_size() not in ((4, 8) if cls == h5py.h5t.FLOAT else (1, 2, 4, 8)):
            return _HIDDEN  # half or long-double floats, odd-sized integers
        dtype = aid.dtype
        if f"{dtype.kind}{dtype.itemsize}" not in _NETCDF_NUMERIC:
            return _HIDDEN  # half or long-double floats, odd-sized integers: not netCDF types
        if aid.shape is None:
            return np.array([], dtype=dtype.newbyteorder("="))
        return _numeric_attr(attrs[name])
    # other enums (h5py booleans), compounds, references, opaque, vlen sequences: netCDF-C
    # does not show them either.
    return _HIDDEN
