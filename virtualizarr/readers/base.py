"""What a reader is, and the one way a reader is found for any input.

A reader turns one source into a :class:`~virtualizarr.manifests.VirtualGroup`: variables
whose data are :class:`~virtualizarr.manifests.ManifestArray` (no bytes read), with the
dimension names and attributes exactly as the source stores them. CF decoding happens
later, in xarray, exactly as it would for the original file.

A source is a :class:`~virtualizarr.io.objects.Location` (a file or a directory, local or
remote) or an in-memory reference document (a kerchunk dict). :func:`find_reader` picks
the reader for it -- by name (``filetype=``) or by asking each registered reader whether
it recognises a :class:`Probe` of the source -- for every entry point alike:
``open_virtual_dataset``, ``engine="virtualizarr"`` and ``verify``. Readers say what they
can do with attributes rather than being recognised by name: a reader with
``references = True`` reads reference documents (so it takes ``allowed_sources=`` and
``limits=``, and the engine opens what it reads).

Built-in readers register in :mod:`virtualizarr.readers`; those with heavy dependencies
(h5py) are :class:`LazyReader`\\ s, imported on first use. Third-party readers register
through the ``virtualizarr.readers`` entry-point group: an object (or a class, called with
no arguments) with ``name``, ``aliases``, ``references``, ``guess_can_open(probe)`` and
``open(source, *, group=None, drop_variables=(), **options)``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, runtime_checkable

from virtualizarr.errors import (
    InvalidArgumentError,
    InvalidReferencesError,
    SourceNotFoundError,
    UnsupportedFileTypeError,
    VirtualiZarrError,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests.group import VirtualGroup

__all__ = [
    "DENSE_GRID_CELLS",
    "DOCUMENT_ERRORS",
    "HEAD_BYTES",
    "READERS",
    "SPARSE_GRID_FACTOR",
    "LazyReader",
    "Probe",
    "Reader",
    "Source",
    "check_grid_cells",
    "find_reader",
    "guard_document",
    "register_reader",
    "require_location",
]

Source = Location | Mapping[str, Any]
"""What a reader opens: a file or directory, or an in-memory reference document."""

HEAD_BYTES: Final = 4096
"""Bytes of a file's head that readers may look at to recognise it."""


