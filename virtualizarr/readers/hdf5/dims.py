"""Dimension names and lengths of HDF5 datasets, resolved as netCDF-C resolves them.

netCDF-C (which ``xr.open_dataset(path, engine="netcdf4")`` uses) builds its dimensions
from HDF5 dimension scales, and invents *phony* dimensions for datasets that have none.
We follow its rules so that virtual datasets name dimensions exactly as xarray does:

* A dataset whose ``CLASS`` attribute is ``DIMENSION_SCALE`` defines a dimension named
  after the dataset. When its ``NAME`` starts with ``This is a netCDF dimension but not a
  netCDF variable``, it is a dimension only, not a variable.
* A variable named like a dimension it does not index (a 2-D ``lat``) is stored as
  ``_nc4_non_coord_<name>``; its variable name drops the prefix.
* A variable's dimensions come from its ``_Netcdf4Coordinates`` attribute (netCDF
  dimension ids, matched to the scales' ``_Netcdf4Dimid``), else from the scales its
  ``DIMENSION_LIST`` references (the last one attached to an axis, as netCDF-C's scale
  visitor keeps it), else (a 1-D scale) from itself.
* Datasets without dimension scales get phony dimensions, per group: groups are visited
  children first; each axis reuses the first dimension of the group with the same length
  and the same unlimitedness that this dataset does not already use, or creates
  ``phony_dim_<n>`` with ``n`` counting on from the file's real dimension ids.
* An unlimited dimension is as long as the longest dataset using it; shorter datasets
  read as their fill value past their own end (netCDF-C pads them).

The scan touches only metadata: shapes, a few attributes and object references.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import h5py
import numpy as np

from virtualizarr.readers.hdf5.attrs import ObjAttrs, is_vlen_type
from virtualizarr.readers.hdf5.netcdf_names import DIMENSION_ONLY

__all__ = [
    "DimInfo",
    "FileDims",
    "H5Var",
    "Skipped",
    "is_dimension_scale",
    "scan_dims",
    "walk_groups",
]

NON_COORD_PREFIX: Final = "_nc4_non_coord_"
DIM_ONLY_NAME: Final = DIMENSION_ONLY


@dataclass(frozen=True, slots=True)
class DimInfo:
    """The dimensions of one dataset as netCDF-C sees them."""

    names: tuple[str, ...]
    shape: tuple[int, ...]
    """The dataset's shape padded to its unlimited dimensions' lengths."""


@dataclass(slots=True)
class _Dim:
    name: str
    length: int
    unlimited: bool


@dataclass(slots=True)
class _Dset:
    path: str
    shape: tuple[int, ...]
    unlimited: tuple[bool, ...]
    keys: list[str | None] = field(default_factory=list)


@dataclass(slots=True)
class H5Var:
    """A variable dataset found by the scan, with what the reader needs of it, read once."""

    path: str
    """Its path in the file (``/group/name``)."""
    dsid: Any
    """The open low-level ``h5py.h5d.DatasetID``."""
    tid: Any
    """Its datatype (``h5py.h5t.TypeID``)."""
    cls: int
    """Its datatype class (``h5py.h5t.INTEGER``, ...)."""
    shape: tuple[int, ...] | None
    """Its shape; None for a null dataspace."""
    dcpl: Any
    """Its dataset creation property list."""
    attrs: ObjAttrs
    """Its attributes (listed, read on demand)."""


@dataclass(slots=True)
class FileDims:
    """Dimension names and padded shapes for every variable dataset of a file."""

    by_path: dict[str, DimInfo]
    dim_only: frozenset[str]
    """Paths of datasets that define a dimension but are not variables."""
    enum_types: tuple[Any, ...] = ()
    """HDF5 enum types of datasets (netCDF-C then also shows attributes of these types)."""
    members: dict[str, list[H5Var]] = field(default_factory=dict)
    """Per group path, its variable datasets in file order (already open)."""
    group_attrs: dict[str, ObjAttrs] = field(default_factory=dict)
    """Per group path, the group's attributes."""
    skipped: tuple[Skipped, ...] = ()
    """Datasets and links left out (references, opaque data, links not followed)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A dataset (or a link that might have led to one) the scan leaves out, and why."""

    path: str
    """Its path in the file (``/group/name``)."""
    reason: str
    """Why, in words, ending with what to do."""


def _objno(oid: Any) -> tuple[int, int, int]:
    """An object's identity in the open files: file number and header address."""
    info = h5py.h5g.get_objinfo(oid)
    return (int(info.fileno[0]), int(info.objno[0]), int(info.objno[1]))


