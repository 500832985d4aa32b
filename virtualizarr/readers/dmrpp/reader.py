"""Reader for DMR++ sidecars: chunk references to an HDF5/netCDF-4 file, without reading it.

The sidecar (parsed by :mod:`virtualizarr.readers.dmrpp.parse`) says everything the HDF5
reader would find in the file: dimensions, attributes, dtypes and byte order, chunk shape,
filters and each chunk's byte range. The data file's URL is the root's ``dmrpp:href``: an
absolute URL as given, a relative one resolved against the sidecar's location, and the
placeholder ``OPeNDAP_DMRpp_DATA_ACCESS_URL`` (sidecars served beside their data) the
sidecar's own URL without ``.dmrpp``; ``reader_options={"data_url": ...}`` overrides it.

What ``xr.open_dataset`` of the HDF5 file shows is the truth, so the sidecar is read as
netCDF-C reads the file: dimension names are the last part of their fully qualified
names, anonymous dimensions become ``phony_dim_<n>`` by netCDF-C's rule, netCDF-C's own
bookkeeping (``CLASS``, ``NAME``, ``_Netcdf4Dimid``, dimension-only datasets...) is
hidden, attributes keep their DAP types, and an unwritten chunk reads as the HDF5 fill
value (``fillValue``). Filters map onto codecs as in the HDF5 reader (deflate, shuffle,
fletcher32); others, filter masks, variable-length strings kept in the file, structures,
enums and opaque data are refused with an error naming the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import numcodecs
import numpy as np

from virtualizarr.errors import (
    FileFormatError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
)
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import resolve_relative, to_uri
from virtualizarr.manifests import (
    MISSING,
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    check_coordinate_names,
    check_dimension_sizes,
    chunk_grid_shape,
    make_array_metadata,
)
from virtualizarr.readers.base import HEAD_BYTES, Probe, Source, check_grid_cells, require_location
from virtualizarr.readers.dmrpp.parse import (
    DAP_TYPES,
    PLACEHOLDER_HREF,
    DmrppAttribute,
    DmrppDataset,
    DmrppGroup,
    DmrppVariable,
    parse_dmrpp,
)
from virtualizarr.readers.hdf5.netcdf_names import DIMENSION_ONLY, HIDDEN_ATTRS
from virtualizarr.security import (
    ReferenceLimits,
    SourcePolicy,
    check_document_size,
    check_references,
)

__all__ = ["READER", "DmrppReader", "open_dmrpp", "sidecar_group"]

_SUFFIX: Final = ".dmrpp"


# ---------------------------------------------------------------------- attributes
def _value(text: str, dtype: np.dtype[Any], where: str) -> Any:
    t = text.strip()
    try:
        if dtype.kind == "f":
            return float({"*": "nan"}.get(t, t))
        if t.lower().startswith("0x"):
            return int(t, 16)
        return int(t)
    except ValueError:
        raise FileFormatError(f"{where}: {text!r:.40} is not a value of type {dtype}.") from None


def _cast(values: list[Any], dtype: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    """Values as an array of ``dtype``, refusing those it cannot hold (no silent wrap or
    infinity)."""
    try:
        with np.errstate(over="raise", invalid="ignore"):
            return np.array(values, dtype=dtype.newbyteorder("="))
    except (OverflowError, FloatingPointError):
        raise FileFormatError(f"{where}: a value does not fit type {dtype}.") from None


def convert_attribute(attr: DmrppAttribute, where: str) -> tuple[bool, Any]:
    """An attribute as netCDF4-python gives it: ``(shown, value)``.

    Numeric attributes become NumPy scalars (one value) or arrays of their DAP type,
    strings ``str`` or lists of ``str``; containers (``build_dmrpp_metadata``...) and
    types netCDF cannot hold are not shown.

    Raises
    ------
    FileFormatError
        If a value is not one of its type.
    """
    code = DAP_TYPES.get(attr.type)
    if code is None or code == "S1":
        return False, None
    if code == "O":
        return True, attr.values[0] if len(attr.values) == 1 else list(attr.values)
    dtype = np.dtype(code)
    here = f"{where}: attribute {attr.name!r}"
    arr = _cast([_value(v, dtype, here) for v in attr.values], dtype, here)
    return True, arr[0] if arr.size == 1 else arr


def _attrs(attributes: Iterable[DmrppAttribute], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attributes:
        if a.name in HIDDEN_ATTRS:
            continue
        shown, value = convert_attribute(a, where)
        if shown:
            out[a.name] = value
    return out


# ---------------------------------------------------------------------- dimensions
def _dimension_names(ds: DmrppDataset) -> dict[tuple[str, str, int], str]:
    """Each axis's dimension name, ``(group path, variable, axis) -> name``.

    Named dimensions are the last part of their fully qualified name. Anonymous ones get
    netCDF-C's phony dimensions: groups children first, each axis the group's first phony
    dimension of that length the variable does not use yet, else a new ``phony_dim_<n>``
    (``n`` counting on from the number of declared dimensions).
    """
    names: dict[tuple[str, str, int], str] = {}
    counter = [len(ds.dimensions)]

    def visit(g: DmrppGroup) -> None:
        for child in g.groups:
            visit(child)
        phony: list[tuple[str, int]] = []
        for var in g.variables:
            used: list[str] = []
            for axis, (fqn, size) in enumerate(var.dims):
                if fqn is not None:
                    name = fqn.rsplit("/", 1)[-1]
                else:
                    name = next((n for n, s in phony if s == size and n not in used), "")
                    if not name:
                        name = f"phony_dim_{counter[0]}"
                        counter[0] += 1
                        phony.append((name, size))
                used.append(name)
                names[(g.path, var.name, axis)] = name

    visit(ds.root)
    return names


# ---------------------------------------------------------------------- one variable
def _codecs(var: DmrppVariable, dtype: np.dtype[Any], where: str) -> list[dict[str, Any]]:
    assert var.chunks is not None
    levels = list(var.chunks.deflate_levels)
    out: list[dict[str, Any]] = []
    for f in var.chunks.filters:
        if f == "deflate":
            level = levels.pop(0) if levels else 6
            out.append({"name": "numcodecs.zlib", "configuration": {"level": level}})
        elif f == "shuffle":
            conf = {"elementsize": dtype.itemsize}
            out.append({"name": "numcodecs.shuffle", "configuration": conf})
        elif f == "fletcher32":
            out.append({"name": "numcodecs.fletcher32", "configuration": {}})
        else:
            raise UnsupportedFeatureError(
                f"{where} is compressed with {f!r}, which has no byte-compatible codec "
                "(supported: deflate, shuffle, fletcher32); leave it out with "
                f"drop_variables=[{var.name!r}]."
            )
    return out


def _fill(var: DmrppVariable, dtype: np.dtype[Any], where: str) -> Any:
    text = var.chunks.fill_value if var.chunks is not None else None
    if dtype.kind == "O":
        return ""
    if dtype.kind == "S":
        return (text or "").encode("latin-1", "replace")[:1] or b"\x00"
    if text is None or not text.strip():
        return np.zeros((), dtype.newbyteorder("="))[()]
    return _cast([_value(text, dtype, where)], dtype, f"{where}: fillValue")[0]


def _refuse(var: DmrppVariable, where: str, what: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(
        f"{where} is {what}, which cannot be virtualized; leave it out with "
        f"drop_variables=[{var.name!r}]."
    )


def _manifest(
    var: DmrppVariable,
    shape: tuple[int, ...],
    chunk_shape: tuple[int, ...],
    rec_dtype: np.dtype[Any],
    resolve: Callable[[str | None], str],
    where: str,
) -> ChunkManifest:
    """The manifest of a variable's chunk records, built with NumPy (no loop per chunk)."""
    rec = var.chunks
    assert rec is not None
    grid = chunk_grid_shape(shape, chunk_shape)
    n = len(rec)
    check_grid_cells(grid, n, where, FileFormatError)
    if n and rec.filter_masks.any():
        mask = int(rec.filter_masks[np.flatnonzero(rec.filter_masks)[0]])
        raise UnsupportedFeatureError(
            f"{where}: a chunk skips filters (fm={mask}), so its bytes decode differently "
            f"from the others; leave the variable out with drop_variables=[{var.name!r}]."
        )
    if rec.positions is None:
        if n > 1 or (n and any(g != 1 for g in grid)):
            raise FileFormatError(
                f"{where}: the chunks give no chunkPositionInArray, but the variable has "
                f"{int(np.prod(grid))} chunks."
            )
        index = np.zeros((n, len(grid)), np.int64)
    else:
        step = np.array(chunk_shape, np.int64)
        index = rec.positions // step
        bad = ((rec.positions % step) != 0) | (index >= np.array(grid, np.int64))
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise FileFormatError(
                f"{where}: chunkPositionInArray {rec.positions[row].tolist()} is not the start "
                f"of a chunk of shape {list(chunk_shape)} inside {list(shape)}."
            )
    raw = int(np.prod(chunk_shape)) * np.dtype(rec_dtype).itemsize
    limit = raw if not rec.filters else raw + raw // 8 + 1024
    if n and int(rec.nbytes.max()) > limit:
        raise FileFormatError(
            f"{where}: a chunk of {int(rec.nbytes.max())} bytes is larger than a chunk of "
            f"shape {list(chunk_shape)} can be stored in ({limit} bytes with its filters "
            f"{list(rec.filters)}); nBytes is corrupt."
        )
    if rec.hrefs is None:
        table = [resolve(None)]
        path_ids = np.zeros(n, np.int32)
    else:
        urls = [resolve(h) for h in rec.hrefs]
        order = {u: i for i, u in enumerate(dict.fromkeys(urls))}
        table = list(order)
        path_ids = np.array([order[u] for u in urls], np.int32)
    ids = np.full(grid, MISSING, np.int32)
    offs = np.zeros(grid, np.uint64)
    lens = np.zeros(grid, np.uint64)
    if grid:
        cells = tuple(index.T)
        ids[cells] = path_ids
        offs[cells] = rec.offsets.astype(np.uint64)
        lens[cells] = rec.nbytes.astype(np.uint64)
    elif n:  # a scalar: its one chunk
        ids[()], offs[()], lens[()] = path_ids[0], rec.offsets[0], rec.nbytes[0]
    if n and int((ids >= 0).sum()) != n:
        raise FileFormatError(f"{where}: two chunks have the same chunkPositionInArray.")
    return ChunkManifest(table if n else [], ids, offs, lens)


