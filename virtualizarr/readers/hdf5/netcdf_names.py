"""Names netCDF-C gives meaning to in HDF5 files, shared by the readers that follow it.

Kept apart from :mod:`~virtualizarr.readers.hdf5.attrs` (which imports h5py) so that the
DMR++ reader, which describes HDF5 files without opening them, can use them too.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DIMENSION_ONLY", "HIDDEN_ATTRS"]

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

DIMENSION_ONLY: Final = "This is a netCDF dimension but not a netCDF variable"
"""How the ``NAME`` of a dimension without a coordinate variable starts (such a dataset is
netCDF-C's bookkeeping, not a variable)."""
