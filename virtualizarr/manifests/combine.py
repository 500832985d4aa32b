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

__all__ = [
    "CF_ENCODING_KEYS",
    "cf_encoding_attrs",
    "check_combinable",
    "decoding_codecs",
    "values_equal",
]

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


_ENCODE_ONLY = frozenset({"level", "clevel"})
"""Codec settings that change how bytes are compressed but not how they decode."""


def decoding_codecs(metadata: Any) -> list[dict[str, Any]]:
    """The codec pipeline without the settings decoding ignores (compression levels).

    Two arrays whose pipelines differ only in, say, deflate level decode identically and
    can share one Zarr array (which then records the first array's level).

    Examples
    --------
    >>> from virtualizarr.manifests.metadata import make_array_metadata
    >>> import numpy as np
    >>> m = make_array_metadata(shape=(2,), dtype=np.dtype("i2"), chunks=(2,), fill_value=0,
    ...     codecs=[{"name": "numcodecs.zlib", "configuration": {"level": 4}}])
    >>> decoding_codecs(m)[1]
    {'name': 'numcodecs.zlib', 'configuration': {}}
    """
    return [
        {
            "name": c["name"],
            "configuration": {k: v for k, v in c["configuration"].items() if k not in _ENCODE_ONLY},
        }
        for c in codecs_to_json(metadata)
    ]


def _where(arr: ManifestArray, i: int) -> str:
    """Array ``i`` of a combination, and where it came from."""
    paths = arr.manifest.paths
    if not paths:
        return f"array {i}"
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f"array {i} (from {paths[0]}{more})"


def check_combinable(arrays: Sequence[ManifestArray], axis: int | None) -> None:
    """Raise unless ``arrays`` can be concatenated along ``axis`` (None: stacked).

    Raises
    ------
    IncompatibleArraysError
        Naming the variable, the first property that differs, and the source files of
        both arrays.
    """
    first = arrays[0]
    name = next((a.name for a in arrays if a.name), None)
    what = _describe(name)
    ref_codecs = decoding_codecs(first.metadata)
    ref_chunks = metadata_chunks(first.metadata)
    enc0 = first.encoding_attrs
    for i, other in enumerate(arrays[1:], start=1):
        if other.metadata is first.metadata and _same_encoding(enc0, other.encoding_attrs):
            # One shared metadata object (readers reuse it for identical arrays): dtype,
            # codecs, chunks, shape and fill value agree by construction.
            continue
        pair = f"{_where(first, 0)} vs {_where(other, i)}"
        if other.ndim != first.ndim:
            raise IncompatibleArraysError(
                f"cannot combine {what}: it has {first.ndim} dimensions in {_where(first, 0)} "
                f"but {other.ndim} in {_where(other, i)}."
            )
        if other.dtype != first.dtype:
            raise IncompatibleArraysError(
                f"cannot combine {what}: dtypes differ ({first.dtype} vs {other.dtype}: {pair}). "
                "Load the variable (loadable_variables=[...]) or drop it."
            )
        codecs = decoding_codecs(other.metadata)
        if codecs != ref_codecs:
            raise IncompatibleArraysError(
                f"cannot combine {what}: codecs differ ({ref_codecs} vs {codecs}: {pair}); "
                "one Zarr array can have only one codec pipeline. Load the variable "
                "(loadable_variables=[...]) or drop it."
            )
        chunks = metadata_chunks(other.metadata)
        for ax, (c0, c1) in enumerate(zip(ref_chunks, chunks, strict=True)):
            if ax == axis:
                continue
            if c0 != c1:
                raise IncompatibleArraysError(
                    f"cannot combine {what}: chunk shapes differ along axis {ax} ({c0} vs {c1}: "
                    f"{pair}). Rechunking is impossible without copying data; load the "
                    "variable (loadable_variables=[...]) or drop it."
                )
            if other.shape[ax] != first.shape[ax]:
                raise IncompatibleArraysError(
                    f"cannot combine {what}: shapes differ along axis {ax} ({first.shape[ax]} vs "
                    f"{other.shape[ax]}: {pair})."
                )
        if not values_equal(first.metadata.fill_value, other.metadata.fill_value):
            raise IncompatibleArraysError(
                f"cannot combine {what}: fill values differ ({first.metadata.fill_value!r} vs "
                f"{other.metadata.fill_value!r}: {pair}); missing chunks would read wrongly."
            )
        enc1 = other.encoding_attrs
        for key in sorted(set(enc0) | set(enc1)):
            v0, v1 = enc0.get(key, "<absent>"), enc1.get(key, "<absent>")
            if not values_equal(v0, v1):
                raise IncompatibleArraysError(
                    f"cannot combine {what}: its encoding attribute {key!r} differs "
                    f"({v0!r} vs {v1!r}: {pair}), so the same stored values would decode "
                    "differently. Combine only files with the same encoding, or load the "
                    "variable (loadable_variables=[...]) so xarray decodes each file first."
                )
