"""xarray engine ``"virtualizarr"``: open references and manifest stores as real data.

``xr.open_dataset(path, engine="virtualizarr")`` accepts a kerchunk JSON file (or the
reference dict itself), a kerchunk Parquet store, or a Zarr manifest store written by
``ds.virtualize.to_zarr``, read through the same entry point as ``open_virtual_dataset``
(:func:`virtualizarr.api.open_virtual_group`, reference readers only). The references
become :class:`~virtualizarr.manifests.ManifestArray`\\ s, read by the native path
(:class:`~virtualizarr.reading.native.NativeArray`: coalesced ranged reads and numcodecs
decoding on a thread pool, no per-chunk zarr coroutines) -- or, for codec chains it cannot
map, served by a :class:`~virtualizarr.reading.store.ManifestStore` to zarr. xarray's CF
decoding then runs on variables whose attributes carry their original NumPy types
(restored from the ``"virtualizarr"`` record our writers add; see
:mod:`virtualizarr.formats.attrs`), so the result matches ``xr.open_dataset`` on the
original files -- a ``float32`` ``scale_factor`` still decodes to ``float32``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import xarray as xr
import zarr
from xarray.backends import BackendEntrypoint
from xarray.backends.common import AbstractDataStore, datatree_from_dict_with_io_cleanup
from xarray.backends.store import StoreBackendEntrypoint
from xarray.backends.zarr import ZarrArrayWrapper
from xarray.core import indexing
from zarr.errors import UnstableSpecificationWarning

from virtualizarr.api import open_virtual_group
from virtualizarr.errors import UnsupportedFileTypeError
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location
from virtualizarr.manifests import VirtualGroup
from virtualizarr.manifests.metadata import rectilinear_grids
from virtualizarr.readers import Probe, find_reader
from virtualizarr.reading.decode import chunk_decoder
from virtualizarr.reading.native import NativeArray
from virtualizarr.reading.store import ManifestStore
from virtualizarr.security import ReferenceLimits, SourcePolicy

__all__ = ["VirtualiZarrBackendEntrypoint"]


class _VirtualDataStore(AbstractDataStore):
    """An xarray data store over a VirtualGroup (lazy arrays, typed attributes).

    Arrays whose codec chain maps onto numcodecs are read by the native path
    (:class:`~virtualizarr.reading.native.NativeArray`); any other goes through a
    :class:`~virtualizarr.reading.store.ManifestStore` and zarr.
    """

    def __init__(
        self,
        vgroup: VirtualGroup,
        *,
        native: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._vgroup = vgroup
        self._native = native
        self._files = FileCache(storage_options=storage_options)
        self._store: ManifestStore | None = None

    def _zarr_array(self, name: str) -> tuple[Any, tuple[Any, ...]]:
        if self._store is None:
            self._store = ManifestStore(self._vgroup, storage_options=self._files.storage_options)
        with warnings.catch_warnings(), rectilinear_grids():
            # zarr flags fixed-length bytes (netCDF char arrays) as not in the v3 spec
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            za = zarr.open_array(self._store, path=name, mode="r", zarr_format=3)
        # xarray's wrapper is untyped; it only stores the zarr array
        data = indexing.LazilyIndexedArray(ZarrArrayWrapper(za))  # type: ignore[no-untyped-call]
        try:
            chunks: tuple[Any, ...] = tuple(za.chunks)
        except NotImplementedError:
            chunks = tuple(za.read_chunk_sizes)
        return data, chunks

    def get_variables(self) -> dict[str, xr.Variable]:
        out: dict[str, xr.Variable] = {}
        for name, v in self._vgroup.variables.items():
            decoder = chunk_decoder(v.data.metadata) if self._native else None
            data: Any
            if decoder is None:
                data, chunks = self._zarr_array(name)
            else:
                arr = NativeArray(v.data, decoder, self._files, name=name)
                data = indexing.LazilyIndexedArray(arr)
                sizes = v.data.chunk_sizes
                chunks = (
                    tuple(int(c) for c in sizes)  # type: ignore[arg-type]
                    if all(isinstance(c, int) for c in sizes)
                    else arr.read_chunk_sizes
                )
            encoding = {
                "chunks": chunks,
                "preferred_chunks": dict(zip(v.dims, chunks, strict=True)),
            }
            out[name] = xr.Variable(v.dims, data, dict(v.attrs), encoding)
        return out

    def get_attrs(self) -> dict[str, Any]:
        return dict(self._vgroup.attrs)

    def get_dimensions(self) -> dict[str, int]:  # pragma: no cover - unused by xarray here
        dims: dict[str, int] = {}
        for v in self._vgroup.variables.values():
            dims.update(zip(v.dims, v.data.shape, strict=True))
        return dims

    def close(self) -> None:
        self._files.close()
        if self._store is not None:
            self._store.close()


class VirtualiZarrBackendEntrypoint(BackendEntrypoint):
    """Open kerchunk references and Zarr manifest stores with ``engine="virtualizarr"``.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.open_dataset("refs.json", engine="virtualizarr")  # doctest: +SKIP
    >>> ds = xr.open_dataset("store.zarr", engine="virtualizarr", chunks={})  # doctest: +SKIP
    """

    description = "Open kerchunk references and virtual Zarr manifest stores (virtualizarr)"
    url = "https://github.com/virtualizarr/virtualizarr"
    supports_groups = True
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "filetype",
        "storage_options",
        "verify_sources",
        "allowed_sources",
        "limits",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for kerchunk dicts, JSON reference files, Parquet and manifest stores.

        Local paths and dicts are recognised by the reference readers (as
        ``open_virtual_dataset`` recognises them); a remote URL only by its ``.json``
        suffix, since xarray asks every engine and this question should cost no request.

        Parameters
        ----------
        filename_or_obj : Any

        Returns
        -------
        bool
        """
        if isinstance(filename_or_obj, Mapping):
            probe = Probe(filename_or_obj)
        elif isinstance(filename_or_obj, str | os.PathLike):
            location = Location.of(filename_or_obj)
            if not location.is_local:
                return location.url.endswith(".json")
            probe = Probe(location)
        else:
            return False
        try:
            find_reader(probe, references_only=True)
        except (UnsupportedFileTypeError, OSError):
            return False
        return True

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        filetype: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        verify_sources: bool = True,
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
    ) -> xr.Dataset:
        """Open references as a dataset of lazily read (real) data.

        Parameters
        ----------
        filename_or_obj : str, path-like or dict
            A kerchunk JSON file or document, a kerchunk Parquet store or a Zarr
            manifest store.
        mask_and_scale, decode_times, concat_characters, decode_coords
            As for :func:`xarray.open_dataset`.
        use_cftime, decode_timedelta
            As for :func:`xarray.open_dataset`.
        drop_variables : str or iterable of str, optional
            Variables to leave out.
        group : str, optional
            A group inside the references.
        filetype : str, optional
            ``"kerchunk"``, ``"manifest_store"`` (``"zarr"`` also names one) or
            ``"dmrpp"`` to skip detecting the format.
        storage_options : mapping, optional
            fsspec options for remote references and sources (``s3://``, ``https://``).
        verify_sources : bool, default True
            Before returning, compare each source's size and mtime/ETag recorded at
            virtualization with the file now; False skips the check (one ``stat`` or
            ``HEAD`` per source).
        allowed_sources : str, iterable of str or SourcePolicy, optional
            Protocols (``"file"``, ``"s3"``, ``"https"``) and URL prefixes
            (``"s3://bucket/data/"``, ``"/archive/"``) the references may point at.
            By default, references loaded from a local file may point at local files and
            object stores/HTTP; references loaded from a remote location may not point at
            local files. ``"*"`` trusts them entirely. See ``docs/security.md``.
        limits : ReferenceLimits, optional
            Size limits on the references (:class:`virtualizarr.security.ReferenceLimits`).

        Returns
        -------
        xarray.Dataset

        Raises
        ------
        InvalidReferencesError
            If the references are malformed.
        StaleReferenceError
            If ``verify_sources`` and a source changed or disappeared, naming them.
        UntrustedReferenceError
            If the references point outside ``allowed_sources`` or exceed ``limits``.
        """
        drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables or ())
        vgroup = open_virtual_group(
            filename_or_obj,
            filetype=filetype,
            group=group,
            drop_variables=drop,
            storage_options=storage_options,
            verify_sources=verify_sources,
            allowed_sources=allowed_sources,
            limits=limits,
            references_only=True,
        )
        store = _VirtualDataStore(vgroup, storage_options=storage_options)
        return StoreBackendEntrypoint().open_dataset(
            store,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )

    def open_groups_as_dict(
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        filetype: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        verify_sources: bool = True,
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
    ) -> dict[str, xr.Dataset]:
        """Open every group of references as datasets of lazily read data, by path.

        ``xr.open_groups(refs, engine="virtualizarr")`` calls this. The references are
        read once (their nested groups included) and checked against the source policy
        and limits as a whole.

        Parameters
        ----------
        filename_or_obj, mask_and_scale, decode_times, concat_characters, decode_coords,
        drop_variables, use_cftime, decode_timedelta, filetype, storage_options,
        verify_sources, allowed_sources, limits
            As for :meth:`open_dataset` (``drop_variables`` applies in every group).
        group : str, optional
            The group whose subtree to open (its path becomes ``"/"``).

        Returns
        -------
        dict of str to xarray.Dataset
            ``{"/": root, "/a": ..., "/a/b": ...}``, parents first.

        Raises
        ------
        InvalidReferencesError, StaleReferenceError, UntrustedReferenceError
            As for :meth:`open_dataset`.
        """
        drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables or ())
        tree = open_virtual_group(
            filename_or_obj,
            filetype=filetype,
            group=group,
            drop_variables=drop,
            storage_options=storage_options,
            verify_sources=verify_sources,
            allowed_sources=allowed_sources,
            limits=limits,
            references_only=True,
            subgroups=True,
        )
        out: dict[str, xr.Dataset] = {}
        for gpath, vgroup in tree.walk():
            store = _VirtualDataStore(vgroup, storage_options=storage_options)
            out[gpath] = StoreBackendEntrypoint().open_dataset(
                store,
                mask_and_scale=mask_and_scale,
                decode_times=decode_times,
                concat_characters=concat_characters,
                decode_coords=decode_coords,
                drop_variables=drop,
                use_cftime=use_cftime,
                decode_timedelta=decode_timedelta,
            )
        return out

    def open_datatree(self, filename_or_obj: Any, **kwargs: Any) -> xr.DataTree:
        """Open references with nested groups as an :class:`xarray.DataTree`.

        ``xr.open_datatree(refs, engine="virtualizarr")`` calls this; it matches
        ``xr.open_datatree(original)`` for references written by
        ``dt.virtualize.to_kerchunk`` or ``dt.virtualize.to_zarr``.

        Parameters
        ----------
        filename_or_obj : str, path-like or dict
            Kerchunk references (JSON, Parquet, dict) or a manifest store.
        **kwargs
            As for :meth:`open_groups_as_dict`.

        Returns
        -------
        xarray.DataTree

        Examples
        --------
        >>> dt = xr.open_datatree("tree.zarr", engine="virtualizarr")  # doctest: +SKIP
        """
        groups = self.open_groups_as_dict(filename_or_obj, **kwargs)
        return datatree_from_dict_with_io_cleanup(groups)
