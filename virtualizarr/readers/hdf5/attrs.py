"""HDF5 attributes as ``xr.open_dataset(path, engine="netcdf4")`` shows them.

netCDF-C reads HDF5 attributes and netCDF4-python converts them; we reproduce the result:

* numeric attributes keep their type; one value becomes a NumPy scalar
  (``np.int32(3)``), several a 1-D array in native byte order;
* strings (fixed or variable length, bytes or UTF-8) become ``str``, several a ``list``;
* attributes netCDF-C keeps to itself (dimension-scale bookkeeping, ``_Netcdf4Dimid``,
  ``_NCProperties`` ...) are hidden, as are attributes of types netCDF cannot show
  (enums such as h5py's booleans, compounds, references, opaque data).

Attributes are read with h5py's low-level API (:class:`ObjAttrs`): one name listing per
object, each attribute opened once, values read into a NumPy buffer through a cached
memory type -- the same values ``obj.attrs[name]`` gives, at a fraction of the cost,
which matters for archives of many small files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import h5py
import numpy as np

from virtualizarr.errors import FileFormatError
from virtualizarr.readers.hdf5.netcdf_names import HIDDEN_ATTRS
from virtualizarr.readers.hdf5.objects import H5_ERRORS

__all__ = ["HIDDEN_ATTRS", "ObjAttrs", "plain_dtype", "read_attrs"]


_NUMERIC_CLASSES: Final = (h5py.h5t.INTEGER, h5py.h5t.FLOAT)

_NETCDF_NUMERIC: Final = frozenset({"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"})
"""Kinds and sizes of the numeric types netCDF has (half and long-double floats are not)."""


_IEEE_FLOATS: Final = (
    h5py.h5t.IEEE_F32LE,
    h5py.h5t.IEEE_F64LE,
    h5py.h5t.IEEE_F32BE,
    h5py.h5t.IEEE_F64BE,
)

_DTYPES: dict[tuple[int, ...], np.dtype[Any]] = {}
"""A few cheap type queries -> the dtype h5py translates that type to (computed once)."""

_MEMORY_TYPES: dict[tuple[int, ...], Any] = {}
"""The same type signature -> the HDF5 memory type h5py reads that type with.

Keyed by the signature, never by the dtype: an ASCII and a UTF-8 string type of one size
give dtypes that compare and hash equal (h5py keeps the character set in the dtype's
metadata), but HDF5 converts neither into the other's memory type."""


def plain_dtype(tid: Any, cls: int) -> np.dtype[Any] | None:
    """The dtype h5py gives a plain integer, IEEE float or fixed string type, else None.

    h5py's translation (``tid.dtype``) depends only on a few properties -- size, byte
    order and sign of an integer; which IEEE float; size and character set of a
    fixed-length string -- so it is computed once per combination and cached.

    Parameters
    ----------
    tid : h5py.h5t.TypeID
        An attribute's or a dataset's datatype.
    cls : int
        Its class (``tid.get_class()``).

    Returns
    -------
    numpy.dtype or None
        The dtype ``tid.dtype`` gives, or None for other types.
    """
    found = _plain_type(tid, cls)
    return None if found is None else found[1]


def _type_key(tid: Any, cls: int) -> tuple[int, ...] | None:
    """Everything that decides h5py's translation of a plain type, or None."""
    key: tuple[int, ...]
    if cls == h5py.h5t.INTEGER:
        size = tid.get_size()
        if size not in (1, 2, 4, 8):
            return None
        key = (cls, size, tid.get_order(), tid.get_sign())
    elif cls == h5py.h5t.FLOAT:
        for i, std in enumerate(_IEEE_FLOATS):
            if tid.equal(std):
                key = (cls, i)
                break
        else:
            return None
    elif cls == h5py.h5t.STRING and not tid.is_variable_str():
        key = (cls, tid.get_size(), tid.get_cset())
    else:
        return None
    return key


def _plain_type(tid: Any, cls: int) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """The type's signature and h5py's dtype for it (cached per signature), or None."""
    key = _type_key(tid, cls)
    if key is None:
        return None
    dtype = _DTYPES.get(key)
    if dtype is None:
        dtype = _DTYPES[key] = tid.dtype
    return key, dtype


_FLAT_MAX: Final = 1 << 20
"""Largest element count read flat from the storage size (larger ones ask for a shape)."""


