"""The ``ds.virtualize`` accessor: write and inspect virtual datasets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import xarray as xr

from virtualizarr.errors import InvalidArgumentError
from virtualizarr.formats.kerchunk import KerchunkRefs
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import relative_to, to_uri
from virtualizarr.io.write import write_bytes
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.writers.kerchunk import dataset_to_kerchunk_refs, iter_kerchunk_json
from virtualizarr.writers.parquet import DEFAULT_RECORD_SIZE, dataset_to_kerchunk_parquet
from virtualizarr.writers.zarr import check_manifest_format, dataset_to_manifest_store

__all__ = ["VirtualiZarrDatasetAccessor"]


@xr.register_dataset_accessor("virtualize")  # type: ignore[no-untyped-call]  # xarray untyped
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
        self, filepath: None = None, format: Literal["dict"] = "dict", *, mode: str = "w-"
    ) -> KerchunkRefs: ...

    @overload
    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str],
        format: Literal["json"],
        *,
        mode: str = "w-",
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None: ...

    @overload
    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str],
        format: Literal["parquet"],
        *,
        mode: str = "w-",
        record_size: int = DEFAULT_RECORD_SIZE,
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None: ...

    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str] | None = None,
        format: Literal["dict", "json", "parquet"] = "dict",
        *,
        mode: str = "w-",
        record_size: int = DEFAULT_RECORD_SIZE,
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> KerchunkRefs | None:
        """Serialize as kerchunk references (specification version 1).

        Parameters
        ----------
        filepath : str or path-like, optional
            Where to write (required unless ``format="dict"``): a local path or an fsspec
            URL (``s3://bucket/refs.json``, ``s3://bucket/refs.parq``).
        format : {"dict", "json", "parquet"}
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

        Examples
        --------
        >>> refs = vds.virtualize.to_kerchunk(format="dict")  # doctest: +SKIP
        >>> vds.virtualize.to_kerchunk("refs.json", format="json")  # doctest: +SKIP
        >>> vds.virtualize.to_kerchunk(
        ...     "s3://bucket/refs.parq", format="parquet", storage_options={"anon": False}
        ... )  # doctest: +SKIP
        """
        ds = self._ds
        if relative_paths:
            if filepath is None:
                raise InvalidArgumentError(
                    "relative_paths=True needs a filepath to be relative to; found filepath=None. "
                    "Pass the path the references will be written to."
                )
            ds = self._relative_to(filepath)
        if format == "parquet":  # fsspec LazyReferenceMapper layout; record_size refs per file
            if filepath is None:
                raise InvalidArgumentError(
                    "format='parquet' needs a filepath (a directory) to write to; found None."
                )
            target = Location.of(filepath, storage_options)
            dataset_to_kerchunk_parquet(ds, target, record_size=record_size, mode=mode)
            return None
        if format not in ("dict", "json"):
            raise InvalidArgumentError(
                f"format must be 'dict', 'json' or 'parquet'; found {format!r}."
            )
        if format == "dict":
            if filepath is not None:
                raise InvalidArgumentError(
                    "format='dict' returns the references; pass format='json' to write"
                )
            return dataset_to_kerchunk_refs(ds)
        if filepath is None:
            raise InvalidArgumentError(
                f"format={format!r} needs a filepath to write to; found None."
            )
        write_bytes(Location.of(filepath, storage_options), iter_kerchunk_json(ds), mode=mode)
        return None

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
        # arrays live one level down (store/<name>/manifest.json)
        ds = (
            self._relative_to(f"{to_uri(store).rstrip('/')}/_/zarr.json")
            if relative_paths
            else self._ds
        )
        dataset_to_manifest_store(
            ds, Location.of(store, storage_options), mode=mode, manifest_format=manifest_format
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

    def rename_paths(self, new: str | Mapping[str, str] | Callable[[str], str]) -> xr.Dataset:
        """Return a copy whose chunk references point at other files.

        Parameters
        ----------
        new : str, mapping or callable
            A string replaces every path (for a dataset virtualized from one file); a
            mapping renames the paths it names; a callable maps each old path to a new
            one, for example ``lambda p: p.replace("file:///data", "s3://bucket")``.

        Returns
        -------
        xarray.Dataset
        """
        fn: Mapping[str, str] | Callable[[str], str]
        if isinstance(new, str):
            target = new

            def fn(_: str) -> str:
                return target
        else:
            fn = new
        ds = self._ds
        renamed = {
            name: xr.Variable(var.dims, var.data.rename_paths(fn), var.attrs, var.encoding)
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