def _follow(
    gid: Any, raw: bytes, ltype: int, path: str, same_file: Callable[[str], bool] | None
) -> tuple[Any, Skipped | None]:
    """Open what a link points at: ``(object, None)``, or ``(None, why it was not)``.

    Hard and soft links are followed as netCDF-C follows them. An external link is
    followed only when it names this very file (then it is a soft link to its object
    path); its target is never opened otherwise.
    """
    if ltype == h5py.h5l.TYPE_EXTERNAL:
        fname, target = gid.links.get_val(raw)
        fname = fname.decode("utf-8", "replace") if isinstance(fname, bytes) else str(fname)
        target = target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)
        if same_file is None or not same_file(fname):
            return None, Skipped(
                path,
                f"an external link to {target!r} in another file ({fname!r}): its chunks are "
                "not in this file. Virtualize that file itself and combine the datasets",
            )
        try:
            return h5py.h5o.open(gid, target.encode()), None
        except (KeyError, OSError, ValueError):
            return None, Skipped(path, f"an external link to {target!r}, which does not exist")
    if ltype not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
        return None, Skipped(path, "a user-defined link, which HDF5 cannot follow here")
    try:
        return h5py.h5o.open(gid, raw), None
    except (KeyError, OSError, ValueError):
        if ltype == h5py.h5l.TYPE_HARD:
            raise
        target = gid.links.get_val(raw)
        target = target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)
        return None, Skipped(path, f"a soft link to {target!r}, which does not exist")


def walk_groups(
    gid: Any,
    gpath: str = "/",
    *,
    same_file: Callable[[str], bool] | None = None,
    skipped: list[Skipped] | None = None,
    _ancestors: frozenset[tuple[int, int, int]] = frozenset(),
) -> Iterator[tuple[str, Any, list[tuple[str, Any]]]]:
    """Yield each group (pre-order, file order) with its datasets.

    Members are listed in h5py's order (creation order when the group tracks it, else by
    name) with low-level calls: one link iteration per group, one open per object.
    Soft links are followed, as netCDF-C follows them: a dataset reached through one is
    listed under the link's name, a group reached through one is walked (unless it is
    one of its own ancestors: a cycle). External links are followed when they name this
    same file (``same_file``). What is not followed is recorded in ``skipped``.

    Parameters
    ----------
    gid : h5py.h5g.GroupID
        The group to start from (low-level).
    gpath : str
        Its path.
    same_file : callable, optional
        ``same_file(name)``: True if an external link's file name is this file.
    skipped : list of Skipped, optional
        Receives the links not followed (dangling, to other files).

    Yields
    ------
    (str, GroupID, list of (str, DatasetID))
        The group's path, the group, and its datasets' paths and low-level ids.
    """
    ancestors = _ancestors | {_objno(gid)}
    cpl = gid.get_create_plist()
    tracked = cpl.get_link_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
    links: list[tuple[bytes, int]] = []
    gid.links.iterate(
        lambda n, info: links.append((n, info.type)),
        info=True,
        idx_type=h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME,
    )
    datasets: list[tuple[str, Any]] = []
    children: list[tuple[str, Any]] = []
    prefix = gpath if gpath.endswith("/") else gpath + "/"
    for raw, ltype in links:
        path = prefix + raw.decode("utf-8")
        obj, why = _follow(gid, raw, ltype, path, same_file)
        if why is not None:
            if skipped is not None:
                skipped.append(why)
            continue
        if isinstance(obj, h5py.h5d.DatasetID):
            datasets.append((path, obj))
        elif isinstance(obj, h5py.h5g.GroupID) and _objno(obj) not in ancestors:
            children.append((path, obj))  # a group that is its own ancestor: a cycle
    yield gpath, gid, datasets
    for path, child in children:
        yield from walk_groups(
            child, path, same_file=same_file, skipped=skipped, _ancestors=ancestors
        )