def _inline_manifest(ndim: int, data: bytes) -> ChunkManifest:
    """One chunk holding the whole array, kept in the manifest."""
    grid = (1,) * ndim
    return ChunkManifest([], np.full(grid, -2, np.int32), np.zeros(grid), np.zeros(grid), [data])


def _variable(
    var: DmrppVariable, dims: tuple[str, ...], resolve: Callable[[str | None], str], where: str
) -> VirtualVariable:
    shape = tuple(size for _, size in var.dims)
    attrs = _attrs(var.attributes, where)
    code = DAP_TYPES.get(var.type)
    if code is None:
        raise _refuse(var, where, f"a DAP4 {var.type}")
    if var.other:
        raise _refuse(var, where, f"stored as <dmrpp:{var.other[0]}>")
    if code == "O" and var.fixed_length == 1:
        code = "S1"  # netCDF's char arrays: one byte per element, as the file stores them
    dtype = np.dtype(code)
    if code == "O":
        if var.strings is None:
            raise _refuse(
                var,
                where,
                "a string variable whose values are kept in the HDF5 file (variable-length "
                "strings in its global heap, or fixed-length strings)",
            )
        if len(var.strings) != int(np.prod(shape)):
            raise FileFormatError(
                f"{where}: <dmrpp:vlsa> holds {len(var.strings)} values for shape {list(shape)}."
            )
        values = np.array(var.strings, dtype=object).reshape(shape)
        inline = bytes(numcodecs.VLenUTF8().encode(values))
        meta = make_array_metadata(
            shape=shape, dtype=dtype, chunks=[max(s, 1) for s in shape], fill_value="",
            dimension_names=dims,
        )  # fmt: skip
        manifest = _inline_manifest(len(shape), inline)
    else:
        order = var.chunks.byte_order if var.chunks is not None else "LE"
        if dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">" if order == "BE" else "<")
        fill = _fill(var, dtype, where)
        if var.compact is not None:
            expected = int(np.prod(shape)) * dtype.itemsize
            if len(var.compact) != expected:
                raise FileFormatError(
                    f"{where}: <dmrpp:compact> holds {len(var.compact)} bytes; the variable "
                    f"needs {expected}."
                )
            chunk_shape = tuple(max(s, 1) for s in shape)
            codecs: list[dict[str, Any]] = []
            manifest = _inline_manifest(len(shape), var.compact)
        elif var.chunks is not None:
            chunk_shape = var.chunks.chunk_shape or tuple(max(s, 1) for s in shape)
            codecs = _codecs(var, dtype, where)
            manifest = _manifest(var, shape, chunk_shape, dtype, resolve, where)
        else:
            raise FileFormatError(
                f"{where} has no <dmrpp:chunks> (nor inline values): nothing says where its "
                "values are."
            )
        meta = make_array_metadata(
            shape=shape, dtype=dtype, chunks=chunk_shape, fill_value=fill, codecs=codecs,
            dimension_names=dims,
        )  # fmt: skip
    data = ManifestArray(meta, manifest, name=var.name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims=dims, data=data, attrs=attrs)