class Probe:
    """What readers look at to recognise a source, each part read at most once.

    Parameters
    ----------
    source : Location or mapping
        A file or directory, or an in-memory reference document.

    Raises
    ------
    SourceNotFoundError
        From :attr:`head` or :attr:`is_dir`, if the location does not exist.

    Examples
    --------
    >>> Probe({"version": 1, "refs": {}}).document is not None
    True
    """

    def __init__(self, source: Source) -> None:
        self.location: Location | None = None
        """The file or directory; None for an in-memory document."""
        self.document: Mapping[str, Any] | None = None
        """The in-memory reference document; None for a location."""
        if isinstance(source, Location):
            self.location = source
        else:
            self.document = source
        self._head: bytes | None = None
        self._is_dir = False
        self._keys: dict[str, bool] = {}
        self._more: dict[tuple[int, int], bytes] = {}
        self.extended = False
        """True in :func:`find_reader`'s second pass, once every reader has declined the
        source on its head alone: only then does :meth:`read_at` read past the head."""

    def _read_head(self) -> None:
        if self._head is not None:
            return
        if self.location is None:
            self._head = b""
            return
        try:
            self._head = self.location.head(HEAD_BYTES)
        except FileNotFoundError:
            hint = (
                " (a store directory served over HTTP(S) is found by its zarr.json or "
                ".zmetadata, and neither is there)"
                if self.location.is_http
                else ""
            )
            raise SourceNotFoundError(
                f"{self.location.label()} does not exist{hint}; check the path."
            ) from None
        except IsADirectoryError:
            self._head, self._is_dir = b"", True

    @property
    def head(self) -> bytes:
        """The first bytes of the file (:data:`HEAD_BYTES` at most); empty for a
        directory or a document."""
        self._read_head()
        assert self._head is not None
        return self._head

    @property
    def is_dir(self) -> bool:
        """True for a directory (remotely: a prefix with objects under it)."""
        self._read_head()
        return self._is_dir

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of the file at ``offset`` (fewer at its end).

        Bytes inside :attr:`head` cost nothing. Bytes past it are read (once, lazily)
        only when :attr:`extended` is True -- in :func:`find_reader`'s second pass, after
        every reader has declined the source on its head -- so recognising an ordinary
        file never costs an extra read; otherwise they are empty, as they are for a
        directory, a document or an unreadable range.

        Parameters
        ----------
        offset, size : int

        Returns
        -------
        bytes
        """
        head = self.head
        if offset + size <= len(head) or len(head) < HEAD_BYTES:
            return head[offset : offset + size]
        if not self.extended or self.location is None or self._is_dir:
            return b""
        key = (offset, size)
        if key not in self._more:
            try:
                self._more[key] = self.location.read_range(offset, size)
            except (OSError, ValueError):  # past the end (ChunkReadError), unreadable
                self._more[key] = b""
        return self._more[key]

    def has(self, key: str) -> bool:
        """True if the directory holds the file ``key`` (False for anything else)."""
        if not self.is_dir or self.location is None:
            return False
        if key not in self._keys:
            try:
                self._keys[key] = self.location.exists(key)
            except (OSError, ValueError):
                self._keys[key] = False
        return self._keys[key]

    def read_key(self, key: str, max_bytes: int = 1 << 16) -> bytes:
        """At most ``max_bytes`` of the file ``key`` in the directory (empty if absent)."""
        if not self.has(key) or self.location is None:
            return b""
        try:
            return self.location.get_bounded(key, max_bytes)[:max_bytes]
        except (OSError, ValueError):
            return b""

    def label(self) -> str:
        """The source, for messages."""
        return self.location.label() if self.location is not None else "<in-memory document>"


@runtime_checkable
class Reader(Protocol):
    """The interface every reader implements.

    Attributes
    ----------
    name : str
        The ``filetype=`` that selects it.
    aliases : tuple of str
        Other ``filetype=`` names for it.
    references : bool
        True if it reads reference documents (it then takes ``allowed_sources=`` and
        ``limits=``, and ``engine="virtualizarr"`` and ``verify`` accept its inputs).
    """

    name: str
    aliases: tuple[str, ...]
    references: bool

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the probed source is of this reader's format (cheap: no full read)."""
        ...

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Read the metadata of ``source`` and return its virtual description.

        Variables named in ``drop_variables`` should not be scanned at all.
        """
        ...


class LazyReader:
    """A registered reader whose implementation is imported when a file needs it.

    Importing h5py costs ~80 ms, which a process that only reads netCDF3 or references
    should not pay: recognition (``detect``) is cheap and imported eagerly, the reader
    itself (``target``, ``"module:attribute"``) on first :meth:`open` or :meth:`load`.

    Parameters
    ----------
    name : str
    detect : callable
        ``detect(probe) -> bool``, as :meth:`Reader.guess_can_open`.
    target : str
        ``"package.module:ReaderClass"``; the class is called with no arguments.
    aliases : tuple of str
    references : bool
    """

    def __init__(
        self,
        name: str,
        detect: Callable[[Probe], bool],
        target: str,
        *,
        aliases: tuple[str, ...] = (),
        references: bool = False,
    ) -> None:
        self.name = name
        self.aliases = aliases
        self.references = references
        self._detect = detect
        self._target = target
        self._reader: Reader | None = None

    def __repr__(self) -> str:
        state = "loaded" if self._reader is not None else "not loaded"
        return f"LazyReader({self.name!r}, {self._target!r}, {state})"

    def guess_can_open(self, probe: Probe) -> bool:
        """See :meth:`Reader.guess_can_open`."""
        return self._detect(probe)

    def load(self) -> Reader:
        """Import and instantiate the reader (once)."""
        if self._reader is None:
            module, _, attr = self._target.partition(":")
            self._reader = getattr(importlib.import_module(module), attr)()
        return self._reader

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """See :meth:`Reader.open`."""
        return self.load().open(source, group=group, drop_variables=drop_variables, **options)


READERS: dict[str, Reader] = {}
"""Registered readers by name, in the order they are tried."""


def register_reader(reader: Reader) -> Reader:
    """Add a reader to :data:`READERS` (a later registration of a name replaces it)."""
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


def _by_name(filetype: str) -> Reader | None:
    key = filetype.lower()
    for reader in READERS.values():
        if key == reader.name or key in reader.aliases:
            return reader
    return None


def _specialize(reader: Reader, probe: Probe) -> Reader:
    """The reader a named reader hands a source to, if it names one that recognises it.

    A reader may list, in ``defers_to``, readers of special cases of its format (the
    ``zarr`` reader names ``manifest_store``: a manifest store is a Zarr store too); when
    one of those recognises the source, it reads it. Recognition failures (a source that
    cannot be probed) leave the named reader in charge, to report them.
    """
    for name in getattr(reader, "defers_to", ()):
        other = _by_name(name)
        if other is None or other is reader:
            continue
        try:
            if other.guess_can_open(probe):
                return other
        except (OSError, VirtualiZarrError):
            return reader
    return reader


def find_reader(
    probe: Probe, filetype: str | None = None, *, references_only: bool = False
) -> Reader:
    """Pick the reader for a source: by name (``filetype``), else by recognition.

    Parameters
    ----------
    probe : Probe
        The source to open.
    filetype : str, optional
        A reader's name or alias (``"hdf5"``, ``"netcdf4"``, ``"kerchunk"``...). A reader
        that names special cases of its format in ``defers_to`` hands them on: with
        ``filetype="zarr"``, a manifest store is read by the ``manifest_store`` reader.
    references_only : bool
        Only readers of reference documents qualify (``engine="virtualizarr"``,
        ``verify``).

    Returns
    -------
    Reader

    Raises
    ------
    UnsupportedFileTypeError
        If ``filetype`` is unknown, or no (qualifying) reader recognises the source.
    SourceNotFoundError
        If the source does not exist.
    """
    _load_entry_points()
    candidates = [r for r in READERS.values() if r.references or not references_only]
    what = "reader of references" if references_only else "reader"
    if filetype is not None:
        reader = _by_name(filetype)
        if reader is not None:
            reader = _specialize(reader, probe)
        if reader is not None and reader in candidates:
            return reader
        names = sorted(r.name for r in candidates)
        raise UnsupportedFileTypeError(
            f"filetype={filetype!r} is not a known {what}; expected one of {names} (or "
            "None to detect the format from the file)."
        )
    for extended in (False, True):  # the second pass may read past the head
        probe.extended = extended
        for reader in candidates:
            if reader.guess_can_open(probe):
                return reader
        if probe.document is not None or probe.is_dir:
            break
    names = sorted(r.name for r in candidates)
    if references_only:
        other = next((r for r in READERS.values() if r.guess_can_open(probe)), None)
        if other is not None:
            raise UnsupportedFileTypeError(
                f"{probe.label()} is a {other.name} file, not references: read it with "
                "xr.open_dataset(path), or virtualize it with "
                "virtualizarr.open_virtual_dataset(path) and write references from that."
            )
    if probe.document is not None:
        found = "an in-memory document that is not a kerchunk reference document"
    elif probe.is_dir:
        found = "a directory"
    else:
        found = f"a file whose first bytes are {probe.head[:8]!r}"
    raise UnsupportedFileTypeError(
        f"{probe.label()} is {found}; no {what} recognises it (supported formats: {names}). Pass "
        "filetype= to force a reader, or install a plugin that registers one under the "
        "'virtualizarr.readers' entry point."
    )


def require_location(source: Source, reader: str) -> Location:
    """The location of a source, refusing in-memory documents for file readers.

    Raises
    ------
    InvalidArgumentError
        If ``source`` is an in-memory document.
    """
    if not isinstance(source, Location):
        raise InvalidArgumentError(
            f"the {reader} reader reads files; found an in-memory document. Pass the path "
            "of the file (or filetype='kerchunk' for a reference document)."
        )
    return source


# ---------------------------------------------------------------------- shared checks
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
