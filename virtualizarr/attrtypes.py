"""Attributes as JSON, and back with their exact NumPy types.

JSON has one number type, so a ``float32`` ``scale_factor`` written to a reference
document reads back as a Python ``float`` -- and xarray then decodes a packed ``int16``
variable to ``float64`` instead of ``float32``. Our writers therefore record, beside the
JSON attributes, the NumPy dtype of every attribute that had one, in a place the standard
fsspec + zarr path ignores:

* kerchunk JSON and Parquet: a top-level ``"virtualizarr"`` object beside ``"version"`` and
  ``"refs"`` (JSON) or ``"metadata"`` and ``"record_size"`` (Parquet ``.zmetadata``);
* our Zarr manifest stores: a ``"virtualizarr"`` extension field of each node's
  ``zarr.json`` (``"must_understand": false``).

Its form is ``{"attribute_dtypes": {"<variable>": {"<attr>": "<f4", ...}, "": {...}}}``:
the empty name is the group itself. A dtype string stands for a NumPy scalar; a one-element
list (``["<i2"]``) for a 1-D NumPy array. Attributes absent from the record (strings,
Python numbers) are used as JSON gives them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "AttributeDtypes",
    "attribute_dtypes",
    "attrs_to_json",
    "jsonable",
    "restore_attrs",
]

AttributeDtypes = dict[str, str | list[str]]
"""Per attribute name: a dtype string (scalar) or a one-element list (1-D array)."""


def jsonable(obj: Any) -> Any:
    """An attribute value as JSON-compatible Python (NaN and infinities as strings).

    Parameters
    ----------
    obj : Any
        A NumPy scalar or array, bytes, str, number, or a list/dict of them.

    Returns
    -------
    Any
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()] if obj.ndim else jsonable(obj.item())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "surrogateescape")
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


def attrs_to_json(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """All attributes as JSON-compatible values (see :func:`jsonable`)."""
    return {str(k): jsonable(v) for k, v in attrs.items()}


def _storable(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "biufc"


def attribute_dtypes(attrs: Mapping[str, Any]) -> AttributeDtypes:
    """The NumPy dtypes of those attributes JSON would lose.

    Parameters
    ----------
    attrs : mapping
        Attributes as the source file (or xarray) gives them.

    Returns
    -------
    dict
        ``{name: "<f4"}`` for NumPy scalars, ``{name: ["<i2"]}`` for 1-D NumPy arrays.

    Examples
    --------
    >>> attribute_dtypes({"scale_factor": np.float32(0.5), "units": "K"})
    {'scale_factor': '<f4'}
    """
    out: AttributeDtypes = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic) and _storable(v.dtype):
            out[str(k)] = v.dtype.str
        elif isinstance(v, np.ndarray) and v.ndim <= 1 and _storable(v.dtype):
            out[str(k)] = [v.dtype.str] if v.ndim == 1 else v.dtype.str
    return out


def _from_json_number(value: Any, dtype: np.dtype[Any]) -> Any:
    if isinstance(value, str) and dtype.kind in "fc":
        value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value, value)
    return value


def restore_attrs(attrs: Mapping[str, Any], dtypes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes from JSON with the NumPy types :func:`attribute_dtypes` recorded.

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
            if isinstance(spec, list) and len(spec) == 1:
                dt = np.dtype(spec[0])
                vals = out[k] if isinstance(out[k], list) else [out[k]]
                out[k] = np.array([_from_json_number(v, dt) for v in vals], dtype=dt)
            elif isinstance(spec, str):
                dt = np.dtype(spec)
                value = out[k]
                if isinstance(value, list) and len(value) == 1:
                    value = value[0]
                out[k] = np.array(_from_json_number(value, dt), dtype=dt)[()]
        except (TypeError, ValueError, OverflowError):
            continue
    return out


def dataset_attribute_dtypes(
    variables: Mapping[Any, Any], attrs: Mapping[str, Any]
) -> dict[str, AttributeDtypes]:
    """The attribute-dtype record for a dataset's (CF-encoded) variables and its attributes.

    Virtual variables (backed by ``ManifestArray``) are recorded as they are; loaded ones
    as ``xarray.conventions.encode_cf_variable`` encodes them for writing.

    Parameters
    ----------
    variables : mapping of name to xarray.Variable
    attrs : mapping
        The dataset's attributes.

    Returns
    -------
    dict
        ``{variable: {attr: dtype}}``, with ``""`` for the dataset; empty entries omitted.
    """

    from virtualizarr.manifests.array import ManifestArray

    out: dict[str, AttributeDtypes] = {}
    root = attribute_dtypes(attrs)
    if root:
        out[""] = root
    for name, var in variables.items():
        if isinstance(var.data, ManifestArray):
            vattrs = var.attrs
        else:
            vattrs = encode_loaded_variable(var, str(name)).attrs
        rec = attribute_dtypes(vattrs)
        if rec:
            out[str(name)] = rec
    return out


def encode_loaded_variable(var: xr.Variable, name: str) -> xr.Variable:
    """CF-encode a loaded (in-memory) variable for writing, as ``xr.to_zarr`` would.

    Parameters
    ----------
    var : xarray.Variable
    name : str

    Returns
    -------
    xarray.Variable

    Raises
    ------
    InvalidArgumentError
        If xarray cannot encode it (its ``_FillValue``, ``units`` or ``calendar``
        attributes or encoding do not fit its values).
    """
    from virtualizarr.errors import InvalidArgumentError

    with warnings.catch_warnings():
        # xarray warns while choosing time units for an all-NaT variable; encoding it is
        # still well defined (every value becomes the fill value)
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        try:
            return xr.conventions.encode_cf_variable(var, name=name)
        except (TypeError, ValueError, OverflowError, KeyError) as e:
            raise InvalidArgumentError(
                f"the loaded variable {name!r} cannot be CF-encoded for writing "
                f"({type(e).__name__}: {e}). Its encoding and attributes (_FillValue, "
                f"units, calendar, dtype) must fit its values; found encoding "
                f"{dict(var.encoding)!r:.200} and attributes {dict(var.attrs)!r:.200}. Fix "
                "or drop them (ds[name].encoding = {}) before writing."
            ) from e
