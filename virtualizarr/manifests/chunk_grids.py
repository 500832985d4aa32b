"""Chunk grids and chunk key encodings of Zarr v3 array metadata, without zarr.

:class:`RegularChunkGrid` and :class:`RectilinearChunkGrid` are the ``chunk_grid`` of an
:class:`~virtualizarr.manifests.array_metadata.ArrayMetadata`, :class:`ChunkKeyEncoding`
its ``chunk_key_encoding``; each writes the JSON zarr-python writes (a rectilinear axis
run-length encoded where that is shorter) and reads what zarr reads.
:func:`rectilinear_grids` switches zarr's own rectilinear option on around code that
hands such metadata to zarr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import numpy as np

from virtualizarr.errors import InvalidMetadataError

__all__ = [
    "DEFAULT_KEY_ENCODING",
    "ChunkGrid",
    "ChunkKeyEncoding",
    "RectilinearChunkGrid",
    "RegularChunkGrid",
    "parse_chunk_grid",
    "rectilinear_grids",
]


def _bad(message: str) -> InvalidMetadataError:
    return InvalidMetadataError(message)


def _edge(value: Any, axis: int) -> int:
    if not isinstance(value, int | np.integer):
        raise _bad(f"a chunk edge length must be an integer; found {value!r:.40} on axis {axis}")
    if value < 1:
        raise _bad(f"a chunk edge length must be >= 1; found {value} on axis {axis}")
    return int(value)


# ---------------------------------------------------------------------- chunk grids
@dataclasses.dataclass(frozen=True, slots=True)
class RegularChunkGrid:
    """A regular chunk grid: every chunk of ``chunk_shape`` (edge chunks padded).

    Examples
    --------
    >>> RegularChunkGrid((10, 5)).to_dict()
    {'name': 'regular', 'configuration': {'chunk_shape': (10, 5)}}
    """

    chunk_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = tuple(_edge(c, i) for i, c in enumerate(self.chunk_shape))
        object.__setattr__(self, "chunk_shape", shape)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.chunk_shape)

    def to_dict(self) -> dict[str, Any]:
        """The ``chunk_grid`` JSON."""
        return {"name": "regular", "configuration": {"chunk_shape": self.chunk_shape}}


def _compress_rle(sizes: Sequence[int]) -> list[Any]:
    """Runs of equal lengths as ``[length, count]`` (single ones bare), as zarr writes."""
    out: list[Any] = []
    i = 0
    while i < len(sizes):
        j = i
        while j + 1 < len(sizes) and sizes[j + 1] == sizes[i]:
            j += 1
        out.append([sizes[i], j - i + 1] if j > i else sizes[i])
        i = j + 1
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class RectilinearChunkGrid:
    """A rectilinear chunk grid: per axis, a regular size or the explicit chunk lengths.

    Examples
    --------
    >>> RectilinearChunkGrid((4, (3, 3, 3, 1))).to_dict()["configuration"]["chunk_shapes"]
    (4, [[3, 3], 1])
    """

    chunk_shapes: tuple[int | tuple[int, ...], ...]

    def __post_init__(self) -> None:
        shapes: list[int | tuple[int, ...]] = []
        for axis, spec in enumerate(self.chunk_shapes):
            if isinstance(spec, list | tuple):
                if not spec:
                    raise _bad(f"axis {axis} of a rectilinear chunk grid has no chunk lengths")
                shapes.append(tuple(_edge(e, axis) for e in spec))
            else:
                shapes.append(_edge(spec, axis))
        object.__setattr__(self, "chunk_shapes", tuple(shapes))

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.chunk_shapes)

    def to_dict(self) -> dict[str, Any]:
        """The ``chunk_grid`` JSON (explicit lengths run-length encoded where shorter)."""
        dims: list[Any] = []
        for spec in self.chunk_shapes:
            if isinstance(spec, int):
                dims.append(spec)
            else:
                rle = _compress_rle(spec)
                dims.append(rle if len(rle) < len(spec) else list(spec))
        return {
            "name": "rectilinear",
            "configuration": {"kind": "inline", "chunk_shapes": tuple(dims)},
        }


ChunkGrid = RegularChunkGrid | RectilinearChunkGrid


def _expand_rle(spec: Sequence[Any], axis: int) -> tuple[int, ...]:
    out: list[int] = []
    for item in spec:
        if isinstance(item, list):
            if len(item) != 2:
                raise _bad(f"axis {axis}: a run-length entry is [size, count]; found {item!r:.40}")
            out.extend([_edge(item[0], axis)] * _edge(item[1], axis))
        else:
            out.append(_edge(item, axis))
    return tuple(out)


def parse_chunk_grid(doc: Any) -> ChunkGrid:
    """A chunk grid from its JSON (or a grid object, returned as is).

    Raises
    ------
    InvalidMetadataError
        If ``doc`` is not a regular or an inline rectilinear chunk grid.

    Examples
    --------
    >>> parse_chunk_grid({"name": "rectilinear", "configuration": {
    ...     "kind": "inline", "chunk_shapes": [[[2, 3]], 4]}}).chunk_shapes
    ((2, 2, 2), 4)
    """
    if isinstance(doc, RegularChunkGrid | RectilinearChunkGrid):
        return doc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("configuration"), Mapping):
        raise _bad(f"a chunk grid is an object with a name and a configuration; found {doc!r:.80}")
    conf = doc["configuration"]
    if doc.get("name") == "regular":
        shape = conf.get("chunk_shape")
        if isinstance(shape, str | Mapping) or not isinstance(shape, Iterable):
            raise _bad(f"a regular grid's chunk_shape must be a list; found {shape!r:.80}")
        return RegularChunkGrid(tuple(shape))
    if doc.get("name") == "rectilinear":
        if conf.get("kind") != "inline":
            raise _bad(
                f"a rectilinear grid's kind must be 'inline'; found {conf.get('kind')!r:.40}"
            )
        shapes = conf.get("chunk_shapes")
        if isinstance(shapes, str | Mapping) or not isinstance(shapes, Iterable):
            raise _bad(f"a rectilinear grid's chunk_shapes must be a list; found {shapes!r:.80}")
        return RectilinearChunkGrid(
            tuple(
                _expand_rle(s, axis) if isinstance(s, list | tuple) else s
                for axis, s in enumerate(shapes)
            )
        )
    raise _bad(f"unknown chunk grid {doc.get('name')!r:.40} (regular or rectilinear expected)")


# ---------------------------------------------------------------------- chunk keys
@dataclasses.dataclass(frozen=True, slots=True)
class ChunkKeyEncoding:
    """How chunk grid coordinates become store keys (``"default"``: ``c/0/1``; ``"v2"``: ``0.1``).

    Examples
    --------
    >>> ChunkKeyEncoding("default", "/").encode_chunk_key((0, 1))
    'c/0/1'
    >>> ChunkKeyEncoding("v2", ".").decode_chunk_key("3.4")
    (3, 4)
    """

    name: str = "default"
    separator: str = "/"

    def __post_init__(self) -> None:
        if self.name not in ("default", "v2"):
            raise _bad(f"unknown chunk key encoding {self.name!r:.40} (default or v2 expected)")
        if self.separator not in (".", "/"):
            raise _bad(f"a chunk key separator is '.' or '/'; found {self.separator!r:.20}")

    @classmethod
    def from_dict(cls, doc: Any) -> ChunkKeyEncoding:
        """Read ``{"name": ..., "configuration": {"separator": ...}}`` (or an instance)."""
        if isinstance(doc, ChunkKeyEncoding):
            return doc
        if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
            raise _bad(f"a chunk key encoding is an object with a name; found {doc!r:.80}")
        name = doc["name"]
        conf = doc.get("configuration") or {}
        if "separator" in doc and "configuration" not in doc:
            conf = {"separator": doc["separator"]}
        if not isinstance(conf, Mapping) or set(conf) - {"separator"}:
            raise _bad(f"invalid chunk key encoding configuration {conf!r:.80}")
        return cls(name, conf.get("separator", "/" if name == "default" else "."))

    def to_dict(self) -> dict[str, Any]:
        """The ``chunk_key_encoding`` JSON."""
        return {"name": self.name, "configuration": {"separator": self.separator}}

    def encode_chunk_key(self, coords: Sequence[int]) -> str:
        """The store key of the chunk at grid ``coords``."""
        if self.name == "default":
            return self.separator.join(["c", *map(str, coords)])
        return self.separator.join(map(str, coords)) or "0"

    def decode_chunk_key(self, key: str) -> tuple[int, ...]:
        """The grid coordinates of a store key (``ValueError`` if it is not a chunk key)."""
        if self.name == "default":
            if key == "c":
                return ()
            prefix = "c" + self.separator
            if not key.startswith(prefix):
                raise ValueError(f"invalid chunk key for the default encoding: {key!r}")
            key = key[len(prefix) :]
        return tuple(int(i) for i in key.split(self.separator))


DEFAULT_KEY_ENCODING: Final = ChunkKeyEncoding("default", "/")


_rectilinear_lock = threading.Lock()
_rectilinear_users = 0
_rectilinear_saved: Any = None


@contextlib.contextmanager
def rectilinear_grids() -> Iterator[None]:
    """A context in which zarr reads and writes rectilinear chunk-grid metadata.

    Zarr 3.4 refuses metadata with a ``rectilinear`` chunk grid unless its
    ``array.rectilinear_chunks`` option is on. Our readers and the engine turn it on
    around what needs it -- parsing a stored ``zarr.json``, opening a virtual array
    through zarr -- and back to the caller's setting after, so callers never have to
    configure zarr and their own configuration is left as it was. Nested and concurrent
    uses (threads reading stores at once) share one activation: the option stays on until
    the last of them ends. (zarr's configuration is process-wide: another thread reading
    metadata meanwhile sees the option on too.)

    Entering the context imports zarr: only code about to hand metadata to zarr uses it.

    Yields
    ------
    None

    Examples
    --------
    >>> import zarr
    >>> with rectilinear_grids():
    ...     zarr.config.get("array.rectilinear_chunks")
    True
    """
    import zarr

    global _rectilinear_users, _rectilinear_saved
    with _rectilinear_lock:
        if _rectilinear_users == 0:
            _rectilinear_saved = zarr.config.get("array.rectilinear_chunks")
            zarr.config.set({"array.rectilinear_chunks": True})
        _rectilinear_users += 1
    try:
        yield
    finally:
        with _rectilinear_lock:
            _rectilinear_users -= 1
            if _rectilinear_users == 0:
                zarr.config.set({"array.rectilinear_chunks": _rectilinear_saved})
