"""Variables whose values a reader computes rather than finds in the file.

Some formats store coordinates implicitly: a GeoTIFF's affine transform gives ``x`` and
``y``, a GRIB message's grid definition gives latitudes and times. A reader computes
those values and keeps them inside the manifest as one inline chunk, so they travel with
the references and read back without the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    VirtualVariable,
    cf_encoding_attrs,
    make_array_metadata,
)

__all__ = ["inline_variable"]


def inline_variable(
    name: str,
    values: npt.ArrayLike,
    dims: Sequence[str],
    attrs: Mapping[str, Any] | None = None,
    fill_value: Any = None,
) -> VirtualVariable:
    """A variable whose values are one inline chunk (little-endian, no codec).

    Parameters
    ----------
    name : str
    values : array-like
        Numeric, boolean or fixed-width bytes values (0-d for a scalar).
    dims : sequence of str
    attrs : mapping, optional
    fill_value : scalar, optional
        Defaults to zero of the dtype (nothing is missing, so it never shows).

    Returns
    -------
    VirtualVariable

    Examples
    --------
    >>> v = inline_variable("x", [1.5, 2.5], ["x"])
    >>> v.data.shape, v.data.manifest.inline[0] == np.array([1.5, 2.5], "<f8").tobytes()
    ((2,), True)
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iufcmM" and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    shape = arr.shape
    chunks = tuple(max(int(n), 1) for n in shape)
    if fill_value is None:
        fill_value = b"" if arr.dtype.kind == "S" else np.zeros((), arr.dtype.newbyteorder("="))[()]
    metadata = make_array_metadata(
        shape=shape,
        dtype=arr.dtype,
        chunks=chunks,
        fill_value=fill_value,
        dimension_names=tuple(dims),
    )
    cells = np.empty((1,) * len(shape), dtype=object)
    cells[(0,) * len(shape)] = np.ascontiguousarray(arr).tobytes()
    if arr.size == 0:
        cells[(0,) * len(shape)] = None
    attributes = dict(attrs or {})
    data = ManifestArray(
        metadata,
        ChunkManifest.inlined(cells),
        name=name,
        encoding_attrs=cf_encoding_attrs(attributes),
    )
    return VirtualVariable(tuple(dims), data, attributes)