def _read_value(aid: Any, tid: Any, cls: int) -> Any:
    """The values ``obj.attrs[name]`` gives, for an open attribute -- possibly flattened.

    Asking for an attribute's dataspace costs as much as reading it, and no caller needs
    the shape (one value or several, in storage order, is all netCDF-C distinguishes), so
    plain types are read as a 1-D array sized from the storage size. Empty and
    zero-size attributes, and other types, are read as h5py reads them.
    """
    found = _plain_type(tid, cls)
    if found is None:
        return _read_general(aid, aid.shape)
    key, dtype = found
    mtype = _MEMORY_TYPES.get(key)
    if mtype is None:
        mtype = _MEMORY_TYPES[key] = h5py.h5t.py_create(dtype)
    try:
        n, rest = divmod(aid.get_storage_size(), dtype.itemsize)
    except RuntimeError:  # h5py reports a zero storage size as an error
        n, rest = 0, 0
    if 0 < n <= _FLAT_MAX and not rest:
        arr = np.empty((n,), dtype=dtype)
        aid.read(arr, mtype=mtype)
        return arr
    shape = aid.shape
    if shape is None:
        return h5py.Empty(dtype)
    arr = np.empty(shape, dtype=dtype)
    aid.read(arr, mtype=mtype)
    return arr[()] if arr.ndim == 0 else arr


def _read_general(aid: Any, shape: tuple[int, ...] | None) -> Any:
    """h5py's own attribute read (``AttributeManager.__getitem__``), for other types."""
    dtype = aid.dtype
    if shape is None:
        return h5py.Empty(dtype)
    htype = h5py.h5t.py_create(dtype)
    if dtype.subdtype is not None:
        subdtype, subshape = dtype.subdtype
        shape = shape + subshape
        dtype = subdtype
    arr = np.zeros(shape, dtype=dtype, order="C")
    aid.read(arr, mtype=htype)
    info = h5py.check_string_dtype(dtype)
    if info is not None and info.length is None:
        arr = np.array(
            [b.decode("utf-8", "surrogateescape") for b in arr.flat], dtype=dtype
        ).reshape(arr.shape)
    return arr[()] if arr.ndim == 0 else arr


def is_vlen_type(tid: Any, cls: int) -> bool:
    """True for a variable-length type (its values live in the global heap).

    Parameters
    ----------
    tid : h5py TypeID
    cls : int
        ``tid.get_class()``.

    Returns
    -------
    bool
    """
    return cls == h5py.h5t.VLEN or (cls == h5py.h5t.STRING and bool(tid.is_variable_str()))


class ObjAttrs:
    """The attributes of one HDF5 group or dataset, listed once and read on demand.

    Parameters
    ----------
    oid : h5py ObjectID
        The object (a low-level ``GroupID`` or ``DatasetID``).
    cpl : h5py PropID
        Its creation property list (attribute order: creation order when tracked, else
        by name, as h5py iterates).
    where : str
        How to name the object in error messages.
    guard : callable, optional
        Called once, before the first attribute of a variable-length type is read (it
        may raise to refuse a damaged file before libhdf5 reads the global heap).

    Raises
    ------
    FileFormatError
        If the attribute list cannot be read.
    """

    __slots__ = ("_guard", "names", "oid", "where")

    def __init__(
        self, oid: Any, cpl: Any, where: str, guard: Callable[[], None] | None = None
    ) -> None:
        self.oid = oid
        self.where = where
        self._guard = guard
        raw: list[bytes] = []
        try:
            tracked = cpl.get_attr_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
            index = h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME
            h5py.h5a.iterate(oid, raw.append, index_type=index)
        except H5_ERRORS as e:
            raise self._corrupt(None, e) from e
        self.names: dict[str | bytes, bytes] = {_decode_name(n): n for n in raw}
        """Attribute names (``str``, or ``bytes`` when not UTF-8) to their raw names."""

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def value(self, name: str) -> Any:
        """The attribute's values as ``obj.attrs[name]`` reads them, possibly flattened.

        Fixed-size values come back as a 1-D array in storage order (a scalar as one
        element); empty attributes as ``h5py.Empty``; other types exactly as h5py gives
        them.

        Parameters
        ----------
        name : str

        Returns
        -------
        Any

        Raises
        ------
        KeyError
            If there is no such attribute.
        """
        aid, tid, cls = self._open(self.names[name])
        return _read_value(aid, tid, cls)

    def _open(self, raw: bytes) -> tuple[Any, Any, int]:
        """Open an attribute and its type; run the guard first if it is variable-length."""
        aid = h5py.h5a.open(self.oid, raw)
        tid = aid.get_type()
        cls = tid.get_class()
        if self._guard is not None and is_vlen_type(tid, cls):
            guard, self._guard = self._guard, None
            guard()
        return aid, tid, cls

    def convert(self, enum_types: Sequence[Any] = ()) -> dict[str, Any]:
        """The visible attributes converted as netCDF4-python does.

        Parameters
        ----------
        enum_types : sequence of h5py TypeID
            Enum types of the file's datasets. netCDF-C shows an enum attribute (as its
            integer value) when its type is committed or equals one of these, and hides it
            otherwise.

        Returns
        -------
        dict
            Attribute names to values (NumPy scalars, 1-D arrays, ``str`` or ``list``).

        Raises
        ------
        FileFormatError
            If an attribute cannot be read.
        """
        out: dict[str, Any] = {}
        for name, raw in self.names.items():
            if name in HIDDEN_ATTRS:
                continue
            try:
                value = _convert(*self._open(raw), enum_types)
            except H5_ERRORS as e:
                raise self._corrupt(name, e) from e
            if value is not _HIDDEN:
                out[name] = value  # type: ignore[index]  # bytes names, as h5py gives them
        return out

    def _corrupt(self, name: str | bytes | None, e: Exception) -> FileFormatError:
        what = f"attribute {name!r}" if name is not None else "the attribute list"
        return FileFormatError(
            f"could not read {what} of {self.where}: expected a readable HDF5 attribute, "
            f"h5py reports {type(e).__name__}: {e}. The file is probably corrupt or "
            "truncated; check it with h5dump, or re-create it."
        )


