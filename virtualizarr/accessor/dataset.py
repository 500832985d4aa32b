"""The dataset accessor (``ds.virtualize``, also ``ds.vz``): write and inspect virtual datasets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import xarray as xr

from virtualizarr.errors import InvalidArgumentError
from virtualizarr.formats.kerchunk import KerchunkRefs
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import relative_to, to_uri
from virtualizarr.io.write import write_bytes
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.writers.icechunk import dataset_to_icechunk
from virtualizarr.writers.kerchunk import (
    dataset_to_kerchunk_refs,
    iter_kerchunk_json,
)
from virtualizarr.writers.parquet import (
    DEFAULT_RECORD_SIZE,
    dataset_to_kerchunk_parquet,
)
from virtualizarr.writers.zarr import check_manifest_format, dataset_to_manifest_store

if TYPE_CHECKING:
    from icechunk import IcechunkStore

__all__ = [
    "INLINE_ALL_LIMIT",
    "VirtualiZarrDatasetAccessor",
    "check_kerchunk_options",
    "kerchunk_format",
]


class VirtualiZarrDatasetAccessor:
    """Methods on virtual datasets, available as ``ds.virtualize``.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset from :func:`~virtualizarr.open_virtual_dataset` (or a combination of
        such datasets).
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @overload
    def to_kerchunk(
        self,
        filepath: None = None,
        format: str | None = None,
        *,
        mode: str = "w-",
        inline: str | None = None,
        zarr_format: int = 2,
    ) -> KerchunkRefs: ...

    @overload
    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str],
        format: str | None = None,
        *,
        mode: str = "w-",
        record_size: int = DEFAULT_RECORD_SIZE,
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        inline: str | None = None,
        categorical_threshold: int | None = None,
        zarr_format: int = 2,
    ) -> None: ...

    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str] | None = None,
        format: str | None = None,
        *,
        mode: str = "w-",
        record_size: int = DEFAULT_RECORD_SIZE,
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        inline: str | None = None,
        categorical_threshold: int | None = None,
        zarr_format: int = 2,
    ) -> KerchunkRefs | None:
        """Serialize as kerchunk references (specification version 1).

        Parameters
        ----------
        filepath : str or path-like, optional
            Where to write (required unless ``format="dict"``): a local path or an fsspec
            URL (``s3://bucket/refs.json``, ``s3://bucket/refs.parq``).
        format : {"dict", "json", "parquet"}, optional
            By default ``"dict"`` without a ``filepath``, else taken from its extension
            (``.json``; ``.parq`` or ``.parquet``); any case is accepted.
            ``"dict"`` returns the document; ``"json"`` writes it to ``filepath``
            atomically (locally a temporary file renamed into place, remotely one PUT);
            ``"parquet"`` writes a directory of Parquet files in fsspec's
            ``LazyReferenceMapper`` layout, its ``.zmetadata`` last (on object storage the
            record files are uploaded first, so a failure never leaves a store that looks
            complete).
        mode : {"w-", "w"}
            ``"w-"`` (default) refuses to replace existing output (on object storage, for
            Parquet: any object under ``filepath``); ``"w"`` replaces it -- for Parquet on
            object storage, objects of the previous store that the new one lacks are
            deleted once the new ``.zmetadata`` is in place.
        record_size : int, default 100_000
            For ``format="parquet"``: chunk references per Parquet file.
        relative_paths : bool, default False
            Store each source path relative to the directory holding ``filepath``
            (``"data/a.nc"``, ``"../raw/a.nc"``) when it shares its protocol and host, so
            the references and data can move together or be served over HTTP as is.
            ``engine="virtualizarr"`` and :func:`~virtualizarr.open_virtual_dataset`
            resolve them against the references' location; fsspec's
            ``ReferenceFileSystem`` does not (see docs/usage.md).
        storage_options : mapping, optional
            fsspec options when ``filepath`` is remote (``{"anon": False}``,
            ``{"client_kwargs": {"endpoint_url": ...}}``).
        inline : {"all"}, optional
            A dataset without any virtual variable and more than 1 MiB of values (one
            opened with ``xr.open_dataset`` rather than ``open_virtual_dataset``) is
            refused, because all its data would be copied into the references;
            ``inline="all"`` writes it anyway.
        categorical_threshold : int, optional
            Accepted as kerchunk and VirtualiZarr 2.x take it, and checked; it changes
            nothing: the Parquet files always dictionary-encode the path column, which is
            what kerchunk's categorical paths achieve.
        zarr_format : {2}
            Kerchunk references hold Zarr v2 metadata only (as VirtualiZarr 2.x's
            default); for Zarr v3 write a manifest store with :meth:`to_zarr` or Icechunk.

        Returns
        -------
        dict or None
            The reference document for ``format="dict"``, else None.

        Raises
        ------
        OutputExistsError
            If ``filepath`` exists and ``mode="w-"``.
        OutputWriteError
            If an object store refused a write or the network failed; previous output,
            if any, is left as it was.
        UnsupportedFeatureError
            If a variable cannot be expressed in kerchunk's Zarr v2 metadata.
        InvalidArgumentError
            For an unknown format or one that does not fit ``filepath``, or a dataset
            without virtual variables (see ``inline``).

        Examples
        --------
        >>> refs = vds.virtualize.to_kerchunk()  # doctest: +SKIP
        >>> vds.virtualize.to_kerchunk("refs.json")  # doctest: +SKIP
        >>> vds.virtualize.to_kerchunk(
        ...     "s3://bucket/refs.parq", format="parquet", storage_options={"anon": False}
        ... )  # doctest: +SKIP
        """
        fmt = kerchunk_call(
            filepath,
            format,
            relative_paths=relative_paths,
            categorical_threshold=categorical_threshold,
            zarr_format=zarr_format,
        )
        self._check_virtual(inline)
        ds = self._relative_to(filepath) if relative_paths and filepath is not None else self._ds
        if fmt == "dict":
            return dataset_to_kerchunk_refs(ds)
        assert filepath is not None  # kerchunk_call: json and parquet have one
        target = Location.of(filepath, storage_options)
        if fmt == "parquet":  # fsspec LazyReferenceMapper layout; record_size refs per file
            dataset_to_kerchunk_parquet(ds, target, record_size=record_size, mode=mode)
        else:
            write_bytes(target, iter_kerchunk_json(ds), mode=mode)
        return None

    def _check_virtual(self, inline: str | None) -> None:
        """Refuse a dataset that holds no reference at all, unless told to inline it."""
        if inline not in (None, "all"):
            raise InvalidArgumentError(f"inline must be None or 'all'; found {inline!r}.")
        variables = self._ds.variables.values()
        if inline is not None or any(isinstance(v.data, ManifestArray) for v in variables):
            return
        nbytes = sum(int(v.nbytes) for v in variables)
        if nbytes > INLINE_ALL_LIMIT:
            raise InvalidArgumentError(
                f"this dataset has no virtual variable, so all {nbytes:,} bytes of its values "
                "would be copied into the references (was it opened with xr.open_dataset "
                "rather than virtualizarr.open_virtual_dataset?). Open the files with "
                "open_virtual_dataset, or pass inline='all' to write the data anyway."
            )

    def _relative_to(self, target: str | os.PathLike[str]) -> xr.Dataset:
        """The dataset with source paths relative to the directory holding ``target``."""
        ref = to_uri(target)
        return self.rename_paths(lambda p: relative_to(p, ref))

    def to_zarr(
        self,
        store: str | os.PathLike[str],
        *,
        mode: str = "w-",
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        inline: str | None = None,
        manifest_format: str = "binary",
    ) -> None:
        """Write a Zarr v3 manifest store (see :mod:`virtualizarr.formats.manifest_store`).

        Locally the store is built in a temporary directory and renamed into place. On
        object storage, which has no rename, every array's objects are uploaded first and
        the root group's ``zarr.json`` -- what makes the store discoverable -- last, so a
        failure never leaves a store that looks complete; if the write fails, objects
        already written are removed and the previous store is put back as it was.

        Parameters
        ----------
        store : str or path-like
            The store's directory on local disk, or an fsspec URL
            (``s3://bucket/virtual.zarr``).
        mode : {"w-", "w"}
            ``"w-"`` (default) refuses an existing store (on object storage: any object
            under ``store``); ``"w"`` replaces it. On object storage the new objects are
            written first, the new root ``zarr.json`` replaces the old one, and objects of
            the previous store the new one lacks are deleted.
        relative_paths : bool, default False
            Store source paths relative to each array's directory inside the store
            (``"../../raw/a.nc"`` for ``store/air/manifest.json``), as the manifest-store
            format resolves them, so the store and data can move together.
        storage_options : mapping, optional
            fsspec options for a remote ``store`` (credentials, endpoint, ...).
        inline : {"all"}, optional
            As for :meth:`to_kerchunk`: a dataset without any virtual variable and more
            than 1 MiB of values is refused unless ``inline="all"``.
        manifest_format : {"binary", "json"}
            How each virtual array keeps its chunk references. ``"binary"`` (default): a
            path table and three raw columns (offset, length, path id per chunk), about
            18 bytes a reference, which ``engine="virtualizarr"`` loads only when a chunk
            is first read. ``"json"``: one ``manifest.json`` per array (about 130 bytes a
            reference, parsed whole when the store is opened), as virtualizarr wrote
            before; older versions read only this one.

        Raises
        ------
        OutputExistsError
            If the store exists and ``mode="w-"``.
        OutputWriteError
            If the object store refused a write or the network failed; the previous
            store, if any, is left as it was.
        InvalidArgumentError
            If ``manifest_format`` is not ``"binary"`` or ``"json"``.

        Examples
        --------
        >>> vds.virtualize.to_zarr("virtual.zarr")  # doctest: +SKIP
        >>> vds.virtualize.to_zarr("compat.zarr", manifest_format="json")  # doctest: +SKIP
        >>> ds = xr.open_dataset("virtual.zarr", engine="virtualizarr")  # doctest: +SKIP
        >>> vds.virtualize.to_zarr("s3://bucket/virtual.zarr", storage_options=so)  # doctest: +SKIP
        """
        check_manifest_format(manifest_format)
        self._check_virtual(inline)
        # arrays live one level down (store/<name>/manifest.json)
        ds = (
            self._relative_to(f"{to_uri(store).rstrip('/')}/_/zarr.json")
            if relative_paths
            else self._ds
        )
        dataset_to_manifest_store(
            ds, Location.of(store, storage_options), mode=mode, manifest_format=manifest_format
        )

    def to_icechunk(
        self,
        store: IcechunkStore,
        *,
        group: str | None = None,
        append_dim: str | None = None,
        validate_containers: bool = True,
        last_updated_at: datetime | None = None,
        mode: Literal["w-", "w"] = "w-",
    ) -> None:
        """Write into an Icechunk session: virtual chunk references plus native chunks.

        Virtual variables become Icechunk virtual references (with each source's recorded
        identity as their checksum, so Icechunk refuses to read a source that changed);
        loaded variables and inline chunks become native chunks. Any Zarr v3 reader opens
        the result, e.g. ``xr.open_zarr(session.store, consolidated=False)``. The caller
        commits (``session.commit(...)``).

        Parameters
        ----------
        store : icechunk.IcechunkStore
            ``session.store`` of a writable session. The repository needs a virtual chunk
            container for every source URL prefix (``file:///data/``, ``s3://bucket/``).
        group : str, optional
            The group to write into (``"model/run1"``); the root group by default.
        append_dim : str, optional
            Append along this dimension to the arrays the group already holds (their
            length grows; chunks land after the stored ones). Refused, with nothing
            written, unless every variable matches what is stored: dtype, codecs, chunk
            shape, fill value and CF encoding attributes, the stored length along
            ``append_dim`` a whole number of chunks, and loaded variables without
            ``append_dim`` equal to the stored ones (virtual ones without it keep their
            stored references, as ``xr.concat(..., compat="override")`` keeps the
            first). Loaded variables (a time coordinate) are encoded with the stored
            units and calendar.
        validate_containers : bool, default True
            Refuse sources that no virtual chunk container of the repository covers,
            naming the prefix and the line of config that adds one.
        last_updated_at : datetime, optional
            The checksum of every source instead of its recorded identity: Icechunk
            refuses chunks of a source modified after this time.
        mode : {"w-", "w"}
            Without ``append_dim``: ``"w-"`` (default) refuses a group that already holds
            arrays or groups; ``"w"`` replaces them.

        Raises
        ------
        MissingDependencyError
            If icechunk is not installed.
        InvalidArgumentError
            If ``store`` is not an ``IcechunkStore`` of a writable session, or an argument
            has a wrong value.
        OutputExistsError
            If the group holds nodes and ``mode="w-"``.
        IncompatibleArraysError
            If an append does not match the stored arrays (the session is left untouched).
        UnsupportedFeatureError
            If a source URL has no virtual chunk container, or is relative.
        OutputWriteError
            If Icechunk refused a write.

        Examples
        --------
        >>> session = repo.writable_session("main")  # doctest: +SKIP
        >>> vds.virtualize.to_icechunk(session.store)  # doctest: +SKIP
        >>> session.commit("first 300 days")  # doctest: +SKIP
        >>> session = repo.writable_session("main")  # doctest: +SKIP
        >>> more.virtualize.to_icechunk(session.store, append_dim="time")  # doctest: +SKIP
        >>> session.commit("65 more days")  # doctest: +SKIP
        """
        dataset_to_icechunk(
            self._ds,
            store,
            group=group,
            append_dim=append_dim,
            validate_containers=validate_containers,
            last_updated_at=last_updated_at,
            mode=mode,
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the dataset: manifests for virtual variables, data for loaded ones.

        Compare with ``ds.nbytes``, which counts the size of the data the references stand
        for.
        """
        total = 0
        for var in self._ds.variables.values():
            data = var.data
            if isinstance(data, ManifestArray):
                total += data.manifest.nbytes
            else:
                total += int(var.nbytes)
        return total

    def nrefs(self) -> int:
        """Number of chunk references: the present chunks of every virtual variable.

        Missing chunks (read as the fill value) are not counted; inline chunks are.
        Loaded variables hold no references.

        Returns
        -------
        int

        Examples
        --------
        >>> vds.virtualize.nrefs()  # doctest: +SKIP
        1460
        """
        return sum(
            len(var.data.manifest)
            for var in self._ds.variables.values()
            if isinstance(var.data, ManifestArray)
        )

    def rename_paths(self, new: str | Mapping[str, str] | Callable[[str], str]) -> xr.Dataset:
        """Return a copy whose chunk references point at other files.

        Parameters
        ----------
        new : str, mapping or callable
            A string replaces the one path of a dataset virtualized from one file (refused
            when there are several, which it would merge into one); a
            mapping renames the paths it names; a callable maps each old path to a new
            one, for example ``lambda p: p.replace("file:///data", "s3://bucket")``.

        Returns
        -------
        xarray.Dataset
        """
        fn: Mapping[str, str] | Callable[[str], str]
        if isinstance(new, str):
            paths = {
                p
                for v in self._ds.variables.values()
                if isinstance(v.data, ManifestArray)
                for p in v.data.manifest.paths
            }
            if len(paths) > 1:
                raise InvalidArgumentError(
                    f"rename_paths({new!r}) would point the chunks of {len(paths)} different "
                    "files at one file; pass a mapping {old: new} or a function of the old "
                    "path instead (e.g. lambda p: p.replace('file:///data', 's3://bucket'))."
                )
            target = new

            def fn(_: str) -> str:
                return target
        else:
            fn = new
        ds = self._ds
        renamed = {
            name: xr.Variable(
                var.dims, var.data.rename_paths(fn), var.attrs, var.encoding, fastpath=True
            )
            for name, var in ds.variables.items()
            if isinstance(var.data, ManifestArray)
        }
        # Rebuilt rather than assigned: assigning a virtual dimension coordinate would make
        # xarray build an index from it, which needs its values.
        coords = xr.Coordinates(
            {k: renamed.get(k, v) for k, v in ds.coords.variables.items()},
            indexes=dict(ds.xindexes),
        )
        data_vars = {k: renamed.get(k, v) for k, v in ds.data_vars.variables.items()}
        out = xr.Dataset(data_vars, coords=coords, attrs=ds.attrs)
        out.encoding = dict(ds.encoding)
        return out


INLINE_ALL_LIMIT = 1 << 20
"""Bytes of values a dataset without virtual variables may hold before writing it needs
``inline="all"`` (small ones are legitimate: a group of a few coordinates)."""

_KERCHUNK_FORMATS = ("dict", "json", "parquet")
_KERCHUNK_SUFFIXES = {".json": "json", ".parq": "parquet", ".parquet": "parquet"}


def check_kerchunk_options(categorical_threshold: int | None, zarr_format: int) -> None:
    """Refuse the kerchunk options of the other tools that we cannot honour."""
    if categorical_threshold is not None and (
        isinstance(categorical_threshold, bool)
        or not isinstance(categorical_threshold, int)
        or categorical_threshold < 1
    ):
        raise InvalidArgumentError(
            f"categorical_threshold must be a positive integer; found {categorical_threshold!r}."
        )
    if zarr_format != 2:
        raise InvalidArgumentError(
            f"kerchunk references hold Zarr v2 metadata only; found zarr_format={zarr_format!r}. "
            "For Zarr v3 write a manifest store (ds.virtualize.to_zarr(...)) or Icechunk "
            "(ds.virtualize.to_icechunk(...))."
        )


def kerchunk_call(
    filepath: str | os.PathLike[str] | None,
    format: str | None,
    *,
    relative_paths: bool,
    categorical_threshold: int | None,
    zarr_format: int,
) -> str:
    """Check the arguments of a ``to_kerchunk`` call (dataset or tree); the format to write.

    ``"dict"`` returns the references and takes no ``filepath``; ``"json"`` and
    ``"parquet"`` write to one, and ``relative_paths`` needs it too.
    """
    fmt = kerchunk_format(filepath, format)
    check_kerchunk_options(categorical_threshold, zarr_format)
    if relative_paths and filepath is None:
        raise InvalidArgumentError(
            "relative_paths=True needs a filepath to be relative to; found filepath=None. "
            "Pass the path the references will be written to."
        )
    if fmt == "dict" and filepath is not None:
        raise InvalidArgumentError(
            "format='dict' returns the references; pass format='json' to write"
        )
    if fmt == "parquet" and filepath is None:
        raise InvalidArgumentError(
            "format='parquet' needs a filepath (a directory) to write to; found None."
        )
    if fmt == "json" and filepath is None:
        raise InvalidArgumentError("format='json' needs a filepath to write to; found None.")
    return fmt


def kerchunk_format(filepath: str | os.PathLike[str] | None, format: str | None) -> str:
    """The format asked for, or the one ``filepath``'s extension names (any case)."""
    if format is not None:
        fmt = str(format).lower()
        if fmt not in _KERCHUNK_FORMATS:
            raise InvalidArgumentError(
                f"format must be 'dict', 'json' or 'parquet'; found {format!r}."
            )
        return fmt
    if filepath is None:
        return "dict"
    suffix = os.path.splitext(os.fspath(filepath).rstrip("/"))[1].lower()
    if suffix not in _KERCHUNK_SUFFIXES:
        raise InvalidArgumentError(
            f"cannot tell the format from {os.fspath(filepath)!r}; expected a name ending in "
            ".json, .parq or .parquet, or pass format='json' or format='parquet'."
        )
    return _KERCHUNK_SUFFIXES[suffix]
