"""DMR++ documents, parsed: the DAP4 dataset description with its ``dmrpp:`` chunk records.

A DMR++ (OPeNDAP Hyrax's ``build_dmrpp`` writes one beside each HDF5/netCDF-4 file of
NASA's cloud archives) is a DAP4 DMR -- ``<Dataset>``, ``<Group>``, ``<Dimension>``,
typed variables (``<Float32 name="x">``) with ``<Dim>``\\ s and ``<Attribute>``\\ s --
whose variables each carry a ``<dmrpp:chunks>`` element:

* attributes ``compressionType`` (filters in pipeline order: ``"shuffle deflate"``),
  ``deflateLevel`` (one level per ``deflate``), ``fillValue`` (the HDF5 fill value, what
  an unwritten chunk holds), ``byteOrder`` (``LE``/``BE``);
* ``<dmrpp:chunkDimensionSizes>`` (absent for contiguous data: one chunk);
* ``<dmrpp:chunk offset= nBytes= chunkPositionInArray=>`` per stored chunk (positions
  as ``[0,50]``, or ``0 50`` as the schema spells them), optionally with ``href`` (the
  chunk lives in another file) and ``fm`` (a filter mask: filters skipped).

Early sidecars put ``<dmrpp:chunk>`` elements straight inside the variable (contiguous,
unfiltered data); those are read too. Values may also be inline: ``<dmrpp:compact>``
(base64 of the raw array) and ``<dmrpp:vlsa>`` (variable-length strings, as ``<v>``
elements with repeat counts ``c``, or base64 values separated by ``;``). The root's
``dmrpp:href`` names the data file.

Both namespaces in use are accepted (``http://xml.opendap.org/dap/dmrpp/1.0.0#`` in what
Hyrax writes, ``http://opendap.org/ns/dmrpp/1.0#`` in the schema). This module is pure:
bytes in, :class:`DmrppDataset` out, or a
:class:`~virtualizarr.errors.FileFormatError` naming what is malformed.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import FileFormatError

__all__ = [
    "DAP_TYPES",
    "DmrppAttribute",
    "DmrppChunks",
    "DmrppDataset",
    "DmrppGroup",
    "DmrppVariable",
    "parse_dmrpp",
]

DAP_TYPES: Final = {
    "Byte": "u1",
    "UByte": "u1",
    "UInt8": "u1",
    "Int8": "i1",
    "Char": "S1",
    "Int16": "i2",
    "UInt16": "u2",
    "Int32": "i4",
    "UInt32": "u4",
    "Int64": "i8",
    "UInt64": "u8",
    "Float32": "f4",
    "Float64": "f8",
    "String": "O",
    "URL": "O",
    "Url": "O",
}
"""DAP4 atomic types and the NumPy dtypes of their values."""

OTHER_TYPES: Final = frozenset({"Opaque", "Enum", "Structure", "Sequence"})
"""Variable elements that exist in DAP4 but cannot be virtualized."""

PLACEHOLDER_HREF: Final = "OPeNDAP_DMRpp_DATA_ACCESS_URL"
"""The ``dmrpp:href`` of sidecars served beside their data: the data URL is the sidecar's
own, without ``.dmrpp``."""


@dataclass(frozen=True, slots=True)
class DmrppAttribute:
    """One ``<Attribute>``: its DAP type and its values as text (``Container``: none)."""

    name: str
    type: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class DmrppChunks:
    """A variable's ``<dmrpp:chunks>``, its ``<dmrpp:chunk>`` records as columns.

    ``offsets``, ``nbytes`` and ``filter_masks`` hold one value per chunk; ``positions``
    one row of element coordinates per chunk (None when no chunk gives one), ``hrefs``
    each chunk's own data URL (None when none gives one).
    """

    filters: tuple[str, ...]
    deflate_levels: tuple[int, ...]
    fill_value: str | None
    byte_order: str
    chunk_shape: tuple[int, ...] | None
    offsets: npt.NDArray[np.int64]
    nbytes: npt.NDArray[np.int64]
    positions: npt.NDArray[np.int64] | None
    hrefs: tuple[str | None, ...] | None
    filter_masks: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.offsets.size)


@dataclass(frozen=True, slots=True)
class DmrppVariable:
    """One variable: type, dimensions, attributes and where its values are.

    ``dims`` holds per axis the dimension's fully qualified name (``"/g/lat"``), or None
    for an anonymous ``<Dim size=...>``, with its size.
    """

    name: str
    type: str
    dims: tuple[tuple[str | None, int], ...]
    attributes: tuple[DmrppAttribute, ...]
    chunks: DmrppChunks | None = None
    compact: bytes | None = None
    strings: tuple[str, ...] | None = None
    fixed_length: int | None = None
    """``string_length`` of a ``<dmrpp:FixedLengthStringArray>``."""
    other: tuple[str, ...] = ()
    """Value elements present that cannot be virtualized (``missingdata``...)."""


@dataclass(frozen=True, slots=True)
class DmrppGroup:
    """A ``<Dataset>`` or ``<Group>``: its path, dimensions, variables, attributes and
    subgroups, in document order."""

    path: str
    dimensions: dict[str, int]
    variables: list[DmrppVariable]
    attributes: tuple[DmrppAttribute, ...]
    groups: list[DmrppGroup] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DmrppDataset:
    """A parsed DMR++: the root group, the data file's ``href`` and every dimension by
    fully qualified name."""

    name: str
    href: str | None
    root: DmrppGroup
    dimensions: dict[str, int]

    def groups(self) -> Iterator[DmrppGroup]:
        """Every group, parents before children."""
        stack = [self.root]
        while stack:
            g = stack.pop(0)
            yield g
            stack[:0] = g.groups


# ---------------------------------------------------------------------- XML helpers
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: ET.Element, name: str) -> str | None:
    """An XML attribute by local name, whatever its namespace."""
    if name in el.attrib:
        return el.attrib[name]
    for key, value in el.attrib.items():
        if _local(key) == name:
            return value
    return None


def _int(text: str | None, what: str, where: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise FileFormatError(
            f"{where}: {what} must be a non-negative integer; found {text!r:.40}."
        ) from None
    if not 0 <= value < 1 << 64:
        raise FileFormatError(
            f"{where}: {what} must be a non-negative 64-bit integer; found {value}."
        )
    return value


def _int_list(text: str | None, what: str, where: str) -> tuple[int, ...]:
    """``"[0,50]"``, ``"0 50"`` or ``"0,50"`` as integers."""
    raw = (text or "").strip().strip("[]").replace(",", " ").split()
    return tuple(_int(t, what, where) for t in raw)


# ---------------------------------------------------------------------- elements
def _attribute(el: ET.Element, where: str) -> DmrppAttribute:
    name = _attr(el, "name")
    if name is None:
        raise FileFormatError(f"{where}: an <Attribute> has no name.")
    kind = _attr(el, "type") or ""
    values = tuple((v.text or "") for v in el if _local(v.tag) == "Value")
    return DmrppAttribute(name, kind, values)


def _int_array(texts: list[str], what: str, where: str) -> npt.NDArray[np.int64]:
    """Integer strings as an array of non-negative int64 (in bulk: one C-level cast)."""
    try:
        arr = np.array(texts, dtype=np.str_).astype(np.int64) if texts else np.zeros(0, np.int64)
    except (ValueError, OverflowError, TypeError):
        bad = next((t for t in texts if not t.strip().isdigit()), texts[0] if texts else "")
        raise FileFormatError(
            f"{where}: every {what} must be a non-negative 64-bit integer; found {bad!r:.40}."
        ) from None
    if arr.size and int(arr.min()) < 0:
        raise FileFormatError(
            f"{where}: every {what} must be a non-negative 64-bit integer; found {int(arr.min())}."
        )
    return arr


def _chunk_columns(
    elems: list[ET.Element], ndim: int, where: str
) -> tuple[Any, Any, Any, tuple[str | None, ...] | None, Any]:
    """Offsets, sizes, positions, hrefs and filter masks of ``<dmrpp:chunk>`` elements."""
    offs: list[str] = []
    sizes: list[str] = []
    pos: list[str | None] = []
    hrefs: list[str | None] = []
    masks: list[str | None] = []
    for c in elems:
        a = c.attrib
        off, n = a.get("offset"), a.get("nBytes")
        if off is None or n is None:
            raise FileFormatError(f"{where}: a <dmrpp:chunk> lacks offset or nBytes.")
        offs.append(off)
        sizes.append(n)
        pos.append(a.get("chunkPositionInArray"))
        hrefs.append(a.get("href"))
        masks.append(a.get("fm"))
    offsets = _int_array(offs, "chunk offset", where)
    nbytes = _int_array(sizes, "chunk nBytes", where)
    positions = None
    if any(p is not None for p in pos):
        if any(p is None for p in pos):
            raise FileFormatError(f"{where}: some chunks give a chunkPositionInArray, some not.")
        flat = " ".join(str(p).replace("[", " ").replace("]", " ").replace(",", " ") for p in pos)
        values = _int_array(flat.split(), "chunkPositionInArray index", where)
        if values.size != len(pos) * ndim:
            raise FileFormatError(
                f"{where}: every chunkPositionInArray must give {ndim} indices, one per dimension."
            )
        positions = values.reshape(len(pos), ndim)
    fm = [m if m is not None else "0" for m in masks]
    filter_masks = _int_array(fm, "chunk fm", where)
    return offsets, nbytes, positions, tuple(hrefs) if any(hrefs) else None, filter_masks


def _chunks(el: ET.Element, ndim: int, where: str) -> DmrppChunks:
    filters = tuple((_attr(el, "compressionType") or "").split())
    levels_text = _attr(el, "deflateLevel") or _attr(el, "deflate_level")
    levels = _int_list(levels_text, "deflateLevel", where) if levels_text else ()
    order = (_attr(el, "byteOrder") or "LE").strip().upper()
    if order not in ("LE", "BE"):
        raise FileFormatError(f"{where}: byteOrder must be LE or BE; found {order!r:.20}.")
    chunk_shape: tuple[int, ...] | None = None
    elems = []
    for child in el:
        tag = _local(child.tag)
        if tag == "chunkDimensionSizes" and chunk_shape is None:
            chunk_shape = _int_list(child.text, "chunkDimensionSizes", where)
            if len(chunk_shape) != ndim or 0 in chunk_shape:
                raise FileFormatError(
                    f"{where}: chunkDimensionSizes {list(chunk_shape)} must give {ndim} "
                    "positive sizes, one per dimension."
                )
        elif tag == "chunk":
            elems.append(child)
        elif tag == "block":
            raise FileFormatError(
                f"{where}: <dmrpp:block> elements (HDF4 linked blocks) are not HDF5 chunks; "
                "only DMR++ of HDF5/netCDF-4 files can be virtualized."
            )
    offsets, nbytes, positions, hrefs, masks = _chunk_columns(elems, ndim, where)
    return DmrppChunks(
        filters=filters,
        deflate_levels=levels,
        fill_value=_attr(el, "fillValue"),
        byte_order=order,
        chunk_shape=chunk_shape,
        offsets=offsets,
        nbytes=nbytes,
        positions=positions,
        hrefs=hrefs,
        filter_masks=masks,
    )


def _vlsa(el: ET.Element, where: str) -> tuple[str, ...]:
    values: list[str] = []
    children = [c for c in el if _local(c.tag) == "v"]
    if not children:  # the compact form: base64 values separated by ';'
        text = (el.text or "").strip()
        parts = text.split(";") if text else []
        if parts and parts[-1] == "":
            parts = parts[:-1]
        try:
            return tuple(base64.b64decode(p, validate=True).decode("utf-8") for p in parts)
        except (binascii.Error, ValueError) as e:
            raise FileFormatError(f"{where}: <dmrpp:vlsa> holds malformed base64 ({e}).") from None
    for v in children:
        count = _attr(v, "c")
        n = 1 if count is None else _int(count, "a <v> repeat count", where)
        if n > 1 << 24:
            raise FileFormatError(f"{where}: a <v> repeat count of {n} is implausible.")
        values.extend([v.text or ""] * n)
    return tuple(values)


def _variable(
    el: ET.Element, kind: str, group: str, dims: dict[str, int], where: str
) -> DmrppVariable:
    name = _attr(el, "name")
    if not name:
        raise FileFormatError(f"{where}: a <{kind}> variable has no name.")
    here = f"{where}: variable {name!r}"
    shape: list[tuple[str | None, int]] = []
    attrs = []
    chunks_el = None
    compact = None
    strings = None
    other = []
    loose: list[ET.Element] = []
    fixed: int | None = None
    for child in el:
        tag = _local(child.tag)
        if tag == "Dim":
            fqn, size = _attr(child, "name"), _attr(child, "size")
            if fqn is not None:
                full = fqn if fqn.startswith("/") else f"{group.rstrip('/')}/{fqn}"
                if full not in dims:
                    raise FileFormatError(
                        f"{here} uses dimension {fqn!r}, which no <Dimension> declares."
                    )
                shape.append((full, dims[full]))
            elif size is not None:
                shape.append((None, _int(size, "a <Dim> size", here)))
            else:
                raise FileFormatError(f"{here}: a <Dim> has neither name nor size.")
        elif tag == "Attribute":
            attrs.append(_attribute(child, here))
        elif tag == "chunks":
            chunks_el = child
        elif tag == "chunk":  # early DMR++: chunks of contiguous data without a wrapper
            loose.append(child)
        elif tag == "compact":
            try:
                compact = base64.b64decode((child.text or "").strip(), validate=True)
            except (binascii.Error, ValueError) as e:
                raise FileFormatError(f"{here}: <dmrpp:compact> is not base64 ({e}).") from None
        elif tag == "vlsa":
            strings = _vlsa(child, here)
        elif tag == "FixedLengthStringArray":
            fixed = _int(_attr(child, "string_length"), "string_length", here)
        elif tag in ("missingdata", "specialstructuredata"):
            other.append(tag)
    if chunks_el is None and loose:
        chunks_el = ET.Element("chunks")
        chunks_el.extend(loose)
    chunks = _chunks(chunks_el, len(shape), here) if chunks_el is not None else None
    return DmrppVariable(
        name=name,
        type=kind,
        dims=tuple(shape),
        attributes=tuple(attrs),
        chunks=chunks,
        compact=compact,
        strings=strings,
        fixed_length=fixed,
        other=tuple(other),
    )


def _group(el: ET.Element, path: str, dims: dict[str, int], where: str) -> DmrppGroup:
    local_dims: dict[str, int] = {}
    variables: list[DmrppVariable] = []
    attrs: list[DmrppAttribute] = []
    groups: list[DmrppGroup] = []
    prefix = path.rstrip("/")
    for child in el:  # declarations first: a variable may use a dimension declared later
        if _local(child.tag) == "Dimension":
            name = _attr(child, "name")
            if not name or "/" in name:
                raise FileFormatError(f"{where}: a <Dimension> in {path!r} has no usable name.")
            size = _int(_attr(child, "size"), f"the size of dimension {name!r}", where)
            local_dims[name] = size
            dims[f"{prefix}/{name}"] = size
    for child in el:
        tag = _local(child.tag)
        if tag in DAP_TYPES or tag in OTHER_TYPES:
            variables.append(_variable(child, tag, path, dims, where))
        elif tag == "Attribute":
            attrs.append(_attribute(child, where))
        elif tag == "Group":
            name = _attr(child, "name")
            if not name or "/" in name:
                raise FileFormatError(f"{where}: a <Group> in {path!r} has no usable name.")
            groups.append(_group(child, f"{prefix}/{name}", dims, where))
    return DmrppGroup(path or "/", local_dims, variables, tuple(attrs), groups)


def parse_dmrpp(data: bytes, where: str) -> DmrppDataset:
    """Parse a DMR++ document.

    Parameters
    ----------
    data : bytes
        The XML.
    where : str
        The document, for messages.

    Returns
    -------
    DmrppDataset

    Raises
    ------
    FileFormatError
        If it is not well-formed XML with a DAP4 ``<Dataset>`` root, or an element the
        reader relies on is malformed.

    Examples
    --------
    >>> doc = b'''<Dataset xmlns="http://xml.opendap.org/ns/DAP/4.0#"
    ...   xmlns:dmrpp="http://xml.opendap.org/dap/dmrpp/1.0.0#" name="a.h5"
    ...   dmrpp:href="a.h5"><Int16 name="x"><Dim size="3"/><dmrpp:chunks>
    ...   <dmrpp:chunk offset="96" nBytes="6"/></dmrpp:chunks></Int16></Dataset>'''
    >>> ds = parse_dmrpp(doc, "a.h5.dmrpp")
    >>> ds.href, int(ds.root.variables[0].chunks.offsets[0])
    ('a.h5', 96)
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise FileFormatError(f"{where} is not well-formed XML ({e}).") from None
    except (ValueError, RecursionError, LookupError) as e:  # limits, nesting, encoding
        raise FileFormatError(f"{where} could not be parsed as XML ({e}).") from None
    if _local(root.tag) != "Dataset":
        raise FileFormatError(
            f"{where}: expected a DAP4 <Dataset> root element; found <{_local(root.tag)}>."
        )
    dims: dict[str, int] = {}
    try:
        top = _group(root, "", dims, where)
    except RecursionError:
        raise FileFormatError(f"{where}: groups are nested too deeply.") from None
    return DmrppDataset(
        name=_attr(root, "name") or "", href=_attr(root, "href"), root=top, dimensions=dims
    )
