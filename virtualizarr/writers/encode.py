"""A virtual dataset as every writer sees it: names checked, loaded variables CF-encoded, once.

Writers do not walk an ``xarray.Dataset`` themselves. :func:`encode_dataset` splits it
into virtual variables (a :class:`~virtualizarr.manifests.ManifestArray` each, attributes
as the source stores them) and loaded ones (values and attributes CF-encoded exactly as
``xr.to_zarr`` would write them), with the dataset's attributes, the recorded identities
of its sources and the attribute-type record -- so every output format writes the same
attributes with the same encoder (:mod:`virtualizarr.formats.attrs`).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from virtualizarr.errors import InvalidArgumentError, UnsupportedFeatureError
from virtualizarr.formats.attrs import AttributeDtypes, attribute_dtypes
from virtualizarr.identity import dataset_sources
from virtualizarr.manifests.array import ManifestArray

__all__ = ["EncodedDataset", "EncodedVariable", "encode_dataset", "encode_loaded_variable"]


@dataclass(frozen=True, slots=True)
class EncodedVariable:
    """One variable ready to write.

    Attributes
    ----------
    name : str
        A valid Zarr array name.
    dims : tuple of str
    attrs : dict
        The attributes to write (CF-encoded for loaded variables).
    array : ManifestArray or None
        The chunk references of a virtual variable.
    values : numpy.ndarray or None
        The CF-encoded values of a loaded variable.
    """

    name: str
    dims: tuple[str, ...]
    attrs: dict[str, Any]
    array: ManifestArray | None = None
    values: npt.NDArray[Any] | None = None


@dataclass(frozen=True, slots=True)
class EncodedDataset:
    """A virtual dataset ready to write.

    Attributes
    ----------
    variables : tuple of EncodedVariable
        In dataset order, coordinates included.
    attrs : dict
        The dataset's attributes (with xarray's ``coordinates`` bookkeeping).
    sources : dict
        Path (as the manifests hold it) -> recorded identity mapping.
    """

    variables: tuple[EncodedVariable, ...]
    attrs: dict[str, Any]
    sources: dict[str, dict[str, Any]]

    def attribute_dtypes(self) -> dict[str, AttributeDtypes]:
        """The attribute-type record: ``{variable: {attr: type}}``, ``""`` for the dataset."""
        out: dict[str, AttributeDtypes] = {}
        root = attribute_dtypes(self.attrs)
        if root:
            out[""] = root
        for var in self.variables:
            rec = attribute_dtypes(var.attrs)
            if rec:
                out[var.name] = rec
        return out

    def extension(self) -> dict[str, Any]:
        """The ``"virtualizarr"`` record of a kerchunk document: attribute types and source
        identities (empty when there is nothing to record)."""
        ext: dict[str, Any] = {}
        dtypes = self.attribute_dtypes()
        if dtypes:
            ext["attribute_dtypes"] = dtypes
        if self.sources:
            ext["sources"] = self.sources
        return ext


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


def _array_name(name: Hashable, reserved: Iterable[str]) -> str:
    s = str(name)
    if not s or "/" in s or s.startswith(".") or s in reserved:
        raise UnsupportedFeatureError(
            f"variable name {s!r} cannot be a Zarr array name (empty, contains '/', starts "
            "with '.', or is reserved by the format); rename it before writing."
        )
    return s


def encode_dataset(ds: xr.Dataset, *, reserved: Iterable[str] = ()) -> EncodedDataset:
    """Prepare a virtual dataset for a writer (see the module documentation).

    Parameters
    ----------
    ds : xarray.Dataset
        Variables backed by :class:`ManifestArray` stay references; others are loaded.
    reserved : iterable of str
        Names the output format keeps for itself (``"zarr.json"``).

    Returns
    -------
    EncodedDataset

    Raises
    ------
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    InvalidArgumentError
        If a loaded variable cannot be CF-encoded.
    """
    reserved = tuple(reserved)
    variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
    out = []
    seen: dict[str, Hashable] = {}
    for name, var in variables.items():
        key = _array_name(name, reserved)
        if key in seen:
            raise UnsupportedFeatureError(
                f"variables {seen[key]!r} and {name!r} would both be written as the array "
                f"{key!r} (names are strings in every output); rename one before writing."
            )
        seen[key] = name
        if isinstance(var.data, ManifestArray):
            dims = tuple(str(d) for d in var.dims)
            out.append(EncodedVariable(key, dims, dict(var.attrs), array=var.data))
        else:
            encoded = encode_loaded_variable(var, key)
            dims = tuple(str(d) for d in encoded.dims)
            values = np.asarray(encoded.values)
            out.append(EncodedVariable(key, dims, dict(encoded.attrs), values=values))
    return EncodedDataset(tuple(out), dict(attrs), dataset_sources(ds))