def _attr_str(attrs: ObjAttrs, name: str) -> str | None:
    if name not in attrs.names:
        return None
    try:
        value = attrs.value(name)
    except (OSError, TypeError, ValueError):
        return None
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.ravel()[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _attr_ints(attrs: ObjAttrs, name: str) -> list[int] | None:
    if name not in attrs.names:
        return None
    try:
        return [int(v) for v in np.asarray(attrs.value(name)).ravel()]
    except (OSError, TypeError, ValueError):
        return None


def is_dimension_scale(dset: h5py.Dataset) -> bool:
    """True if the dataset is an HDF5 dimension scale.

    Parameters
    ----------
    dset : h5py.Dataset

    Returns
    -------
    bool
    """
    attrs = ObjAttrs(dset.id, dset.id.get_create_plist(), repr(dset.name))
    return _attr_str(attrs, "CLASS") == "DIMENSION_SCALE"


def _dim_name(path: str) -> str:
    return path.rsplit("/", 1)[-1].removeprefix(NON_COORD_PREFIX)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def scan_dims(
    f: h5py.File,
    guard: Callable[[Any, str], None] | None = None,
    same_file: Callable[[str], bool] | None = None,
) -> FileDims:
    """Resolve the dimensions of every dataset in a file, as netCDF-C would.

    Parameters
    ----------
    f : h5py.File
    guard : callable, optional
        ``guard(object_id, path)`` runs, at most once per object, before anything of it
        in the global heap is read: before a variable-length dataset's creation property
        list (its fill value), and before any variable-length attribute. It may raise to
        refuse a damaged object before libhdf5 touches it.
    same_file : callable, optional
        ``same_file(name)``: True if an external link's file name is this file (see
        :func:`walk_groups`).

    Returns
    -------
    FileDims
    """
    scan = _DimScan(f.filename, guard)
    walk = walk_groups(h5py.h5o.open(f.id, b"/"), same_file=same_file, skipped=scan.skipped)
    for gpath, gid, datasets in walk:
        scan.add_group(gpath, gid)
        for path, dsid in datasets:
            scan.add_dataset(gpath, path, dsid)
    scan.resolve_attached()
    scan.assign_phony("/")
    scan.extend_unlimited()
    return scan.result()


class _DimScan:
    """The state of one :func:`scan_dims` pass, filled in phases (netCDF-C's order)."""

    def __init__(self, filename: str, guard: Callable[[Any, str], None] | None) -> None:
        self.filename = filename
        self.guard = guard
        self.dims: dict[str, _Dim] = {}  # key: scale dataset path, or "phony:<name>"
        self.group_dims: dict[str, list[str]] = {}  # group path -> dim keys, creation order
        self.id_to_key: dict[int, str] = {}
        self.next_id = 0
        self.children: dict[str, list[str]] = {}  # group path -> child group paths
        self.group_dsets: dict[str, list[_Dset]] = {}
        self.dim_only: set[str] = set()
        self.pending: list[tuple[H5Var, _Dset, bool]] = []
        self.enum_types: list[Any] = []
        self.members: dict[str, list[H5Var]] = {}
        self.group_attrs: dict[str, ObjAttrs] = {}
        self.skipped: list[Skipped] = []

    def add_group(self, gpath: str, gid: Any) -> None:
        """A group, visited before its datasets and its subgroups."""
        check = None if self.guard is None else functools.partial(self.guard, gid, gpath)
        where = f"{gpath!r} of {self.filename}"
        self.group_attrs[gpath] = ObjAttrs(gid, gid.get_create_plist(), where, check)
        self.group_dims.setdefault(gpath, [])
        self.group_dsets[gpath] = []
        self.children[gpath] = []
        if gpath != "/":
            self.children[_parent(gpath)].append(gpath)

    def add_dataset(self, gpath: str, path: str, dsid: Any) -> None:
        """A dataset of the group ``gpath``: a dimension scale, a variable, or both."""
        tid = dsid.get_type()
        cls = tid.get_class()
        if cls in (h5py.h5t.REFERENCE, h5py.h5t.OPAQUE):
            kind = "object references" if cls == h5py.h5t.REFERENCE else "opaque bytes"
            why = f"a dataset of {kind}, which netCDF-C does not show either; read it with h5py"
            self.skipped.append(Skipped(path, why))
            return
        if cls == h5py.h5t.ENUM:
            self.enum_types.append(tid)
        space = dsid.get_space()
        dims_raw = space.get_simple_extent_dims()
        max_raw = space.get_simple_extent_dims(True)
        check = None if self.guard is None else functools.partial(self.guard, dsid, path)
        if check is not None and is_vlen_type(tid, cls):
            check()  # its fill value and data live in the heap: check before the plist
            check = None
        dcpl = dsid.get_create_plist()
        attrs = ObjAttrs(dsid, dcpl, f"{path!r} of {self.filename}", check)
        var = H5Var(path, dsid, tid, cls, dims_raw, dcpl, attrs)
        shape = tuple(int(s) for s in dims_raw or ())
        info = _Dset(path, shape, tuple(m == h5py.h5s.UNLIMITED for m in max_raw or ()))
        scale = _attr_str(attrs, "CLASS") == "DIMENSION_SCALE"
        if scale and shape and self._add_scale(gpath, path, attrs, info):
            return  # a dimension only, not a variable
        self.group_dsets[gpath].append(info)
        self.pending.append((var, info, scale))
        self.members.setdefault(gpath, []).append(var)

    def _add_scale(self, gpath: str, path: str, attrs: ObjAttrs, info: _Dset) -> bool:
        """Record a dimension scale; True if it is a dimension only (not a variable)."""
        dimid_attr = _attr_ints(attrs, "_Netcdf4Dimid")
        dimid = dimid_attr[0] if dimid_attr else self.next_id
        self.next_id = max(self.next_id, dimid + 1)
        self.id_to_key[dimid] = path
        self.dims[path] = _Dim(_dim_name(path), info.shape[0], info.unlimited[0])
        self.group_dims[gpath].append(path)
        if (_attr_str(attrs, "NAME") or "").startswith(DIM_ONLY_NAME):
            self.dim_only.add(path)
            return True
        return False

    def resolve_attached(self) -> None:
        """Each variable's dimensions from its attributes and attached scales."""
        for var, info, scale in self.pending:
            ndim = len(info.shape)
            keys: list[str | None] = [None] * ndim
            coords = _attr_ints(var.attrs, "_Netcdf4Coordinates")
            ids = self.id_to_key
            if coords is not None and len(coords) == ndim and all(c in ids for c in coords):
                keys = [ids[c] for c in coords]
            elif scale and ndim == 1:
                keys = [info.path]
            elif "DIMENSION_LIST" in var.attrs.names:
                keys = _dimension_list_keys(h5py.Dataset(var.dsid), ndim)
            info.keys = keys

    def assign_phony(self, g: str) -> None:
        """Phony dimensions, children before parents (netCDF-C's rec_match_dimscales)."""
        for child in self.children[g]:
            self.assign_phony(child)
        for info in self.group_dsets[g]:
            if not info.shape or (info.keys and all(k is not None for k in info.keys)):
                continue
            if not any(k is not None for k in info.keys):
                info.keys = [None] * len(info.shape)
            for d in [i for i, k in enumerate(info.keys) if k is None]:
                info.keys[d] = self._phony_match(g, info, d)

    def _phony_match(self, g: str, info: _Dset, d: int) -> str:
        """The group's first dimension of the axis's length and kind not used yet, or a
        new ``phony_dim_<n>``."""
        for key in self.group_dims[g]:
            dim = self.dims[key]
            if (
                dim.length == info.shape[d]
                and dim.unlimited == info.unlimited[d]
                and key not in info.keys[:d]
            ):
                return key
        name = f"phony_dim_{self.next_id}"
        self.next_id += 1
        key = f"phony:{name}"
        self.dims[key] = _Dim(name, info.shape[d], info.unlimited[d])
        self.group_dims[g].append(key)
        return key

    def extend_unlimited(self) -> None:
        """Unlimited dimensions are as long as their longest user."""
        for infos in self.group_dsets.values():
            for info in infos:
                for d, key in enumerate(info.keys):
                    if key is not None and key in self.dims and self.dims[key].unlimited:
                        self.dims[key].length = max(self.dims[key].length, info.shape[d])

    def result(self) -> FileDims:
        by_path: dict[str, DimInfo] = {}
        for infos in self.group_dsets.values():
            for info in infos:
                names: list[str] = []
                padded: list[int] = []
                for d, key in enumerate(info.keys):
                    dim = self.dims.get(key) if key is not None else None
                    if dim is None:  # a dangling reference: fall back to a positional name
                        names.append(f"dim_{d}")
                        padded.append(info.shape[d])
                        continue
                    names.append(dim.name)
                    size = max(info.shape[d], dim.length) if dim.unlimited else info.shape[d]
                    padded.append(size)
                by_path[info.path] = DimInfo(tuple(names), tuple(padded))
        return FileDims(
            by_path,
            frozenset(self.dim_only),
            tuple(self.enum_types),
            self.members,
            self.group_attrs,
            tuple(self.skipped),
        )


def _dimension_list_keys(dset: h5py.Dataset, ndim: int) -> list[str | None]:
    """Paths of the dimension scales attached to each axis (None where none is).

    An axis with several scales attached takes the *last* one in ``DIMENSION_LIST``
    order: netCDF-C's scale visitor (``H5DSiterate_scales``) records every scale it
    visits, so the last one visited wins.
    """
    try:
        dlist = dset.attrs["DIMENSION_LIST"]
    except (OSError, TypeError, ValueError, KeyError):
        return [None] * ndim
    keys: list[str | None] = []
    f = dset.file
    for d in range(ndim):
        refs = dlist[d] if d < len(dlist) else ()
        key: str | None = None
        for ref in np.asarray(refs, dtype=object).ravel():
            if ref:
                key = f[ref].name
        keys.append(key)
    return keys
