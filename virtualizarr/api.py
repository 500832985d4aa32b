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

import xarray as xr

from virtualizarr.dataset import PreparedGroup, assemble, prepare_group
from virtualizarr.errors import SourceNotFoundError, UnexpectedOptionError, UnsupportedFeatureError
from virtualizarr.identity import VerifyReport, check_sources, current_identity, group_sources
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ManifestArray, VirtualGroup
from virtualizarr.migration import legacy_arguments
from virtualizarr.readers import Probe, Source, find_reader
from virtualizarr.security import ReferenceLimits, SourcePolicy

__all__ = ["open_virtual_dataset", "open_virtual_datatree", "open_virtual_group", "verify"]

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
    subgroups: bool = False,
) -> VirtualGroup:
    """Read any source as a :class:`~virtualizarr.manifests.VirtualGroup` (metadata only).

    Parameters
    ----------
    source : str, path-like, Location or mapping
        A file, a reference file or store (local path, ``file://`` URI or fsspec URL), or
        an in-memory kerchunk reference document.
    filetype : str, optional
        A reader's name (``"hdf5"``/``"netcdf4"``, ``"netcdf3"``, ``"kerchunk"``,
        ``"manifest_store"``, ``"zarr"``, ``"dmrpp"``); by default the source's format is
        detected.
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
    subgroups : bool
        Also read every group below ``group`` into ``VirtualGroup.groups``, nested. A
        reader of a format without groups (netCDF3) gives the one group it has.

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
    if subgroups:
        try:
            vgroup = reader.open(
                src, group=group, drop_variables=drop_variables, subgroups=True, **options
            )
        except UnexpectedOptionError:  # a reader of a format without groups
            vgroup = reader.open(src, group=group, drop_variables=drop_variables, **options)
    else:
        vgroup = reader.open(src, group=group, drop_variables=drop_variables, **options)
    if verify_sources:
        manifests = (v.data.manifest for _, g in vgroup.walk() for v in g.variables.values())
        check_sources(group_sources(manifests), storage_options).raise_if_stale()
    return vgroup


@legacy_arguments("path", ("url", "filepath"))
def open_virtual_dataset(
    path: PathOrDocument,
    *,
    filetype: str | None = None,
    group: str | None = None,
    drop_variables: Iterable[str] | str | None = None,
    loadable_variables: Iterable[str] | str | None = None,
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
        ``"manifest_store"``, ``"zarr"`` (plain Zarr stores), ``"dmrpp"``); by default the
        file's first bytes (or a directory's documents) decide.
    group : str, optional
        The group to open (HDF5/netCDF4 only), e.g. ``"forecast/surface"``.
    drop_variables : str or iterable of str, optional
        Variables to leave out (they are never scanned).
    loadable_variables : str or iterable of str, optional
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
    prepared = prepare_virtual_dataset(
        path,
        filetype=filetype,
        group=group,
        drop_variables=drop_variables,
        loadable_variables=loadable_variables,
        reader_options=reader_options,
        storage_options=storage_options,
        allowed_sources=allowed_sources,
        limits=limits,
    )
    return assemble(prepared, decode_times, mask_and_scale)


def prepare_virtual_dataset(
    path: PathOrDocument,
    *,
    filetype: str | None = None,
    group: str | None = None,
    drop_variables: Iterable[str] | str | None = None,
    loadable_variables: Iterable[str] | str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> PreparedGroup:
    """:func:`open_virtual_dataset` up to the Dataset: a group ready to combine or assemble.

    ``open_virtual_mfdataset`` combines many of these before building one Dataset (see
    :mod:`virtualizarr.fastconcat`); the parameters are those of ``open_virtual_dataset``.

    Returns
    -------
    PreparedGroup
    """
    drop = _names(drop_variables)
    if isinstance(loadable_variables, str):
        loadable_variables = [loadable_variables]
    vgroup, sources = _read_source(
        path,
        storage_options,
        filetype=filetype,
        group=group,
        drop_variables=drop,
        reader_options=reader_options,
        allowed_sources=allowed_sources,
        limits=limits,
    )
    return prepare_group(vgroup, drop, loadable_variables, sources, storage_options)


def _names(names: str | Iterable[str] | None) -> set[str]:
    """Variable names given as one name, several, or None (none)."""
    return {names} if isinstance(names, str) else set(names or ())


def _read_source(
    path: PathOrDocument, storage_options: Mapping[str, Any] | None, **options: Any
) -> tuple[VirtualGroup, dict[str, str]]:
    """The source's group(s) and its identity, taken before the metadata is read.

    A missing file is reported by the path the caller gave.
    """
    src = _source(path, storage_options)
    sources: dict[str, str] = {}
    if isinstance(src, Location):
        try:
            sources[src.url] = current_identity(src)
        except SourceNotFoundError:
            raise SourceNotFoundError(f"{path} does not exist; check the path.") from None
    try:
        vgroup = open_virtual_group(src, storage_options=storage_options, **options)
    except SourceNotFoundError as e:
        if isinstance(src, Location) and src.label() in str(e):
            raise SourceNotFoundError(f"{path} does not exist; check the path.") from None
        raise
    return vgroup, sources


@legacy_arguments("path", ("url", "filepath"))
def open_virtual_datatree(
    path: PathOrDocument,
    *,
    filetype: str | None = None,
    group: str | None = None,
    drop_variables: Iterable[str] | str | None = None,
    loadable_variables: Iterable[str] | str | None = None,
    decode_times: bool | None = None,
    mask_and_scale: bool | None = None,
    reader_options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> xr.DataTree:
    """Open a whole file -- every group -- as a tree of virtual datasets.

    Each group becomes a node holding what :func:`open_virtual_dataset` gives for that
    group (``group="a/b"``): dimensions are scoped between parent and child groups as
    netCDF-C scopes them, so a variable of ``/a/b`` may use a dimension defined in
    ``/a``. The file's metadata is read once. Write the tree with
    ``dt.virtualize.to_kerchunk(...)`` or ``dt.virtualize.to_zarr(...)`` and read it
    back with ``xr.open_datatree(refs, engine="virtualizarr")``.

    Parameters
    ----------
    path : str, path-like, Location or mapping
        As for :func:`open_virtual_dataset`; reference documents and manifest stores with
        nested groups are read whole too.
    filetype, reader_options, storage_options, allowed_sources, limits
        As for :func:`open_virtual_dataset`.
    group : str, optional
        The group to make the tree's root (default: the file's root).
    drop_variables : str or iterable of str, optional
        Variable names to leave out, in every group.
    loadable_variables : str or iterable of str, optional
        Variable names to load, in every group that has them; ``None`` (default) loads
        each group's 1-D dimension coordinates.
    decode_times, mask_and_scale : bool, optional
        As for :func:`open_virtual_dataset` (loaded variables only).

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    SourceNotFoundError
        If ``path`` does not exist.
    UnsupportedFileTypeError
        If no reader recognises it.
    UnsupportedFeatureError
        If a group is not aligned with its parents (a child group that redefines a
        parent's dimension with another length), which xarray's DataTree cannot hold:
        open such groups one by one with ``open_virtual_dataset(path, group=...)``.

    Examples
    --------
    >>> dt = open_virtual_datatree("groups.nc")  # doctest: +SKIP
    >>> dt.virtualize.to_kerchunk("refs.json", format="json")  # doctest: +SKIP
    """
    drop = _names(drop_variables)
    tree, sources = _read_source(
        path,
        storage_options,
        filetype=filetype,
        group=group,
        drop_variables=drop,
        reader_options=reader_options,
        allowed_sources=allowed_sources,
        limits=limits,
        subgroups=True,
    )
    wanted = None if loadable_variables is None else _names(loadable_variables)
    datasets: dict[str, xr.Dataset] = {}
    for gpath, vgroup in tree.walk():
        loadable = None if wanted is None else [k for k in vgroup.variables if k in wanted]
        prepared = prepare_group(vgroup, drop, loadable, sources, storage_options)
        datasets[gpath] = assemble(prepared, decode_times, mask_and_scale)
    try:
        return xr.DataTree.from_dict(datasets)
    except ValueError as e:  # xarray's alignment of a child with its parents
        raise UnsupportedFeatureError(
            f"{path}: the groups cannot form an xarray DataTree ({e}). A child group that "
            "redefines a dimension of its parents with another length is valid netCDF, but "
            "DataTree needs aligned groups (xr.open_datatree refuses the file too); open "
            "such groups one by one with open_virtual_dataset(path, group=...)."
        ) from e


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
