"""The tree accessor (``dt.virtualize``, also ``dt.vz``): write trees of virtual datasets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from virtualizarr.accessor.dataset import VirtualiZarrDatasetAccessor, kerchunk_call
from virtualizarr.formats.attrs import dumps
from virtualizarr.formats.kerchunk import KerchunkRefs
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import to_uri
from virtualizarr.io.write import write_bytes
from virtualizarr.writers.icechunk import datatree_to_icechunk
from virtualizarr.writers.kerchunk import datatree_to_kerchunk_refs
from virtualizarr.writers.parquet import DEFAULT_RECORD_SIZE, datatree_to_kerchunk_parquet
from virtualizarr.writers.zarr import datatree_to_manifest_store

if TYPE_CHECKING:
    from icechunk import IcechunkStore

__all__ = ["VirtualiZarrDataTreeAccessor"]


class VirtualiZarrDataTreeAccessor:
    """Methods on trees of virtual datasets, available as ``dt.virtualize``.

    Every group of the tree is written at its path: one kerchunk document (or Parquet
    store) whose keys are prefixed by the group's path (``forecast/surface/wind/0.0``),
    one manifest store with a directory per group, or a group per node in an Icechunk
    session. ``xr.open_datatree(out, engine="virtualizarr")`` reads the first two back,
    ``xr.open_datatree(session.store, engine="zarr", consolidated=False)`` the last.

    Parameters
    ----------
    dt : xarray.DataTree
        A tree from :func:`~virtualizarr.open_virtual_datatree`.
    """

    def __init__(self, dt: xr.DataTree) -> None:
        self._dt = dt

    def _groups(
        self, relative_to: Callable[[str], str] | None = None
    ) -> list[tuple[str, xr.Dataset, list[str]]]:
        """``(path, dataset, subgroup names)`` of every node, parents first."""
        out = []
        for node in self._dt.subtree:
            rel = node.relative_to(self._dt)
            path = "" if rel == "." else rel
            ds = node.to_dataset(inherit=False)
            if relative_to is not None:
                ds = VirtualiZarrDatasetAccessor(ds)._relative_to(relative_to(path))
            out.append((path, ds, [str(c) for c in node.children]))
        return out

    def nrefs(self) -> int:
        """Number of chunk references in every group (see the dataset accessor's ``nrefs``).

        Returns
        -------
        int
        """
        return sum(
            VirtualiZarrDatasetAccessor(node.to_dataset(inherit=False)).nrefs()
            for node in self._dt.subtree
        )

    def to_kerchunk(
        self,
        filepath: str | os.PathLike[str] | None = None,
        format: str | None = None,
        *,
        mode: str = "w-",
        record_size: int = DEFAULT_RECORD_SIZE,
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        categorical_threshold: int | None = None,
        zarr_format: int = 2,
    ) -> KerchunkRefs | None:
        """Serialize every group as one set of kerchunk references.

        Parameters
        ----------
        filepath, format, mode, record_size, relative_paths, storage_options
            As for :meth:`VirtualiZarrDatasetAccessor.to_kerchunk`.
        categorical_threshold, zarr_format
            As for :meth:`VirtualiZarrDatasetAccessor.to_kerchunk` (accepted for
            VirtualiZarr 2.x code; ``zarr_format`` must be 2).

        Returns
        -------
        dict or None
            The reference document for ``format="dict"``, else None.

        Raises
        ------
        OutputExistsError
            If ``filepath`` exists and ``mode="w-"``.
        OutputWriteError
            If the output could not be written; previous output is left as it was.
        UnsupportedFeatureError
            If a variable cannot be expressed in kerchunk's Zarr v2 metadata.

        Examples
        --------
        >>> dt = open_virtual_datatree("groups.nc")  # doctest: +SKIP
        >>> dt.virtualize.to_kerchunk("refs.json", format="json")  # doctest: +SKIP
        >>> xr.open_datatree("refs.json", engine="virtualizarr")  # doctest: +SKIP
        """
        format = kerchunk_call(
            filepath,
            format,
            relative_paths=relative_paths,
            categorical_threshold=categorical_threshold,
            zarr_format=zarr_format,
        )
        ref = to_uri(filepath) if filepath is not None else ""
        groups = [
            (path, ds) for path, ds, _ in self._groups((lambda _: ref) if relative_paths else None)
        ]
        if format == "dict":
            return datatree_to_kerchunk_refs(groups)
        assert filepath is not None
        target = Location.of(filepath, storage_options)
        if format == "parquet":
            datatree_to_kerchunk_parquet(groups, target, record_size=record_size, mode=mode)
            return None
        doc = datatree_to_kerchunk_refs(groups)
        write_bytes(target, [dumps(doc)], mode=mode)
        return None

    def to_zarr(
        self,
        store: str | os.PathLike[str],
        *,
        mode: str = "w-",
        relative_paths: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        manifest_format: str = "binary",
    ) -> None:
        """Write every group as one Zarr v3 manifest store (a directory per group).

        Each group's ``zarr.json`` lists its subgroups (``"virtualizarr"."groups"``), so
        the store is read without a listing too (HTTP). The root group's ``zarr.json`` is
        written last.

        Parameters
        ----------
        store, mode, relative_paths, storage_options, manifest_format
            As for :meth:`VirtualiZarrDatasetAccessor.to_zarr` (relative paths are
            relative to each array's directory).

        Raises
        ------
        OutputExistsError
            If the store exists and ``mode="w-"``.
        OutputWriteError
            If the store could not be written; a previous one is left as it was.

        Examples
        --------
        >>> dt.virtualize.to_zarr("tree.zarr")  # doctest: +SKIP
        >>> xr.open_datatree("tree.zarr", engine="virtualizarr")  # doctest: +SKIP
        """
        root = to_uri(store).rstrip("/")

        def array_dir(path: str) -> str:
            return f"{root}/{path}/_/zarr.json" if path else f"{root}/_/zarr.json"

        groups = self._groups(array_dir if relative_paths else None)
        datatree_to_manifest_store(
            groups,
            Location.of(store, storage_options),
            mode=mode,
            manifest_format=manifest_format,
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
        """Write every node of the tree into an Icechunk session, each at its path.

        Nodes are written parents first, each as
        :meth:`VirtualiZarrDatasetAccessor.to_icechunk` writes a dataset (without the
        coordinates it inherits, which readers of the tree inherit again). The whole tree
        is checked before anything is written: a refusal leaves the session as it was.
        The caller commits.

        Parameters
        ----------
        store : icechunk.IcechunkStore
            ``session.store`` of a writable session, whose repository has a virtual chunk
            container for every source URL prefix.
        group : str, optional
            The group the tree's root becomes (``"runs/2024"``); the root group by default.
        append_dim : str, optional
            Append along this dimension to the tree already stored at ``group``: every
            group that has the dimension grows along it (with the rules of the dataset
            accessor's ``append_dim``); groups without it must hold what is stored. The
            stored tree must have the same groups.
        validate_containers : bool, default True
            Refuse sources that no virtual chunk container of the repository covers.
        last_updated_at : datetime, optional
            The checksum of every source instead of its recorded identity.
        mode : {"w-", "w"}
            Without ``append_dim``: ``"w-"`` (default) refuses a ``group`` that already
            holds arrays or groups; ``"w"`` replaces everything under it.

        Raises
        ------
        MissingDependencyError
            If icechunk is not installed.
        InvalidArgumentError
            If ``store`` is not an ``IcechunkStore`` of a writable session, or an
            argument has a wrong value.
        OutputExistsError
            If ``group`` holds nodes and ``mode="w-"``.
        IncompatibleArraysError
            If an append does not match the stored tree (the session is left untouched).
        UnsupportedFeatureError
            If a source URL has no virtual chunk container, or is relative.
        OutputWriteError
            If Icechunk refused a write.

        Examples
        --------
        >>> dt = open_virtual_datatree("groups.nc")  # doctest: +SKIP
        >>> session = repo.writable_session("main")  # doctest: +SKIP
        >>> dt.virtualize.to_icechunk(session.store)  # doctest: +SKIP
        >>> session.commit("the tree")  # doctest: +SKIP
        >>> xr.open_datatree(
        ...     repo.readonly_session("main").store, engine="zarr", consolidated=False
        ... )  # doctest: +SKIP
        """
        datatree_to_icechunk(
            [(path, ds) for path, ds, _ in self._groups()],
            store,
            group=group,
            append_dim=append_dim,
            validate_containers=validate_containers,
            last_updated_at=last_updated_at,
            mode=mode,
        )