def _is_dimension_only(var: DmrppVariable) -> bool:
    """netCDF-C's dataset for a dimension without a coordinate variable (hidden)."""
    return any(
        a.name == "NAME" and any(v.startswith(DIMENSION_ONLY) for v in a.values)
        for a in var.attributes
    )


# ---------------------------------------------------------------------- the document
def data_url_of(ds: DmrppDataset, sidecar: Location, override: str | None) -> str:
    """The data file's absolute URL (see the module docstring).

    Raises
    ------
    FileFormatError
        If the sidecar has no ``dmrpp:href`` and no ``data_url`` is given, or uses the
        placeholder without being named ``<data file>.dmrpp``.
    """
    if override is not None:
        return to_uri(override)
    href = (ds.href or "").strip()
    if not href:
        raise FileFormatError(
            f"{sidecar.label()} has no dmrpp:href naming its data file; pass "
            "reader_options={'data_url': ...}."
        )
    if href == PLACEHOLDER_HREF:
        if not sidecar.url.endswith(_SUFFIX):
            raise FileFormatError(
                f"{sidecar.label()}: dmrpp:href is {PLACEHOLDER_HREF!r} (the data file is the "
                f"sidecar's name without {_SUFFIX!r}), but the sidecar's name does not end in "
                f"{_SUFFIX!r}; pass reader_options={{'data_url': ...}}."
            )
        return sidecar.url[: -len(_SUFFIX)]
    if "://" in href:
        return href
    if href.startswith("/"):
        return Path(href).as_uri() if sidecar.is_local else resolve_relative(href, sidecar.url)
    return resolve_relative(href, sidecar.url)


