"""The way in: open any source as a virtual group or dataset, and verify references.

:func:`open_virtual_group` is the one entry point below ``open_virtual_dataset``,
``open_virtual_mfdataset``, ``engine="virtualizarr"`` and :func:`verify`: it makes a
:class:`~virtualizarr.io.objects.Location` of the path (with its ``storage_options``),
picks the reader through the registry (:func:`~virtualizarr.readers.base.find_reader`),
passes reference readers the caller's source policy, and optionally checks that the
sources the references point at are unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from virtualizarr.errors import (
    FileFormatError,
    InvalidArgumentError,
    SourceNotFoundError,
    VirtualiZarrError,
)
from virtualizarr.identity import VerifyReport, check_sources, current_identity, group_sources
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ManifestArray, VirtualGroup, VirtualVariable, cf_encoding_attrs
from virtualizarr.readers import Probe, Source, find_reader
from virtualizarr.reading.load import load_manifest_arrays
from virtualizarr.security import ReferenceLimits, SourcePolicy

__all__ = ["open_virtual_dataset", "open_virtual_group", "verify"]

PathOrDocument = str | os.PathLike[str] | Location | Mapping[str, Any]
"""A path, URL or location, or an in-memory kerchunk reference document."""


def _source(path: PathOrDocument, storage_options: Mapping[str, Any] | None) -> Source:
    if isinstance(path, Mapping):
        return path
    return Location.of(path, storage_options)


def open_virtual_group(
    source: PathOrDocument,
    *,
    filetype: str | None = None,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    reader_options: Mapping[str, Any] | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
    verify_sources: bool = False,
    references_only: bool = False,
) -> VirtualGroup:
    """Read any source as a :class:`~virtualizarr.manifests.VirtualGroup` (metadata only).

    Parameters
    ----------
    source : str, path-like, Location or mapping
        A file, a reference file or store (local path, ``file://`` URI or fsspec URL), or
        an in-memory kerchunk reference document.
    filetype : str, optional
        A reader's name (``"hdf5"``/``"netcdf4"``, ``"netcdf3"``, ``"kerchunk"``,
        ``"zarr"``); by default the source's format is detected.
    group : str, optional
        A group inside the source.
    drop_variables : iterable of str
        Variables to leave out (not scanned).
    storage_options : mapping, optional
        fsspec options for a remote source and the remote sources references point at.
    reader_options : mapping, optional
        Extra options for the reader (e.g. ``{"inline_threshold": 2**20}``).
    allowed_sources : str, iterable of str or SourcePolicy, optional
        For reference inputs: where they may point (see :mod:`virtualizarr.security`).
    limits : ReferenceLimits, optional
        For reference inputs: size limits.
    verify_sources : bool
        Compare the identities recorded for the sources with the sources now.
    references_only : bool
        Accept reference inputs only (as ``engine="virtualizarr"`` does).

    Returns
    -------
    VirtualGroup

    Raises
    ------
    SourceNotFoundError
        If the source does not exist.
    UnsupportedFileTypeError
        If no reader recognises it (or ``filetype`` is unknown).
    StaleReferenceError
        If ``verify_sources`` and a source changed or disappeared since it was virtualized.
    UntrustedReferenceError
        If references point outside ``allowed_sources`` or exceed ``limits``.
    """
    src = _source(source, storage_options)
    reader = find_reader(Probe(src), filetype, references_only=references_only)
    options = dict(reader_options or {})
    if reader.references:  # reference inputs: the caller's source policy
        options.update(allowed_sources=allowed_sources, limits=limits)
        if not isinstance(src, Location) and storage_options:
            options["storage_options"] = storage_options
    vgroup = reader.open(src, group=group, drop_variables=drop_variables, **options)
    if verify_sources:
        manifests = (v.data.manifest for v in vgroup.variables.values())
        check_sources(group_sources(manifests), storage_options).raise_if_stale()
    return vgroup


def open_virtual_dataset(
    path: PathOrDocument,
    *,
    filetype: str | None = None,
    group: str | None = None,
    drop_variables: Iterable[str] | str | None = None,
    loadable_variables: Iterable[str] | None = None,
    decode_times: bool | None = None,
    mask_and_scale: bool | None = None,
    reader_options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> xr.Dataset:
    """Open a file as a virtual dataset: chunk references, no data.

    Only the file's metadata is read. Each variable wraps a
    :class:`~virtualizarr.manifests.ManifestArray` whose manifest says where its chunks
    are; ``xr.concat``/``xr.merge`` combine these, and ``ds.virtualize.to_kerchunk(...)``
    writes them as references that read back exactly what ``xr.open_dataset(path)`` shows.

    Parameters
    ----------
    path : str, path-like, Location or mapping
        A local path, a ``file://`` URI or an fsspec URL (``s3://bucket/key.nc``,
        ``https://host/file.nc``), or an in-memory kerchunk document. Manifests record
        absolute URIs.
    filetype : str, optional
        Force a reader (``"hdf5"``/``"netcdf4"``, ``"netcdf3"``, ``"kerchunk"``,
        ``"zarr"``); by default the file's first bytes (or a directory's documents)
        decide.
    group : str, optional
        The group to open (HDF5/netCDF4 only), e.g. ``"forecast/surface"``.
    drop_variables : str or iterable of str, optional
        Variables to leave out (they are never scanned).
    loadable_variables : iterable of str, optional
        Variables to load into memory rather than reference. ``None`` (default) loads the
        1-D dimension coordinates, so indexes exist for ``xr.concat`` and
        ``xr.combine_by_coords``; ``[]`` keeps everything virtual.
    decode_times : bool, optional
        Decode CF times of *loaded* variables (as ``xr.open_dataset`` does; default True).
        Virtual variables are always kept encoded, with their CF attributes.
    mask_and_scale : bool, optional
        Apply ``_FillValue``/``scale_factor``/``add_offset`` to loaded variables (default
        True). Writers re-encode loaded variables with the same encoding.
    reader_options : mapping, optional
        Extra options for the reader (e.g. ``{"inline_threshold": 2**20}``).
    storage_options : mapping, optional
        fsspec options for a remote ``path`` (e.g. ``{"anon": True}``, or
        ``{"client_kwargs": {"endpoint_url": ...}}`` for an S3-compatible store). The
        source's identity (size plus mtime, or ETag) is recorded in the manifests so
        stale references can be detected later (:func:`virtualizarr.verify`).
    allowed_sources : str, iterable of str or SourcePolicy, optional
        For reference inputs (kerchunk JSON/Parquet, manifest stores): the protocols
        (``"file"``, ``"s3"``) and URL prefixes (``"s3://bucket/data/"``) they may point
        at; None for the default policy, ``"*"`` to trust them entirely. See
        ``docs/security.md``.
    limits : ReferenceLimits, optional
        For reference inputs: size limits (:class:`virtualizarr.security.ReferenceLimits`).

    Returns
    -------
    xarray.Dataset
        Virtual variables backed by ``ManifestArray`` and loaded variables backed by NumPy.

    Raises
    ------
    SourceNotFoundError
        If ``path`` does not exist.
    UnsupportedFileTypeError
        If no reader recognises the file.
    FileFormatError
        If the file is corrupt or truncated.
    UntrustedReferenceError
        If reference input points outside ``allowed_sources`` or exceeds ``limits``.

    Examples
    --------
    >>> vds = open_virtual_dataset("air_20200101.nc")  # doctest: +SKIP
    >>> vds.virtualize.to_kerchunk("refs.json", format="json")  # doctest: +SKIP
    """
    drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
    src = _source(path, storage_options)
    sources: dict[str, str] = {}
    if isinstance(src, Location):
        try:
            sources[src.url] = current_identity(src)  # before the metadata is read
        except SourceNotFoundError:
            raise SourceNotFoundError(f"{path} does not exist; check the path.") from None
    try:
        vgroup = open_virtual_group(
            src,
            filetype=filetype,
            group=group,
            drop_variables=drop,
            storage_options=storage_options,
            reader_options=reader_options,
            allowed_sources=allowed_sources,
            limits=limits,
        )
    except SourceNotFoundError as e:
        if isinstance(src, Location) and src.label() in str(e):
            raise SourceNotFoundError(f"{path} does not exist; check the path.") from None
        raise
    return _build_dataset(
        vgroup, drop, loadable_variables, decode_times, mask_and_scale, sources, storage_options
    )


def verify(
    refs_or_store: PathOrDocument | xr.Dataset,
    storage_options: Mapping[str, Any] | None = None,
    *,
    group: str | None = None,
) -> VerifyReport:
    """Check that the sources a set of references points at have not changed.

    Parameters
    ----------
    refs_or_store : str, path-like, mapping or xarray.Dataset
        Kerchunk references (JSON file, Parquet store or dict), a manifest store written
        by ``ds.virtualize.to_zarr``, or a virtual dataset.
    storage_options : mapping, optional
        Options for remote references and sources.
    group : str, optional
        A group inside the references.

    Returns
    -------
    VerifyReport
        ``report.ok`` is False when a source changed (``report.changed``) or disappeared
        (``report.missing``); ``report.raise_if_stale()`` raises
        :class:`~virtualizarr.errors.StaleReferenceError` naming them.

    Examples
    --------
    >>> report = verify("refs.json")  # doctest: +SKIP
    >>> report.ok, report.changed  # doctest: +SKIP
    (True, {})
    """
    if isinstance(refs_or_store, xr.Dataset):
        manifests = [
            v.data.manifest
            for v in refs_or_store.variables.values()
            if isinstance(v.data, ManifestArray)
        ]
    else:
        vgroup = open_virtual_group(
            refs_or_store, group=group, storage_options=storage_options, references_only=True
        )
        manifests = [v.data.manifest for v in vgroup.variables.values()]
    return check_sources(group_sources(manifests), storage_options)


def _build_dataset(
    vgroup: VirtualGroup,
    drop: set[str],
    loadable_variables: Iterable[str] | None,
    decode_times: bool | None,
    mask_and_scale: bool | None,
    sources: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
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
    out: dict[str, xr.Variable] = {}
    raw_loaded: dict[str, xr.Variable] = {}
    for name, v in variables.items():
        attrs = dict(v.attrs)
        encoding: dict[str, Any] = {}
        if isinstance(attrs.get("coordinates"), str):
            encoding["coordinates"] = attrs.pop("coordinates")
        if name in loaded:
            raw_loaded[name] = xr.Variable(v.dims, loaded[name], attrs, encoding)
        else:
            manifest = v.data.manifest
            if sources and any(p in sources for p in manifest.paths):
                manifest = manifest.with_sources(sources)  # the source's identity, recorded
            arr = ManifestArray(
                v.data.metadata,
                manifest,
                name=name,
                encoding_attrs=cf_encoding_attrs(v.attrs),
            )
            out[name] = xr.Variable(v.dims, arr, attrs, encoding)

    for name, raw in raw_loaded.items():
        try:
            # xarray's own per-variable CF decoding, as xr.open_dataset applies it
            var = xr.conventions.decode_cf_variable(
                name,
                raw,
                mask_and_scale=True if mask_and_scale is None else mask_and_scale,
                decode_times=True if decode_times is None else decode_times,
                stack_char_dim=_stackable_char_dim(raw, variables),
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
    return xr.Dataset(data_vars, coords=coords, attrs=dict(vgroup.attrs))


def _stackable_char_dim(var: xr.Variable, variables: Mapping[str, VirtualVariable]) -> bool:
    """xarray's rule for joining a char array's last dimension into strings."""
    if var.dtype != np.dtype("S1") or var.ndim == 0:
        return False
    dim = var.dims[-1]
    if dim in variables:
        return False
    return all(dim not in v.dims or v.dims[-1] == dim for v in variables.values())