def _decode_name(name: bytes) -> str | bytes:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return name


def read_attrs(obj: h5py.HLObject, enum_types: Sequence[Any] = ()) -> dict[str, Any]:
    """The attributes of an HDF5 group or dataset, converted as netCDF4-python does.

    Parameters
    ----------
    obj : h5py.Group or h5py.Dataset
    enum_types : sequence of h5py TypeID
        Enum types of the file's datasets (see :meth:`ObjAttrs.convert`).

    Returns
    -------
    dict
        Attribute names to values (NumPy scalars, 1-D arrays, ``str`` or ``list`` of str).

    Raises
    ------
    FileFormatError
        If an attribute cannot be read.
    """
    try:
        where = f"{obj.name!r} of {obj.file.filename}"
        cpl = obj.id.get_create_plist()
    except H5_ERRORS as e:
        raise FileFormatError(f"could not read the attribute list of an HDF5 object: {e}") from e
    return ObjAttrs(obj.id, cpl, where).convert(enum_types)


def _decode(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _string_attr(value: Any) -> str | list[str]:
    if isinstance(value, bytes | str):
        return _decode(value)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return _decode(arr.item())
    items = [_decode(v) for v in arr.ravel().tolist()]
    return items[0] if len(items) == 1 else items


def _numeric_attr(value: Any) -> Any:
    arr = np.asarray(value)
    native = arr.dtype.newbyteorder("=")
    if arr.dtype != native:
        arr = arr.astype(native)
    if arr.size == 1:
        return arr.reshape(()).copy()[()]
    return arr.ravel()


_HIDDEN: Final = object()


def _convert(aid: Any, tid: Any, cls: int, enum_types: Sequence[Any]) -> Any:
    if cls == h5py.h5t.STRING:
        value = _read_value(aid, tid, cls)
        if isinstance(value, h5py.Empty):  # empty dataspace
            return ""
        return _string_attr(value)
    if cls == h5py.h5t.ENUM:
        shape = aid.shape
        if shape is not None and (tid.committed() or any(tid == t for t in enum_types)):
            base = np.dtype(tid.get_super().dtype.str)
            if f"{base.kind}{base.itemsize}" in _NETCDF_NUMERIC:
                return _numeric_attr(np.asarray(_read_general(aid, shape)).astype(base))
        return _HIDDEN
    if cls in _NUMERIC_CLASSES:
        if tid.get_size() not in ((4, 8) if cls == h5py.h5t.FLOAT else (1, 2, 4, 8)):
            return _HIDDEN  # half or long-double floats, odd-sized integers
        dtype = plain_dtype(tid, cls) or aid.dtype
        if f"{dtype.kind}{dtype.itemsize}" not in _NETCDF_NUMERIC:
            return _HIDDEN  # half or long-double floats, odd-sized integers: not netCDF types
        value = _read_value(aid, tid, cls)
        if isinstance(value, h5py.Empty):
            return np.array([], dtype=dtype.newbyteorder("="))
        return _numeric_attr(value)
    # other enums (h5py booleans), compounds, references, opaque, vlen sequences: netCDF-C
    # does not show them either.
    return _HIDDEN
