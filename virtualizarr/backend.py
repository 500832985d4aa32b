"""xarray engine ``"virtualizarr"``: open references and manifest stores as real data.

``xr.open_dataset(path, engine="virtualizarr")`` accepts a kerchunk JSON file (or the
reference dict itself), a kerchunk Parquet store, or a Zarr manifest store written by
``ds.virtualize.to_zarr``. The references become
:class:`~virtualizarr.manifests.ManifestArray`\\ s, read by the native path
(:class:`~virtualizarr._read.NativeArray`: coalesced ranged reads and numcodecs decoding on
a thread pool, no per-chunk zarr coroutines) -- or, for codec chains it cannot map, served
by a :class:`~virtualizarr.store.ManifestStore` to zarr. xarray's CF decoding then runs on
variables whose attributes carry their original NumPy types (restored from the
``"virtualizarr"`` record our writers add; see :mod:`virtualizarr.attrtypes`), so the
result matches ``xr.open_dataset`` on the original files -- a ``float32`` ``scale_factor``
still decodes to ``float32``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import xarray as xr
import zarr
from xarray.backends import BackendEntrypoint
from xarray.backends.common import AbstractDataStore
from xarray.backends.store import StoreBackendEntrypoint
from xarray.backends.zarr import ZarrArrayWrapper
from xarray.core import indexing
from zarr.errors import UnstableSpecificationWarning

from virtualizarr._read import FileCache, NativeArray, chunk_decoder
from virtualizarr.errors import InvalidReferencesError
from virtualizarr.io import ObjectDirectory, is_local, local_path, to_uri
from virtualizarr.readers.base import VirtualGroup
from virtualizarr.security import ReferenceLimits, SourcePolicy
from virtualizarr.store import ManifestGroup, ManifestStore

__all__ = ["VirtualiZarrBackendEntrypoint", "open_virtual_group"]


def _kind(path: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """``"parquet"``, ``"zarr"`` or ``"json"`` for a reference location.

    A remote URL ending in ``.json`` is a JSON document; any other is asked for a
    ``.zmetadata`` (Parquet references) or a ``zarr.json`` (a manifest store) under it --
    by key, so this works over HTTP(S), which cannot list. A URL ending in ``.zarr`` with
    neither is taken for a manifest store, whose reader then names the missing document.
    """
    if not is_local(path):
        stripped = path.rstrip("/")
        if stripped.endswith(".json"):
            return "json"
        try:
            directory = ObjectDirectory(path, storage_options)
            if directory.exists(".zmetadata"):
                return "parquet"
            if directory.exists("zarr.json"):
                return "zarr"
        except (OSError, ValueError):
            pass  # not a listable location: read it as a JSON document, which names the URL
        return "zarr" if stripped.endswith(".zarr") else "json"
    p = local_path(path)
    if os.path.isdir(p):
        if os.path.isfile(os.path.join(p, ".zmetadata")):
            return "parquet"
        if os.path.isfile(os.path.join(p, "zarr.json")):
            return "zarr"
        raise InvalidReferencesError(
            f"{path} is a directory but neither a kerchunk Parquet store (no .zmetadata) "
            "nor a Zarr manifest store (no zarr.json)."
        )
    return "json"


def open_virtual_group(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    verify_sources: bool = True,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> VirtualGroup:
    """Read references (kerchunk dict/JSON/Parquet or a manifest store) as a VirtualGroup.

    Parameters
    ----------
    source : str, path-like or mapping
        A kerchunk document, a JSON file, or the directory of a Parquet or manifest store
        -- local, on object storage (``s3://bucket/refs.zarr``), or, for a manifest store,
        on a web server (``https://host/dir/refs.zarr``, read by key without a listing).
    group : str, optional
    drop_variables : iterable of str
    storage_options : mapping, optional
        fsspec options for remote references and sources.
    verify_sources : bool
        Compare the sources' recorded identities with the files now (see
        :func:`virtualizarr.identity.verify`).
    allowed_sources : str, iterable of str or SourcePolicy, optional
        Protocols (``"file"``, ``"s3"``) and URL prefixes (``"s3://bucket/data/"``) the
        references may point at; None for the default policy, ``"*"`` to trust them
        entirely (see :mod:`virtualizarr.security`).
    limits : ReferenceLimits, optional
        Size limits on the references (document size, chunks, inline data, nesting).

    Returns
    -------
    VirtualGroup

    Raises
    ------
    InvalidReferencesError
        If the references are malformed.
    StaleReferenceError
        If ``verify_sources`` and a source changed or disappeared since it was virtualized.
    UntrustedReferenceError
        If the references point outside ``allowed_sources`` or exceed ``limits``.
    """
    from virtualizarr.readers.kerchunk import open_references

    if isinstance(source, Mapping):
        vgroup = open_references(
            source, group, drop_variables, allowed_sources=allowed_sources, limits=limits
        )
    else:
        url = to_uri(source)
        if _kind(url, storage_options) == "zarr":
            from virtualizarr.readers.zarr_manifest import open_manifest_store

            vgroup = open_manifest_store(
                url,
                group=group,
                drop_variables=drop_variables,
                storage_options=storage_options,
                allowed_sources=allowed_sources,
                limits=limits,
            )
        else:
            vgroup = open_references(
                url, group, drop_variables, storage_options, allowed_sources, limits
            )
    if verify_sources:
        from virtualizarr.identity import check_sources, group_sources

        manifests = (v.data.manifest for v in vgroup.variables.values())
        check_sources(group_sources(manifests), storage_options).raise_if_stale()
    return vgroup


class _VirtualDataStore(AbstractDataStore):
    """An xarray data store over a VirtualGroup (lazy arrays, typed attributes).

    Arrays whose codec chain maps onto numcodecs are read by the native path
    (:class:`~virtualizarr._read.NativeArray`); any other goes through a
    :class:`~virtualizarr.store.ManifestStore` and zarr.
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
            arrays = {k: v.data for k, v in self._vgroup.variables.items()}
            self._store = ManifestStore(
                ManifestGroup(arrays=arrays), storage_options=self._files.storage_options
            )
        with warnings.catch_warnings(), zarr.config.set({"array.rectilinear_chunks": True}):
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
        "storage_options",
        "verify_sources",
        "allowed_sources",
        "limits",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for kerchunk dicts, JSON reference files, Parquet and manifest stores.

        Parameters
        ----------
        filename_or_obj : Any

        Returns
        -------
        bool
        """
        if isinstance(filename_or_obj, Mapping):
            return "refs" in filename_or_obj or ".zgroup" in filename_or_obj
        if not isinstance(filename_or_obj, str | os.PathLike):
            return False
        url = to_uri(filename_or_obj)
        if not is_local(url):
            return str(url).endswith(".json")
        p = local_path(url)
        if os.path.isdir(p):
            if os.path.isfile(os.path.join(p, ".zmetadata")):
                return True
            try:
                with open(os.path.join(p, "zarr.json"), "rb") as f:
                    return b'"virtualizarr"' in f.read(1 << 16)
            except OSError:
                return False
        try:
            with open(p, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        return head.lstrip()[:1] == b"{" and (b'"refs"' in head or b".zgroup" in head)

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
        mask_and_scale, decode_times, concat_characters, decode_coords, use_cftime,
        decode_timedelta
            As for :func:`xarray.open_dataset`.
        drop_variables : str or iterable of str, optional
            Variables to leave out.
        group : str, optional
            A group inside the references.
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
            group=group,
            drop_variables=drop,
            storage_options=storage_options,
            verify_sources=verify_sources,
            allowed_sources=allowed_sources,
            limits=limits,
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
