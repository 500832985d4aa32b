"""The xarray layer: a reader's :class:`~virtualizarr.manifests.VirtualGroup` as a Dataset.

In two steps, so that many files can be combined before any Dataset is built
(:mod:`virtualizarr.fastconcat`):

1. :func:`prepare_group` picks the variables, loads the stored values of the loadable ones
   (still encoded) and records the source's identity in the virtual ones' manifests;
2. :func:`assemble` CF-decodes the loaded variables with xarray's own decoder, as
   ``xr.open_dataset`` does, and builds one Dataset: virtual coordinates without an index,
   loaded dimension coordinates with the default one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr
from xarray.core import indexing

from virtualizarr.errors import FileFormatError, InvalidArgumentError, VirtualiZarrError
from virtualizarr.manifests import ManifestArray, VirtualGroup, VirtualVariable, cf_encoding_attrs
from virtualizarr.reading.load import load_manifest_arrays

__all__ = ["PreparedGroup", "assemble", "prepare_group"]


@dataclass(slots=True)
class PreparedGroup:
    """One file's variables, ready to become a Dataset (or to be combined first).

    Attributes
    ----------
    variables : dict of str to VirtualVariable
        In the file's order. Virtual ones carry the source's identity; for loaded ones
        only ``dims`` and ``attrs`` are used.
    loaded : dict of str to numpy.ndarray
        The stored (encoded) values of the loaded variables.
    coord_names : set of str
        Variables that are coordinates (dimension coordinates, and those a
        ``coordinates`` attribute names).
    attrs : dict
        The group's attributes.
    """

    variables: dict[str, VirtualVariable]
    loaded: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    coord_names: set[str] = field(default_factory=set)
    attrs: dict[str, Any] = field(default_factory=dict)


def prepare_group(
    vgroup: VirtualGroup,
    drop: set[str],
    loadable_variables: Iterable[str] | None,
    sources: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> PreparedGroup:
    """Step 1: choose, load and stamp (see the module documentation).

    Parameters
    ----------
    vgroup : VirtualGroup
        What a reader produced.
    drop : set of str
        Variables to leave out.
    loadable_variables : iterable of str, optional
        Variables to load; None loads the 1-D dimension coordinates.
    sources : mapping, optional
        Path -> identity token of the sources read, to record in the manifests.
    storage_options : mapping, optional
        For remote sources of loaded variables.

    Returns
    -------
    PreparedGroup

    Raises
    ------
    InvalidArgumentError
        If ``loadable_variables`` names a variable the group does not have.
    FileFormatError
        If the chunks of a loadable variable cannot be decoded.
    """
    variables = {k: v for k, v in vgroup.variables.items() if k not in drop}
    if loadable_variables is None:
        loadable = [k for k, v in variables.items() if v.dims == (k,)]
    else:
        loadable = list(loadable_variables)
        missing = [k for k in loadable if k not in variables]
        if missing:
            raise InvalidArgumentError(
                f"loadable_variables names {missing}, which the file does not have "
                f"(variables: {sorted(variables)})."
            )
    coord_names = set()
    for name, v in variables.items():
        if v.dims == (name,):
            coord_names.add(name)
        coords_attr = v.attrs.get("coordinates")
        if isinstance(coords_attr, str):
            coord_names.update(c for c in coords_attr.split() if c in variables)
    try:
        loaded = load_manifest_arrays({k: variables[k] for k in loadable}, storage_options)
    except VirtualiZarrError:
        raise
    except Exception as e:  # codec and NumPy errors on corrupt chunks (zlib.error, ...)
        raise FileFormatError(
            f"could not load the values of {sorted(loadable)}: decoding their chunks failed "
            f"({type(e).__name__}: {e}). The source's data or metadata is probably corrupt; "
            "pass loadable_variables=[] to keep every variable virtual."
        ) from e
    if sources:
        for name, v in variables.items():
            manifest = v.data.manifest
            if name not in loaded and any(p in sources for p in manifest.paths):
                # the source's identity, recorded
                data = v.data.replace(manifest=manifest.with_sources(sources))
                variables[name] = VirtualVariable(v.dims, data, v.attrs)
    arrays = {k: np.asarray(a) for k, a in loaded.items()}
    return PreparedGroup(variables, arrays, coord_names, dict(vgroup.attrs))


def assemble(
    prepared: PreparedGroup, decode_times: bool | None, mask_and_scale: bool | None
) -> xr.Dataset:
    """Step 2: CF-decode the loaded variables and build the Dataset.

    Parameters
    ----------
    prepared : PreparedGroup
    decode_times, mask_and_scale : bool, optional
        As for ``xr.open_dataset`` (default True), for the loaded variables.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    FileFormatError
        If xarray cannot CF-decode a loaded variable (as ``xr.open_dataset`` would fail).
    """
    variables, loaded = prepared.variables, prepared.loaded
    out: dict[str, xr.Variable] = {}
    raw_loaded: dict[str, xr.Variable] = {}
    for name, v in variables.items():
        attrs = dict(v.attrs)
        encoding: dict[str, Any] = {}
        if isinstance(attrs.get("coordinates"), str):
            encoding["coordinates"] = attrs.pop("coordinates")
        if name in loaded:
            # wrapped as a backend array, as xr.open_dataset hands variables to the decoder
            data = indexing.NumpyIndexingAdapter(loaded[name])  # type: ignore[no-untyped-call]  # xarray untyped
            raw_loaded[name] = xr.Variable(v.dims, data, attrs, encoding, fastpath=True)
        else:
            arr = ManifestArray(
                v.data.metadata,
                v.data.manifest,
                name=name,
                encoding_attrs=cf_encoding_attrs(v.attrs),
            )
            # fastpath: the data is a checked duck array; the slow path asks whether it is a
            # dask array, which imports dask (~0.2 s) in every process that has it installed
            out[name] = xr.Variable(v.dims, arr, attrs, encoding, fastpath=True)
    for name, raw in raw_loaded.items():
        try:
            # xarray's own per-variable CF decoding, as xr.open_dataset applies it
            var = xr.conventions.decode_cf_variable(
                name,
                raw,
                mask_and_scale=True if mask_and_scale is None else mask_and_scale,
                decode_times=True if decode_times is None else decode_times,
                stack_char_dim=stackable_char_dim(raw, variables),
            ).load()  # decoding is lazy: run it here, where its errors are caught
        except (ValueError, TypeError, OverflowError) as e:  # as xr.open_dataset would fail
            raise FileFormatError(
                f"xarray could not CF-decode the loaded variable {name!r} "
                f"({type(e).__name__}: {e}). Its attributes (units, calendar, _FillValue, "
                "scale_factor) are not valid CF; pass decode_times=False or "
                "mask_and_scale=False, or loadable_variables=[] to keep it virtual."
            ) from e
        var.encoding.update(raw.encoding)
        out[name] = var
    ordered = {k: out[k] for k in variables}
    coord_names = prepared.coord_names
    data_vars = {k: v for k, v in ordered.items() if k not in coord_names}
    # Virtual coordinates get no index (building one would need their values); loaded
    # dimension coordinates get the default pandas index, as xr.open_dataset gives them.
    # One Coordinates object and one Dataset: building datasets is most of the time spent
    # per file for small files.
    indexed = xr.Coordinates({k: v for k, v in ordered.items() if k in coord_names and k in loaded})
    coords = xr.Coordinates(
        {
            **{k: v for k, v in ordered.items() if k in coord_names and k not in loaded},
            **indexed.variables,
        },
        indexes=dict(indexed.xindexes),
    )
    return xr.Dataset(data_vars, coords=coords, attrs=dict(prepared.attrs))


def stackable_char_dim(var: xr.Variable, variables: Mapping[str, VirtualVariable]) -> bool:
    """xarray's rule for joining a char array's last dimension into strings."""
    if var.dtype != np.dtype("S1") or var.ndim == 0:
        return False
    dim = var.dims[-1]
    if dim in variables:
        return False
    # as xarray's decode_cf_variables: every user of the dimension is a char array ending
    # with it
    return all(
        dim not in v.dims or (v.dims[-1] == dim and v.data.dtype.kind == "S")
        for v in variables.values()
    )
