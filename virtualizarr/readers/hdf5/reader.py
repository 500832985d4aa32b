"""The HDF5 / netCDF4 reader: chunk locations and Zarr metadata from h5py.

For each dataset of a group we record where its chunks are (large chunk indexes are read
from the file's bytes with NumPy by :mod:`~virtualizarr.readers.hdf5.chunk_index`, small
or unusual ones with one ``chunk_iter`` pass), map its filter pipeline to Zarr v3 codecs,
and name its dimensions and convert its attributes exactly as ``xr.open_dataset(path,
engine="netcdf4")`` (netCDF-C) does. Data that cannot be referenced byte for byte -- compact
datasets, strings, filters without a matching codec, chunks written with a skipped
optional filter -- are read and stored inline in the manifest, within limits.

Layouts
    chunked (missing chunks read as the HDF5 fill value), contiguous (one chunk; never
    written -> missing), compact (inline), virtual and external (inline when small).
Types
    integers and floats of either byte order, enums and h5py booleans (as their base
    integer type, as netCDF-C shows them), ``char`` arrays (``S1``), fixed- and
    variable-length strings (inline, ``vlen-utf8``), complex numbers stored the h5py way
    (compound ``{r, i}``) as ``complex64``/``complex128``, and compounds of plain fields
    as structured dtypes (see :func:`~virtualizarr.readers.hdf5.storage.compound_layout`;
    variable-length fields are refused). References and opaque datasets are left out,
    as netCDF-C leaves them, with a warning naming them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import h5py

from virtualizarr.errors import (
    DroppedVariableWarning,
    FileFormatError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import resolve_relative
from virtualizarr.manifests import ManifestArray, VirtualGroup, VirtualVariable, cf_encoding_attrs
from virtualizarr.readers.base import Probe, Source, require_location
from virtualizarr.readers.hdf5 import ALIASES, NAME, detect
from virtualizarr.readers.hdf5.attrs import ObjAttrs, plain_dtype
from virtualizarr.readers.hdf5.dims import NON_COORD_PREFIX, DimInfo, FileDims, H5Var, scan_dims
from virtualizarr.readers.hdf5.heap_guard import heap_guard_for
from virtualizarr.readers.hdf5.objects import H5_ERRORS
from virtualizarr.readers.hdf5.storage import (
    DEFAULT_INLINE_THRESHOLD,
    ByteReader,
    compound_layout,
    inline_strings,
    numeric_data,
    stored_dtype,
)

__all__ = ["DEFAULT_INLINE_THRESHOLD", "HDF5Reader", "open_h5"]


# ---------------------------------------------------------------------- opening the file
def open_h5(location: Location, files: FileCache) -> tuple[h5py.File, ByteReader]:
    """Open a file with h5py for reading, and the reads of its bytes for our parsers.

    A remote file is handed to h5py as the fsspec file object of ``files``, whose reads
    are served from large cached blocks (:meth:`Location.open_remote`), so parsing the
    metadata costs a few ranged requests, not one per HDF5 object; our own parsers read
    through the same object. ``files`` owns what is opened: close it after the h5py file.

    Parameters
    ----------
    location : Location
    files : FileCache

    Returns
    -------
    (h5py.File, ByteReader)

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FileFormatError
        If it exists but is not a readable HDF5 file.
    """
    reader = ByteReader(partial(files.read_at, location), partial(files.size, location))
    try:
        return h5py.File(files.handle(location), "r"), reader
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileFormatError(
            f"{location.url} is not a readable HDF5/netCDF4 file ({e}). Check that it is "
            "complete (not truncated by an interrupted download) and really HDF5; pass "
            "filetype= to choose another reader."
        ) from None


# ---------------------------------------------------------------------- the reader
class HDF5Reader:
    """Reader for HDF5 files, netCDF4 files included.

    Options accepted by :meth:`open`: ``drop_variables`` and ``inline_threshold``
    (bytes; default :data:`DEFAULT_INLINE_THRESHOLD`).

    Examples
    --------
    >>> HDF5Reader().open(Location.of("air.nc"))  # doctest: +SKIP
    """

    name = NAME
    aliases = ALIASES
    references = False

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the probed file starts with the HDF5 signature.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        return detect(probe)

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] | str | None = None,
        inline_threshold: int = DEFAULT_INLINE_THRESHOLD,
        subgroups: bool = False,
        **options: Any,
    ) -> VirtualGroup:
        """Describe one group of an HDF5 file (and, optionally, all groups below it).

        Parameters
        ----------
        source : Location
            The file, local or remote (its storage options reach it).
        group : str, optional
            Path of the group to open (``"a/b"``); the root group by default.
        drop_variables : str or iterable of str, optional
            Variables to leave out (nothing is read for them).
        inline_threshold : int
            Largest uncompressed size in bytes of a variable that is read and stored
            inline when its chunks cannot be referenced.
        subgroups : bool
            Also read every group below ``group`` into :attr:`VirtualGroup.groups`, nested
            as in the file (the file is scanned once; dimensions are scoped between parent
            and child groups as netCDF-C scopes them). ``drop_variables`` applies in every
            group.
        **options
            Not accepted: unknown options raise ``TypeError``.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        FileFormatError
            If the file is not readable HDF5, or ``group`` does not exist.
        UnsupportedFeatureError
            If a variable uses a filter or type that can be neither referenced nor
            inlined; the message names the variable and the way out.
        """
        if options:
            raise UnexpectedOptionError(
                f"HDF5Reader.open() got unexpected options {sorted(options)}; it accepts "
                "group, drop_variables, inline_threshold and subgroups."
            )
        location = require_location(source, "HDF5")
        drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
        path = location.url
        with FileCache(storage_options=location.storage_options) as files:
            h5, source_bytes = open_h5(location, files)
            with h5 as f:
                try:
                    reading = _Reading(
                        f, path, drop, inline_threshold, source_bytes, same_file(location)
                    )
                    return reading.read(group, subgroups)
                except VirtualiZarrError:
                    raise
                except H5_ERRORS as e:
                    raise FileFormatError(
                        f"{path}: could not read the HDF5 metadata ({type(e).__name__}: {e}). "
                        "The file may be truncated or corrupt; check it with h5dump or ncdump."
                    ) from e


def _find_group(f: h5py.File, path: str, group: str | None) -> h5py.Group:
    if group in (None, "", "/"):
        return f
    name = "/" + str(group).strip("/")
    obj = f.get(name)
    if isinstance(obj, h5py.Group):
        return obj
    found: list[str] = []
    f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Group) else None)
    raise FileFormatError(
        f"{path} has no group {group!r}; its groups are {['/', *found]}. Pass one of them "
        "as group=."
    )


def same_file(location: Location) -> Callable[[str], bool]:
    """``same(name)``: True if an external link's file name is the file at ``location``.

    A relative name is resolved against the file's own directory (as HDF5 resolves it),
    locally and remotely; nothing is opened. Local names are compared as files (links,
    ``..`` and symlinks allowed).

    Parameters
    ----------
    location : Location

    Returns
    -------
    callable
    """
    url = location.url

    def same(name: str) -> bool:
        name = name.replace("\\", "/")
        if location.is_local and "://" not in name:
            own = location.local_path
            target = name if os.path.isabs(name) else os.path.join(os.path.dirname(own), name)
            try:
                return os.path.samefile(target, own)
            except (OSError, ValueError):
                return False
        return resolve_relative(name, url) == url if "://" not in name else name == url

    return same


def _warn_skipped(file_dims: FileDims, gpath: str, path: str) -> None:
    """One :class:`DroppedVariableWarning` per dataset of the group left out, naming it."""
    for skipped in file_dims.skipped:
        if (skipped.path.rsplit("/", 1)[0] or "/") == gpath:
            warnings.warn(
                DroppedVariableWarning(
                    f"{path}: {skipped.path!r} is left out of the virtual dataset: it is "
                    f"{skipped.reason}."
                ),
                stacklevel=4,
            )


class _Reading:
    """One pass over an open file: the dimension scan once, then groups on demand."""

    def __init__(
        self,
        f: h5py.File,
        path: str,
        drop: set[str],
        inline_threshold: int,
        source: ByteReader | None,
        same: Callable[[str], bool] | None,
    ) -> None:
        self.f, self.path, self.drop = f, path, drop
        self.inline_threshold, self.source = inline_threshold, source
        try:
            self.dims = scan_dims(f, heap_guard_for(f, path, source), same)
        except VirtualiZarrError:
            raise
        except H5_ERRORS as e:
            raise FileFormatError(
                f"{path}: could not resolve the dimensions of its variables: reading the "
                f"groups, datasets and dimension scales failed ({type(e).__name__}: {e}). The "
                "file is probably truncated or corrupt; check it with h5dump or ncdump."
            ) from e

    def read(self, group: str | None, subgroups: bool) -> VirtualGroup:
        """The group ``group`` (and every group below it, if ``subgroups``)."""
        grp = _find_group(self.f, self.path, group)
        gpath = grp.name
        if gpath not in self.dims.group_attrs and group:
            gpath = "/" + str(group).strip("/")  # a group known by a soft link's name
        if gpath not in self.dims.group_attrs:  # not reached by the scan
            attrs = ObjAttrs(grp.id, grp.id.get_create_plist(), f"{gpath!r} of {self.path}")
            self.dims.group_attrs[gpath] = attrs
        return self._group(gpath, subgroups)

    def _group(self, gpath: str, subgroups: bool) -> VirtualGroup:
        path, file_dims = self.path, self.dims
        variables: dict[str, VirtualVariable] = {}
        _warn_skipped(file_dims, gpath, path)
        for obj in file_dims.members.get(gpath, []):
            name = obj.path.rsplit("/", 1)[-1].removeprefix(NON_COORD_PREFIX)
            if name in self.drop:
                continue
            try:
                var = _read_variable(obj, name, path, file_dims, self.inline_threshold, self.source)
            except VirtualiZarrError:
                raise
            except H5_ERRORS as e:
                raise FileFormatError(
                    f"variable {name!r} ({obj.path}) of {path}: could not read its HDF5 "
                    f"metadata or chunk index ({type(e).__name__}: {e}). The file is probably "
                    f"truncated or corrupt (check it with h5dump); pass "
                    f"drop_variables=[{name!r}] to open the rest."
                ) from e
            if var is not None:
                variables[name] = var
        attrs = file_dims.group_attrs[gpath].convert(file_dims.enum_types)
        groups: dict[str, VirtualGroup] = {}
        if subgroups:
            prefix = gpath.rstrip("/") + "/"
            for child in file_dims.group_attrs:  # scanned in file order, parents first
                name = child[len(prefix) :]
                if child.startswith(prefix) and name and "/" not in name:
                    groups[name] = self._group(child, True)
        return VirtualGroup(variables, attrs, groups)


# ---------------------------------------------------------------------- one variable
def _read_variable(
    var: H5Var,
    name: str,
    path: str,
    file_dims: FileDims,
    inline_threshold: int,
    source: ByteReader | None = None,
) -> VirtualVariable | None:
    tid, cls = var.tid, var.cls
    if cls in (h5py.h5t.REFERENCE, h5py.h5t.OPAQUE):
        return None  # netCDF-C does not show these either
    where = f"variable {name!r} ({var.path}) of {path}"
    if var.shape is None:
        raise UnsupportedFeatureError(
            f"{where} has an empty (null) dataspace: it holds no values and netCDF cannot "
            f"represent it (netCDF-C refuses the whole file). Pass drop_variables=[{name!r}]."
        )
    shape = tuple(int(s) for s in var.shape)
    dims = file_dims.by_path.get(var.path) or DimInfo(
        tuple(f"phony_dim_{i}" for i in range(len(shape))), shape
    )
    attrs = var.attrs.convert(file_dims.enum_types)

    string_info = h5py.check_string_dtype(var.dsid.dtype) if cls == h5py.h5t.STRING else None
    if (
        cls == h5py.h5t.STRING
        and string_info is not None
        and (string_info.length is None or string_info.length > 1)
    ):
        data = inline_strings(h5py.Dataset(var.dsid), shape, dims, where, inline_threshold)
    elif cls == h5py.h5t.COMPOUND:
        h5dtype = var.dsid.dtype
        stored, _ = compound_layout(h5dtype, where, name)
        data = numeric_data(
            var, h5dtype, stored, shape, dims, path, where, inline_threshold, source
        )
    elif cls in (h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.ENUM, h5py.h5t.STRING):
        h5dtype = plain_dtype(tid, cls) or var.dsid.dtype  # the cached translation
        stored = stored_dtype(h5dtype, tid, cls)
        data = numeric_data(
            var, h5dtype, stored, shape, dims, path, where, inline_threshold, source
        )
    else:
        raise UnsupportedFeatureError(
            f"{where} has an HDF5 type ({var.dsid.dtype}) that netCDF and Zarr cannot "
            "describe. "
            f"Pass drop_variables=[{name!r}]."
        )
    meta, manifest = data
    array = ManifestArray(meta, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims.names, array, attrs)
