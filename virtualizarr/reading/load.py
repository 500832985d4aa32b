"""Loading the stored values of virtual variables (``loadable_variables``, verification)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from virtualizarr.io.files import FileCache
from virtualizarr.manifests.group import VirtualGroup, VirtualVariable
from virtualizarr.manifests.metadata import rectilinear_grids
from virtualizarr.reading.decode import chunk_decoder
from virtualizarr.reading.native import NativeArray
from virtualizarr.reading.store import ManifestStore

__all__ = ["load_manifest_arrays"]


def load_manifest_arrays(
    variables: Mapping[str, VirtualVariable],
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray[Any, Any]]:
    """Read the stored (encoded) values of virtual variables into NumPy arrays.

    Chunks are read and decoded by the native read path (coalesced reads, numcodecs), the
    same one ``engine="virtualizarr"`` uses; a codec chain it cannot map is decoded by zarr
    itself through a :class:`ManifestStore`.

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
    fallback: dict[str, VirtualVariable] = {}
    with FileCache(storage_options=storage_options) as files:
        for name, v in variables.items():
            decoder = chunk_decoder(v.data.metadata)
            if decoder is None:
                fallback[name] = v
                continue
            native = NativeArray(v.data, decoder, files, name=name)
            out[name] = native.read((slice(None),) * v.data.ndim)
    if fallback:
        store = ManifestStore(VirtualGroup(fallback), storage_options=storage_options)
        for name in fallback:
            with rectilinear_grids():  # zarr parses the grid when it opens the array
                z = zarr.open_array(store, path=name, mode="r", zarr_format=3)
            out[name] = np.asarray(z[...])
    return out
