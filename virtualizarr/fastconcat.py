"""Many files' prepared groups concatenated column-wise, then one Dataset built.

``open_virtual_mfdataset(paths, combine="nested", concat_dim="time")`` used to build one
xarray Dataset per file and let ``xr.combine_nested`` concatenate them: for archives of
many small files, building and combining those Datasets cost as much as reading the
files' metadata. When the combination is a plain concatenation along one existing
dimension, :func:`concat_prepared` does the same work on the prepared groups instead --
manifests concatenated with the same checks and errors as ``xr.concat`` of virtual
datasets, loaded values concatenated still encoded and CF-decoded once -- and one Dataset
is built at the end.

It declines (returns None) whenever the result could differ from ``xr.combine_nested``
with the options used (``compat="override"``, ``coords="minimal"``, ``data_vars`` None or
``"minimal"``, ``combine_attrs="override"``): files with different variables or
dimensions, a loaded variable whose encoding differs between files (its values would
decode differently), an index off the concatenation dimension that differs between files
(a join would reindex), or a dimension that is new. The caller then combines Datasets as
before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from virtualizarr.dataset import PreparedGroup
from virtualizarr.manifests import VirtualVariable, cf_encoding_attrs
from virtualizarr.manifests.array_api import concatenate
from virtualizarr.manifests.combine import values_equal

__all__ = ["concat_prepared"]


def _same_encoding(groups: Sequence[PreparedGroup], name: str) -> bool:
    first = groups[0].variables[name]
    enc0 = cf_encoding_attrs(first.attrs)
    for g in groups[1:]:
        enc = cf_encoding_attrs(g.variables[name].attrs)
        if enc.keys() != enc0.keys() or not all(values_equal(enc0[k], enc[k]) for k in enc0):
            return False
    return True


def concat_prepared(groups: Sequence[PreparedGroup], dim: str) -> PreparedGroup | None:
    """Concatenate prepared groups along the existing dimension ``dim``, or None.

    Parameters
    ----------
    groups : sequence of PreparedGroup
        One per file, in order.
    dim : str
        A dimension every file has.

    Returns
    -------
    PreparedGroup or None
        None when the combination is not a plain concatenation (see the module
        documentation); the caller then combines Datasets.

    Raises
    ------
    IncompatibleArraysError
        As ``xr.concat`` of the virtual datasets would: virtual arrays that cannot share
        one Zarr array.
    """
    first = groups[0]
    names = list(first.variables)
    if not any(dim in v.dims for v in first.variables.values()):
        return None  # a new dimension: stacking, not concatenation
    for g in groups[1:]:
        if (
            list(g.variables) != names
            or g.coord_names != first.coord_names
            or g.loaded.keys() != first.loaded.keys()
            or any(g.variables[n].dims != first.variables[n].dims for n in names)
        ):
            return None
    variables: dict[str, VirtualVariable] = {}
    loaded = {}
    for name in names:
        var = first.variables[name]
        if dim not in var.dims:
            if name in first.loaded and var.dims == (name,):  # an index: joined exactly
                ref = first.loaded[name]
                if any(
                    g.loaded[name].dtype != ref.dtype
                    or not np.array_equal(g.loaded[name], ref, equal_nan=ref.dtype.kind in "fc")
                    for g in groups[1:]
                ) or not _same_encoding(groups, name):
                    return None
                loaded[name] = ref
            elif name in first.loaded:
                loaded[name] = first.loaded[name]  # compat="override": the first file's
            variables[name] = var
            continue
        axis = var.dims.index(dim)
        if name in first.loaded:
            parts = [g.loaded[name] for g in groups]
            if len({p.dtype for p in parts}) != 1 or not _same_encoding(groups, name):
                return None  # decoded per file, the values could differ
            loaded[name] = np.concatenate(parts, axis=axis)
            variables[name] = var
            continue
        data = concatenate([g.variables[name].data for g in groups], axis=axis)
        variables[name] = VirtualVariable(var.dims, data, var.attrs)
    return PreparedGroup(variables, loaded, set(first.coord_names), dict(first.attrs))