def sidecar_group(ds: DmrppDataset, group: str | None) -> DmrppGroup:
    """The group ``group`` (``"a/b"``; None or ``"/"`` for the root).

    Raises
    ------
    FileFormatError
        If the document has no such group.
    """
    path = "/" + (group or "").strip("/")
    for g in ds.groups():
        if g.path == path:
            return g
    found = [g.path for g in ds.groups()]
    raise FileFormatError(f"the DMR++ has no group {group!r}; its groups are {found}.")


def open_dmrpp(
    location: Location,
    *,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    data_url: str | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> VirtualGroup:
    """Read a DMR++ sidecar as a :class:`VirtualGroup` of references into its data file.

    Parameters
    ----------
    location : Location
        The sidecar, local or remote.
    group : str, optional
        A group of the data file (``"a/b"``).
    drop_variables : iterable of str
        Variables to leave out.
    data_url : str, optional
        The data file, overriding the sidecar's ``dmrpp:href``.
    allowed_sources : str, iterable of str or SourcePolicy, optional
        Where the references may point (see :mod:`virtualizarr.security`).
    limits : ReferenceLimits, optional
        ``max_document_bytes`` bounds the sidecar's size.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    FileFormatError
        If the sidecar is malformed or lacks what a variable needs.
    UnsupportedFeatureError
        For variables that cannot be virtualized (the message names them).
    UntrustedReferenceError
        If the data URL is outside ``allowed_sources`` or the sidecar exceeds ``limits``.

    Examples
    --------
    >>> vgroup = open_dmrpp(Location.of("granule.h5.dmrpp"))  # doctest: +SKIP
    """
    label = location.label()
    known = location.known_size()
    if known is not None:
        check_document_size(label, known, limits)
    raw = location.read()
    check_document_size(label, len(raw), limits)
    ds = parse_dmrpp(raw, label)
    base = data_url_of(ds, location, data_url)
    target = sidecar_group(ds, group)
    names = _dimension_names(ds)
    drop = set(drop_variables)

    def resolve(href: str | None) -> str:
        if href is None or not href.strip() or href.strip() == PLACEHOLDER_HREF:
            return base
        h = href.strip()
        return h if "://" in h else resolve_relative(h, location.url)

    variables: dict[str, VirtualVariable] = {}
    for var in target.variables:
        if var.name in drop or _is_dimension_only(var):
            continue
        where = f"{label}: variable {var.name!r}"
        dims = tuple(names[(target.path, var.name, i)] for i in range(len(var.dims)))
        if var.name in variables:
            raise FileFormatError(f"{where} is declared twice.")
        variables[var.name] = _variable(var, dims, resolve, where)
    check_dimension_sizes(variables, label, FileFormatError)
    check_coordinate_names(variables, label, FileFormatError)
    attrs = _attrs(target.attributes, label)
    vgroup = VirtualGroup(variables=variables, attrs=attrs)
    check_references(vgroup, location.url, allowed_sources, limits)
    return vgroup


def looks_like_dmrpp(head: bytes) -> bool:
    """True for XML whose root is a DAP4 ``<Dataset>`` using the ``dmrpp`` namespace."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return text[:1] == b"<" and b"<Dataset" in text and b"dmrpp" in text


class DmrppReader:
    """Virtualize DMR++ sidecars (``filetype="dmrpp"``): references into the HDF5 file
    they describe, read from the sidecar alone.

    Examples
    --------
    >>> DmrppReader().guess_can_open(Probe({"version": 1}))
    False
    """

    name = "dmrpp"
    aliases: tuple[str, ...] = ("dmr++",)
    references = True

    def guess_can_open(self, probe: Probe) -> bool:
        """True for an XML file whose root is a DAP4 ``<Dataset>`` with ``dmrpp:``
        records (within its first :data:`~virtualizarr.readers.base.HEAD_BYTES`).

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        if probe.document is not None or probe.is_dir:
            return False
        return looks_like_dmrpp(bytes(probe.head[:HEAD_BYTES]))

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
        data_url: str | None = None,
        **options: Any,
    ) -> VirtualGroup:
        """Read the sidecar at ``source``.

        Parameters
        ----------
        source : Location
            The sidecar.
        group : str, optional
        drop_variables : iterable of str
        allowed_sources : str, iterable of str or SourcePolicy, optional
        limits : ReferenceLimits, optional
        data_url : str, optional
            The data file, overriding ``dmrpp:href``.
        **options
            None other are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        UnexpectedOptionError
            For other options.
        """
        if options:
            raise UnexpectedOptionError(
                "the dmrpp reader takes the options data_url, group, drop_variables, "
                f"allowed_sources and limits; found {sorted(options)}. Remove them."
            )
        return open_dmrpp(
            require_location(source, "DMR++"),
            group=group,
            drop_variables=drop_variables,
            data_url=data_url,
            allowed_sources=allowed_sources,
            limits=limits,
        )


READER = DmrppReader()
"""The registered DMR++ reader."""
