"""Helpers for testing virtual datasets against their source files."""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from virtualizarr.api import open_virtual_dataset
from virtualizarr.formats.kerchunk import KerchunkRefs

__all__ = ["open_kerchunk_refs", "open_via_kerchunk"]


def open_kerchunk_refs(refs: KerchunkRefs | str | os.PathLike[str], **kwargs: Any) -> xr.Dataset:
    """Open kerchunk references the standard way: fsspec's ReferenceFileSystem + zarr.

    Parameters
    ----------
    refs : dict or path
        A reference document or the path of a JSON file holding one.
    **kwargs
        Passed to :func:`xarray.open_dataset`.
    """
    fo = os.fspath(refs) if isinstance(refs, str | os.PathLike) else refs
    return xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={
            "consolidated": False,
            "zarr_format": 2,
            "storage_options": {"fo": fo, "asynchronous": True},
        },
        **kwargs,
    )


def open_via_kerchunk(path: str | os.PathLike[str], **kwargs: Any) -> xr.Dataset:
    """Virtualize ``path``, write kerchunk references, and open them (loaded into memory).

    ``xr.testing.assert_identical(open_via_kerchunk(p, loadable_variables=[]),
    xr.open_dataset(p))`` is the fidelity check every reader must pass.
    """
    vds = open_virtual_dataset(path, **kwargs)
    refs = vds.virtualize.to_kerchunk(format="dict")
    with open_kerchunk_refs(refs) as ds:
        return ds.load()
