"""What a reader produces, and how readers are found.

A reader turns one file (or one group of it) into a :class:`VirtualGroup`: variables
whose data are :class:`~virtualizarr.manifests.ManifestArray` (no bytes read), with the
dimension names and the attributes exactly as the file stores them (raw, undecoded:
``_FillValue``, ``scale_factor``, ``units`` ... keep their types and values). CF decoding
happens later, in xarray, exactly as it would for the original file.

Readers register themselves in :data:`READERS`; third-party readers can register through
the ``virtualizarr.readers`` entry-point group. A reader is any object with a ``name``,
``guess_can_open(magic, path)`` and ``open(path, group=..., **options)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, runtime_checkable

from virtualizarr.errors import (
    InvalidReferencesError,
    UnsupportedFileTypeError,
    VirtualiZarrError,
)
from virtualizarr.manifests.array import ManifestArray

__all__ = [
    "DENSE_GRID_CELLS",
    "READERS",
    "SPARSE_GRID_FACTOR",
    "Reader",
    "VirtualGroup",
    "VirtualVariable",
    "check_dimension_sizes",
    "check_grid_cells",
    "find_reader",
    "guard_document",
    "register_reader",
]

DENSE_GRID_CELLS: Final = 1 << 22
"""Chunk-grid cells a reader always accepts (a manifest costs 20 bytes per cell: 80 MiB)."""

SPARSE_GRID_FACTOR: Final = 64
"""A larger grid is accepted while it has at most this many cells per stored chunk."""


def check_grid_cells(
    grid: Sequence[int],
    stored: int,
    where: str,
    error: type[VirtualiZarrError],
) -> None:
    """Refuse a chunk grid whose size a file claims but whose chunks it does not hold.

    A manifest is dense: it costs 20 bytes per chunk-grid cell, stored or not. A corrupt
    header can claim an array of ``2**60`` elements while storing three chunks; building
    its manifest would allocate exabytes. So a grid is accepted when it has at most
    :data:`DENSE_GRID_CELLS` cells, or at most :data:`SPARSE_GRID_FACTOR` cells per chunk
    the source actually stores (a count bounded by the source's own size).

    Parameters
    ----------
    grid : sequence of int
        The chunk grid's shape.
    stored : int
        How many chunks the source really lists (references, allocated chunks).
    where : str
        What is being read, for the message (``"variable 'x' of f.nc"``).
    error : type
        The error class to raise (``FileFormatError``, ``InvalidReferencesError``).

    Raises
    ------
    VirtualiZarrError
        Of class ``error``, when the grid is too large for what is stored.

    Examples
    --------
    >>> from virtualizarr.errors import FileFormatError
    >>> check_grid_cells((10, 10), 0, "x", FileFormatError)
    """
    cells = math.prod(int(g) for g in grid)
    if cells <= DENSE_GRID_CELLS or cells <= SPARSE_GRID_FACTOR * max(int(stored), 0):
        return
    raise error(
        f"{where} claims a chunk grid of {tuple(int(g) for g in grid)} ({cells:.3g} chunks) but "
        f"stores only {stored}; its manifest would need {20 * cells:.3g} bytes. Expected at "
        f"most {DENSE_GRID_CELLS} chunks or {SPARSE_GRID_FACTOR} per stored chunk. The shape "
        "or chunk metadata is probably corrupt; if the array really is this large and this "
        "sparse, leave it out with drop_variables=[...]."
    )


DOCUMENT_ERRORS: Final = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
)
"""What Python, NumPy or zarr raise while interpreting a malformed JSON document."""


def guard_document[T](source: str, what: str, fn: Callable[[], T]) -> T:
    """Run ``fn``, turning a foreign error it raises on a malformed document into ours.

    Reference readers validate what they can with precise messages; this is the net
    under them, at the granularity of one array, so the message still says where.

    Parameters
    ----------
    source : str
        The document (path) being read.
    what : str
        The part being interpreted (``"array 'x'"``).
    fn : callable
        Does the work.

    Returns
    -------
    object
        What ``fn`` returns.

    Raises
    ------
    InvalidReferencesError
        Instead of :data:`DOCUMENT_ERRORS`; errors of ours pass through unchanged.

    Examples
    --------
    >>> guard_document("refs.json", "array 'x'", lambda: 1)
    1
    """
    try:
        return fn()
    except VirtualiZarrError:
        raise
    except DOCUMENT_ERRORS as e:
        raise InvalidReferencesError(
            f"{source}: {what} is malformed ({type(e).__name__}: {e}). Expected references "
            "as kerchunk or virtualizarr's writers make them; regenerate them."
        ) from e


@dataclass(frozen=True, slots=True)
class VirtualVariable:
    """One variable of a virtualized file.

    Attributes
    ----------
    dims : tuple of str
        Dimension names, as ``xr.open_dataset`` would name them.
    data : ManifestArray
        Where the stored (encoded) values live.
    attrs : dict
        The variable's attributes as stored in the file (undecoded).
    """

    dims: tuple[str, ...]
    data: ManifestArray
    attrs: dict[str, Any] = field(default_factory=dict)


def check_dimension_sizes(
    variables: Mapping[str, VirtualVariable], source: str, error: type[VirtualiZarrError]
) -> None:
    """Refuse variables that give one dimension two lengths (xarray could not hold them).

    Parameters
    ----------
    variables : mapping of str to VirtualVariable
    source : str
        The document or file, for the message.
    error : type
        The error class to raise.

    Raises
    ------
    VirtualiZarrError
        Of class ``error``, naming the dimension and both variables.
    """
    seen: dict[str, tuple[int, str]] = {}
    for name, var in variables.items():
        for dim, size in zip(var.dims, var.data.shape, strict=False):
            first = seen.setdefault(dim, (int(size), name))
            if first[0] != int(size):
                raise error(
                    f"{source}: dimension {dim!r} has length {first[0]} in {first[1]!r} but "
                    f"{int(size)} in {name!r}; expected one length per dimension. The "
                    "metadata is corrupt; regenerate it, or drop one of the variables."
                )


@dataclass(frozen=True, slots=True)
class VirtualGroup:
    """The variables and attributes of one file or group, as a reader found them."""

    variables: dict[str, VirtualVariable]
    attrs: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Reader(Protocol):
    """The interface every reader implements."""

    name: str

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True if the file whose first bytes are ``magic`` is of this reader's format."""
        ...

    def open(
        self,
        path: str,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Read the metadata of ``path`` (a URL) and return its virtual description.

        Variables named in ``drop_variables`` should not be scanned at all.
        """
        ...


READERS: dict[str, Reader] = {}
"""Registered readers by name, in the order they are tried."""


def register_reader(reader: Reader) -> Reader:
    """Add a reader to :data:`READERS` (later registrations of a name replace earlier)."""
    READERS[reader.name] = reader
    return reader


_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="virtualizarr.readers"):
        obj: Callable[[], Reader] | Reader = ep.load()
        register_reader(obj() if callable(obj) and not isinstance(obj, Reader) else obj)


def find_reader(magic: bytes, path: str, filetype: str | None = None) -> Reader:
    """Pick the reader for a file from its name (``filetype``) or its first bytes.

    Raises
    ------
    UnsupportedFileTypeError
        If ``filetype`` is unknown or no reader recognises the file.
    """
    _load_entry_points()
    if filetype is not None:
        key = filetype.lower()
        aliases: Mapping[str, str] = {"netcdf4": "hdf5", "hdf": "hdf5", "h5": "hdf5"}
        key = aliases.get(key, key)
        if key in READERS:
            return READERS[key]
        raise UnsupportedFileTypeError(
            f"filetype={filetype!r} is not a known reader; expected one of "
            f"{sorted(READERS)} (or None to detect it from the file's magic bytes)."
        )
    for reader in READERS.values():
        if reader.guess_can_open(magic, path):
            return reader
    raise UnsupportedFileTypeError(
        f"{path} is not a file any reader recognises (first bytes {magic[:8]!r}); "
        f"supported formats: {sorted(READERS)}. Pass filetype= to force a reader, or install "
        "a plugin that registers one under the 'virtualizarr.readers' entry point."
    )
