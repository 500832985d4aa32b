"""Loading the stored values of virtual variables (``loadable_variables``, verification)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from virtualizarr.io.files import FileCache
from virtualizarr.manifests.group import VirtualVariable
from virtualizarr.reading.decode import decoder_for
from virtualizarr.reading.native import NativeArray

__all__ = ["load_manifest_arrays"]


def load_manifest_arrays(
    variables: Mapping[str, VirtualVariable],
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray[Any, Any]]:
    """Read the stored (encoded) values of virtual variables into NumPy arrays.

    Chunks are read and decoded by the native read path (coalesced reads, numcodecs), the
    same one ``engine="virtualizarr"`` uses; a chunk whose codec chain numcodecs cannot
    decode is decoded by zarr itself (:class:`~virtualizarr.reading.decode.ZarrChunkDecoder`,
    the only case in which loading imports zarr).

    Parameters
    ----------
    variables : mapping of str to VirtualVariable
    storage_options : mapping, optional
        fsspec options for remote sources.

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    ChunkReadError
        If a chunk cannot be read or decoded.
    """
    if not variables:
        return {}
    out: dict[str, np.ndarray[Any, Any]] = {}
    with FileCache(storage_options=storage_options) as files:
        for name, v in variables.items():
            native = NativeArray(v.data, decoder_for(v.data.metadata), files, name=name)
            out[name] = native.read((slice(None),) * v.data.ndim)
    return out
