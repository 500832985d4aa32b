"""What an Icechunk write will do, decided before anything is written.

:func:`plan_write` checks the target group (it exists or not, holds arrays or not), and for
an append checks every variable against what the group holds -- the rules of
:func:`~virtualizarr.manifests.combine.check_combinable` (dtype, codecs, chunk shape off
the append axis, fill value, CF encoding attributes) plus the rules of a growing Zarr
array (the same chunk length along the append axis, the stored length a whole number of
chunks) -- and returns a :class:`Plan`: documents, native chunks, virtual manifests with
their chunk-grid offsets, and regions of loaded arrays. Only then does the writer touch
the session, so a refused append leaves it untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from virtualizarr.errors import (
    IncompatibleArraysError,
    InvalidArgumentError,
    OutputExistsError,
)
from virtualizarr.formats.attrs import restore_attrs
from virtualizarr.formats.manifest_store import EXTENSION, ROOT_METADATA
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.combine import cf_encoding_attrs, check_combinable, values_equal
from virtualizarr.manifests.manifest import ChunkManifest
from virtualizarr.manifests.metadata import (
    axis_edges,
    chunk_grid_shape,
    metadata_chunks,
)
from virtualizarr.writers.encode import encode_dataset, encode_loaded_variable
from virtualizarr.writers.icechunk_docs import (
    Document,
    fill_from_json,
    group_doc,
    inline_chunks,
    join,
    node_doc,
    virtual_doc,
)
from virtualizarr.writers.zarr import loaded_array

__all__ = ["Plan", "RefCall", "group_path", "plan_write"]


@dataclass(frozen=True, slots=True)
class RefCall:
    """One ``IcechunkStore.set_virtual_refs_arr`` call."""

    path: str
    grid: tuple[int, ...]
    locations: list[str]
    offsets: npt.NDArray[np.uint64]
    lengths: npt.NDArray[np.uint64]
    arr_offset: tuple[int, ...]
    checksum: datetime | str | None


@dataclass(slots=True)
class Plan:
    """Everything a write will do, in the order it is done.

    Attributes
    ----------
    deletes : list of str
        Nodes removed first (``mode="w"``).
    documents : dict
        ``zarr.json`` key -> document.
    chunks : dict
        Native chunk key -> bytes (loaded variables, inline chunks).
    virtual : list
        ``(array path, manifest, chunk-grid offset)`` per virtual variable.
    regions : list
        ``(array path, region, values)`` written through Zarr after the documents.
    sources : dict
        Source path -> recorded identity.
    """

    deletes: list[str] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)
    chunks: dict[str, bytes] = field(default_factory=dict)
    virtual: list[tuple[str, ChunkManifest, tuple[int, ...]]] = field(default_factory=list)
    regions: list[tuple[str, tuple[slice, ...], npt.NDArray[Any]]] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)


Read = Callable[[str], bytes | None]
"""Bytes of a key of the store, or None."""
Children = Callable[[str], list[str]]
"""Names directly under a prefix of the store."""
Values = Callable[[str], npt.NDArray[Any]]
"""Stored values of an array."""


def group_path(group: str | None) -> str:
    """The group as a store prefix: ``None``/``"/"`` -> ``""``, ``"/a/b/"`` -> ``"a/b"``.

    Raises
    ------
    InvalidArgumentError
        If a segment is empty, ``.``, ``..`` or ``zarr.json``.
    """
    if group is None:
        return ""
    if not isinstance(group, str):
        raise InvalidArgumentError(f"group must be a str such as 'a/b'; found {group!r}.")
    stripped = group.strip("/")
    parts = stripped.split("/") if stripped else []
    if any(p in ("", ".", "..", ROOT_METADATA) for p in parts):
        raise InvalidArgumentError(
            f"group {group!r} is not a valid Zarr group path (empty, '.', '..' or "
            "'zarr.json' segment); use names separated by '/', such as 'model/run1'."
        )
    return "/".join(parts)


def _load(read: Read, key: str) -> Document | None:
    raw = read(key)
    if raw is None:
        return None
    doc = json.loads(raw)
    return doc if isinstance(doc, dict) else None


def _check_target(plan: Plan, prefix: str, mode: str, read: Read, children: Children) -> None:
    """Refuse (or, for ``mode="w"``, clear) a group that already holds nodes; add parents."""
    parts = prefix.split("/") if prefix else []
    for i in range(len(parts)):  # the root group too: a new repository has none
        parent = "/".join(parts[:i])
        doc = _load(read, join(parent, ROOT_METADATA))
        if doc is None:
            plan.documents[join(parent, ROOT_METADATA)] = group_doc({})
        elif doc.get("node_type") != "group":
            raise InvalidArgumentError(
                f"cannot write group {prefix!r}: {parent or '/'!r} is an array, not a group."
            )
    doc = _load(read, join(prefix, ROOT_METADATA))
    if doc is None:
        return
    members = [c for c in children(prefix) if c != ROOT_METADATA]
    if doc.get("node_type") == "group" and not members:
        return
    if mode == "w-":
        what = "an array" if doc.get("node_type") != "group" else f"the nodes {members[:8]}"
        raise OutputExistsError(
            f"group {prefix or '/'!r} of the Icechunk session already holds {what}. Pass "
            "mode='w' to replace it, append_dim=... to append along a dimension, or "
            "group=... to write elsewhere."
        )
    if doc.get("node_type") != "group":
        plan.deletes.append(prefix)
    else:
        plan.deletes.extend(join(prefix, m) for m in members)


def _write_new(plan: Plan, prefix: str, ds: xr.Dataset) -> None:
    enc = encode_dataset(ds, reserved=(ROOT_METADATA,))
    plan.sources.update(enc.sources)
    plan.documents[join(prefix, ROOT_METADATA)] = group_doc(enc.attrs)
    for var in enc.variables:
        path = join(prefix, var.name)
        if var.array is not None:
            plan.documents[join(path, ROOT_METADATA)] = virtual_doc(var, var.array)
            plan.chunks.update(inline_chunks(path, var.array, (0,) * var.array.ndim))
            plan.virtual.append((path, var.array.manifest, (0,) * var.array.ndim))
        else:
            doc, chunks = loaded_array(var)
            dtype = np.dtype(var.values.dtype) if var.values is not None else None
            plan.documents[join(path, ROOT_METADATA)] = node_doc(var.attrs, doc, dtype, var.name)
            plan.chunks.update({join(path, k): v for k, v in chunks.items()})


# ---------------------------------------------------------------------- append
_LOADED_ENCODING = ("units", "calendar", "scale_factor", "add_offset", "_FillValue")


def _stored(doc: Document, name: str) -> tuple[ArrayMetadata, dict[str, Any]]:
    """The stored array's metadata and its attributes with their recorded types."""
    ext = doc.get(EXTENSION)
    dtypes = ext.get("attribute_dtypes") if isinstance(ext, dict) else None
    bare = {k: v for k, v in doc.items() if k not in (EXTENSION, "attributes")}
    try:
        meta = ArrayMetadata.from_dict({**bare, "attributes": {}})
    except (ValueError, TypeError, KeyError) as e:
        raise IncompatibleArraysError(
            f"cannot append to array {name!r}: its stored Zarr metadata is not readable "
            f"({type(e).__name__}: {e})."
        ) from e
    raw = dict(doc.get("attributes") or {})
    if "_FillValue" in raw:
        dtype = meta.data_type
        raw["_FillValue"] = fill_from_json(raw["_FillValue"], dtype)
    return meta, restore_attrs(raw, dtypes)


