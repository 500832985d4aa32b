"""Combining rules: when virtual arrays can share one Zarr array without wrong values.

Two arrays can share one Zarr array only if every chunk decodes the same way: same
dtype, codecs, chunk shape (off the concatenation axis), fill value, and the same CF
encoding attributes (a different ``scale_factor`` or time ``units`` would silently change
values). Whenever they differ we raise :class:`IncompatibleArraysError` naming the
variable and the differing values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from virtualizarr.errors import IncompatibleArraysError
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import codecs_to_json, metadata_chunks

__all__ = ["CF_ENCODING_KEYS", "check_combinable", "cf_encoding_attrs", "values_equal"]

CF_ENCODING_KEYS = (
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "_Unsigned",
    "calendar",
    "units",
)
"""Attributes that change how stored values decode (``units`` only for times)."""


def cf_encoding_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of a variable's attributes that controls how its values decode.

    ``units`` counts only for CF times (``"<unit> since <epoch>"``): other units label
    values without changing them.
    """
    out: dict[str, Any] = {}
    for key in CF_ENCODING_KEYS:
        if key not in attrs:
            continue
        value = attrs[key]
        if key == "units" and not (isinstance(value, str) and " since " in value):
            continue
        out[key] = value
    return out


def values_equal(a: Any, b: Any) -> bool:
    """Equality for attribute values: NumPy-aware, NaN equals NaN, dtype counts."""
    if isinstance(a, str | bytes) or isinstance(b, str | bytes):
        return type(a) is type(b) and bool(a == b)
    aa, bb = np.asarray(a), np.asarray(b)
    if aa.shape != bb.shape:
        return False
    if aa.dtype.kind in "fc" and bb.dtype.kind in "fc":
        return aa.dtype == bb.dtype and bool(np.array_equal(aa, bb, equal_nan=True))
    try:
        return aa.dtype == bb.dtype and bool(np.array_equal(aa, bb))
    except TypeError:
        return False


def _same_encoding(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Cheap exact check first (same keys, identical or equal values), then the full one."""
    if a.keys() != b.keys():
        return False
    return all(a[k] is b[k] or values_equal(a[k], b[k]) for k in a)


def _describe(name: str | None) -> str:
    return f"variable {name!r}" if name else "a variable"


def check_combinable(arrays: Sequence[ManifestArray], axis: int | None) -> None:
    """Raise unless ``arrays`` can be concatenated along ``axis`` (None: stacked).

    Raises
    ------
    IncompatibleArraysError
        Naming the variable and the first property that differs.
    """
    first = arrays[0]
    name = next((a.name for a in arrays if a.name), None)
    what = _describe(name)
    ref_codecs = codecs_to_json(first.metadata)
    ref_chunks = metadata_chunks(first.metadata)
    enc0 = first.encoding_attrs
    for i, other in enumerate(arrays[1:], start=1):
        if other.metadata is first.metadata and _same_encoding(enc0, other.encoding_attrs):
            # One shared metadata object (readers reuse it for identical arrays): dtype,
            # codecs, chunks, shape and fill value agree by construction.
            continue
        if other.ndim != first.ndim:
            raise IncompatibleArraysError(
                f"cannot combine {what}: array 0 has {first.ndim} dimensions, array {i} has "
                f"{other.ndim}."
            )
        if other.dtype != first.dtype:
            raise IncompatibleArraysError(
                f"cannot combine {what}: dtypes differ ({first.dtype} vs {other.dtype} in "
                f"array {i}). Load the variable (loadable_variables=[...]) or drop it."
            )
        codecs = codecs_to_json(other.metadata)
        if codecs != ref_codecs:
            raise IncompatibleArraysError(
                f"cannot combine {what}: codecs differ ({ref_codecs} vs {codecs} in array {i}); "
                "one Zarr array can have only one codec pipeline. Load the variable "
                "(loadable_variables=[...]) or drop it."
            )
        chunks = metadata_chunks(other.metadata)
        for ax, (c0, c1) in enumerate(zip(ref_chunks, chunks, strict=True)):
            if ax == axis:
                continue
            if c0 != c1:
                raise IncompatibleArraysError(
                    f"cannot combine {what}: chunk shapes differ along axis {ax} ({c0} vs {c1} "
                    f"in array {i}). Rechunking is impossible without copying data; load the "
                    "variable (loadable_variables=[...]) or drop it."
                )
            if other.shape[ax] != first.shape[ax]:
                raise IncompatibleArraysError(
                    f"cannot combine {what}: shapes differ along axis {ax} ({first.shape[ax]} vs "
                    f"{other.shape[ax]} in array {i})."
                )
        if not values_equal(first.metadata.fill_value, other.metadata.fill_value):
            raise IncompatibleArraysError(
                f"cannot combine {what}: fill values differ ({first.metadata.fill_value!r} vs "
                f"{other.metadata.fill_value!r} in array {i}); missing chunks would read "
                "wrongly."
            )
        enc1 = other.encoding_attrs
        for key in sorted(set(enc0) | set(enc1)):
            v0, v1 = enc0.get(key, "<absent>"), enc1.get(key, "<absent>")
            if not values_equal(v0, v1):
                raise IncompatibleArraysError(
                    f"cannot combine {what}: its encoding attribute {key!r} differs "
                    f"({v0!r} vs {v1!r} in array {i}), so the same stored values would decode "
                    "differently. Combine only files with the same encoding, or load the "
                    "variable (loadable_variables=[...]) so xarray decodes each file first."
                )