def _append_virtual(
    plan: Plan,
    path: str,
    name: str,
    new: ManifestArray,
    attrs: Mapping[str, Any],
    doc: Document,
    axis: int | None,
) -> None:
    meta, old_attrs = _stored(doc, name)
    grid = chunk_grid_shape(meta.shape, metadata_chunks(meta))
    old = ManifestArray(
        meta, ChunkManifest.empty(grid), name=name, encoding_attrs=cf_encoding_attrs(old_attrs)
    )
    new = ManifestArray(
        new.metadata, new.manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs)
    )
    check_combinable([old, new], axis)
    if axis is None:
        return  # the group keeps its references of a variable that does not grow
    size = _append_chunk(name, old, new, axis)
    start = tuple(old.shape[axis] // size if ax == axis else 0 for ax in range(old.ndim))
    shape = list(old.shape)
    shape[axis] += new.shape[axis]
    plan.documents[join(path, ROOT_METADATA)] = {**doc, "shape": shape}
    plan.chunks.update(inline_chunks(path, new, start))
    plan.virtual.append((path, new.manifest, start))


def _append_chunk(name: str, old: ManifestArray, new: ManifestArray, axis: int) -> int:
    """The chunk length along the append axis, after checking the growing-array rules."""
    c_old = old.chunk_sizes[axis]
    if not isinstance(c_old, int):
        raise IncompatibleArraysError(
            f"cannot append to variable {name!r}: its stored chunks along the append axis "
            "are of variable length (a rectilinear grid), which an append cannot extend."
        )
    lengths = axis_edges(new.shape[axis], new.chunk_sizes[axis])
    if any(n != c_old for n in lengths[:-1]) or (lengths and lengths[-1] > c_old):
        raise IncompatibleArraysError(
            f"cannot append to variable {name!r}: its stored chunks are {c_old} long along "
            f"the append axis, the new data's are {sorted(set(lengths))}. One Zarr array has "
            "one chunk length; virtualize files chunked the same way, or load the variable."
        )
    if old.shape[axis] % c_old:
        raise IncompatibleArraysError(
            f"cannot append to variable {name!r}: its stored length {old.shape[axis]} along "
            f"the append axis is not a whole number of its {c_old}-long chunks, so the "
            "appended chunks would not line up with the grid (only the last chunk of a Zarr "
            "array may be partial)."
        )
    return c_old


def _reencoded(var: xr.Variable, name: str, attrs: Mapping[str, Any], dtype: Any) -> Any:
    """A loaded variable CF-encoded the way the stored array is (its units, calendar...)."""
    encoding = dict(var.encoding)
    keep = {k: v for k, v in var.attrs.items() if k not in _LOADED_ENCODING}
    for k in _LOADED_ENCODING:
        if k in attrs:
            encoding[k] = attrs[k]
    encoding["dtype"] = dtype
    # a loaded variable holds a NumPy array: the fast path skips xarray's duck-array
    # checks, which import dask.array (0.5 s) the first time they run
    fast = isinstance(var.data, np.ndarray)
    return encode_loaded_variable(
        xr.Variable(var.dims, var.data, keep, encoding, fastpath=fast), name
    )


def _append_loaded(
    plan: Plan,
    path: str,
    name: str,
    var: xr.Variable,
    doc: Document,
    axis: int | None,
    values_of: Values,
) -> None:
    meta, old_attrs = _stored(doc, name)
    dtype = meta.data_type
    encoded = _reencoded(var, name, old_attrs, dtype)
    values = np.asarray(encoded.values)
    enc_new, enc_old = cf_encoding_attrs(encoded.attrs), cf_encoding_attrs(old_attrs)
    differs = [
        k
        for k in set(enc_new) | set(enc_old)
        if not values_equal(enc_new.get(k, "<absent>"), enc_old.get(k, "<absent>"))
    ]
    if differs or values.dtype.kind != dtype.kind:
        raise IncompatibleArraysError(
            f"cannot append to the loaded variable {name!r}: stored as {dtype} with "
            f"{enc_old}, the new values encode as {values.dtype} with {enc_new}."
        )
    old_shape = tuple(int(s) for s in meta.shape)
    if axis is None:
        stored = values_of(path)
        same = stored.shape == values.shape and (
            np.array_equal(stored, values, equal_nan=True)
            if values.dtype.kind in "fc"
            else np.array_equal(stored, values)
        )
        if not same:
            raise IncompatibleArraysError(
                f"cannot append: the variable {name!r}, which does not have the append "
                "dimension, differs from the one stored, so the appended data would be "
                "labelled wrongly. Append only datasets on the same grid."
            )
        return
    if values.shape[:axis] + values.shape[axis + 1 :] != old_shape[:axis] + old_shape[axis + 1 :]:
        raise IncompatibleArraysError(
            f"cannot append to the loaded variable {name!r}: stored shape {old_shape}, new "
            f"shape {values.shape} (only the append axis may differ)."
        )
    shape = list(old_shape)
    shape[axis] += values.shape[axis]
    plan.documents[join(path, ROOT_METADATA)] = {**doc, "shape": shape}
    region = tuple(
        slice(old_shape[axis], shape[axis]) if ax == axis else slice(None)
        for ax in range(len(shape))
    )
    if values.size:
        plan.regions.append((path, region, values))


def _stored_nodes(
    prefix: str, read: Read, children: Children
) -> tuple[dict[str, Document], list[str]]:
    """The arrays (name -> document) and the subgroup names directly under a group."""
    arrays, groups = {}, []
    for child in children(prefix):
        if child == ROOT_METADATA:
            continue
        doc = _load(read, join(join(prefix, child), ROOT_METADATA))
        if doc is not None and doc.get("node_type") == "array":
            arrays[child] = doc
        elif doc is not None and doc.get("node_type") == "group":
            groups.append(child)
    return arrays, groups


def _require_group(prefix: str, read: Read) -> None:
    group_doc = _load(read, join(prefix, ROOT_METADATA))
    if group_doc is None or group_doc.get("node_type") != "group":
        raise InvalidArgumentError(
            f"cannot append to group {prefix or '/'!r}: the session holds no such group. "
            "Write the first dataset without append_dim."
        )


def _write_append(
    plan: Plan,
    prefix: str,
    ds: xr.Dataset,
    dim: str,
    read: Read,
    children: Children,
    values_of: Values,
) -> None:
    """Append one group: variables with ``dim`` grow, the others must match the stored."""
    _require_group(prefix, read)
    stored, _ = _stored_nodes(prefix, read, children)
    enc = encode_dataset(ds, reserved=(ROOT_METADATA,))
    names: dict[str, Hashable] = {str(k): k for k in ds.variables}
    new_names = {v.name for v in enc.variables}
    if new_names != set(stored):
        raise IncompatibleArraysError(
            f"cannot append to group {prefix or '/'!r}: it holds the arrays "
            f"{sorted(set(stored) - new_names)} that the dataset lacks, and the dataset has "
            f"{sorted(new_names - set(stored))} that the group lacks. Append datasets with "
            "the same variables."
        )
    plan.sources.update(enc.sources)
    for var in enc.variables:
        doc = stored[var.name]
        old_dims = tuple(doc.get("dimension_names") or ())
        if old_dims != var.dims:
            raise IncompatibleArraysError(
                f"cannot append variable {var.name!r}: stored with dimensions {old_dims}, "
                f"found {var.dims}."
            )
        axis = var.dims.index(dim) if dim in var.dims else None
        path = join(prefix, var.name)
        if var.array is not None:
            _append_virtual(plan, path, var.name, var.array, var.attrs, doc, axis)
        else:
            source = ds.variables[names[var.name]]
            _append_loaded(plan, path, var.name, source, doc, axis, values_of)


def _check_tree_append(
    prefix: str, nodes: Sequence[tuple[str, xr.Dataset]], read: Read, children: Children
) -> None:
    """A tree appends onto a stored tree of the same groups."""
    _require_group(prefix, read)
    stored: set[str] = set()
    todo = [""]
    while todo:
        rel = todo.pop()
        stored.add(rel)
        _, groups = _stored_nodes(join(prefix, rel), read, children)
        todo.extend(join(rel, g) for g in groups)
    new = {path for path, _ in nodes}
    if new != stored:
        raise IncompatibleArraysError(
            f"cannot append the tree to group {prefix or '/'!r}: the session holds the groups "
            f"{sorted('/' + g for g in stored - new)} that the tree lacks, and the tree has "
            f"{sorted('/' + g for g in new - stored)} that the session lacks. Append trees "
            "with the same groups."
        )


def plan_write(
    nodes: Sequence[tuple[str, xr.Dataset]],
    *,
    group: str | None,
    append_dim: str | None,
    mode: str,
    read: Read,
    children: Children,
    values_of: Values,
    tree: bool = False,
) -> Plan:
    """Check a write against the session and return what it will do.

    Parameters
    ----------
    nodes : sequence of (str, xarray.Dataset)
        The virtual datasets to write and their paths below ``group``, parents first:
        ``[("", ds)]`` for one dataset, every node of a tree for a DataTree.
    group : str, optional
        Target group.
    append_dim : str, optional
        Dimension to append along. In a tree, the groups with that dimension grow along
        it and the others must hold what is stored.
    mode : {"w-", "w"}
        Without ``append_dim``: refuse or replace a group that holds nodes.
    read, children, values_of : callable
        Read access to the session: a key's bytes, the names under a prefix, an array's
        values.
    tree : bool, default False
        ``nodes`` are a DataTree's: an append must find the same groups stored.

    Returns
    -------
    Plan

    Raises
    ------
    InvalidArgumentError, OutputExistsError, IncompatibleArraysError
    """
    prefix = group_path(group)
    plan = Plan()
    if append_dim is None:
        _check_target(plan, prefix, mode, read, children)
        for path, ds in nodes:
            _write_new(plan, join(prefix, path), ds)
        return plan
    if not isinstance(append_dim, str):
        raise InvalidArgumentError(f"append_dim must be a str; found {append_dim!r}.")
    dims = {str(d) for _, ds in nodes for d in ds.dims}
    if append_dim not in dims:
        what = "tree (in any group)" if tree else "dataset"
        raise InvalidArgumentError(
            f"append_dim={append_dim!r} is not a dimension of the {what}; its dimensions "
            f"are {sorted(dims)}."
        )
    if tree:
        _check_tree_append(prefix, nodes, read, children)
    for path, ds in nodes:
        _write_append(plan, join(prefix, path), ds, append_dim, read, children, values_of)
    return plan
