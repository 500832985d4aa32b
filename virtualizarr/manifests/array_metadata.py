"""Zarr v3 array metadata of our own: what a virtual array's ``zarr.json`` says, without zarr.

:class:`ArrayMetadata` is a frozen value -- shape, NumPy data type, chunk grid, fill value,
codec chain (JSON configurations), dimension names, attributes, chunk key encoding --
whose :meth:`~ArrayMetadata.to_dict` is exactly the document zarr-python's
``ArrayV3Metadata.to_dict`` gives for the same array, and whose
:meth:`~ArrayMetadata.from_dict` reads what zarr reads. It lets the whole
virtualize -> combine -> write path run without importing zarr (about a sixth of a
second per process); :meth:`~ArrayMetadata.to_zarr` converts to zarr's class where zarr
itself is needed (serving arrays to zarr, Icechunk).

Data types and fill values follow :mod:`virtualizarr.manifests.data_types`, codec chains
:mod:`virtualizarr.manifests.codec_chain`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from virtualizarr.errors import InvalidMetadataError
from virtualizarr.manifests.chunk_codecs import register_zarr_codecs
from virtualizarr.manifests.chunk_grids import (
    DEFAULT_KEY_ENCODING,
    ChunkGrid,
    ChunkKeyEncoding,
    RectilinearChunkGrid,
    RegularChunkGrid,
    parse_chunk_grid,
    rectilinear_grids,
)
from virtualizarr.manifests.codec_chain import normalize_codecs
from virtualizarr.manifests.data_types import (
    cast_fill,
    data_type_from_json,
    data_type_to_json,
    fill_from_json,
    fill_to_json,
    native_data_type,
)

__all__ = [
    "ArrayMetadata",
    "ChunkKeyEncoding",
    "RectilinearChunkGrid",
    "RegularChunkGrid",
    "parse_chunk_grid",
]

ARRAY_KEYS: Final = frozenset(
    {
        "zarr_format",
        "node_type",
        "data_type",
        "shape",
        "chunk_grid",
        "chunk_key_encoding",
        "fill_value",
        "codecs",
        "attributes",
        "storage_transformers",
        "dimension_names",
    }
)
"""The keys of a Zarr v3 array document; any other must be ``{"must_understand": false}``."""


def _bad(message: str) -> InvalidMetadataError:
    return InvalidMetadataError(message)


# ---------------------------------------------------------------------- array metadata
def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        value = (value,)
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        raise _bad(f"a shape is a list of non-negative integers; found {value!r:.80}")
    shape = tuple(value)
    if not all(isinstance(s, int | np.integer) and s >= 0 for s in shape):
        raise _bad(f"a shape is a list of non-negative integers; found {value!r:.80}")
    return tuple(int(s) for s in shape)


def _dimension_names(value: Any) -> tuple[str | None, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        raise _bad(f"dimension_names is a list of strings or nulls; found {value!r:.80}")
    names = tuple(value)
    if not all(n is None or isinstance(n, str) for n in names):
        raise _bad(f"dimension_names is a list of strings or nulls; found {value!r:.80}")
    return names


def _extra_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    extra = {k: v for k, v in doc.items() if k not in ARRAY_KEYS}
    bad = sorted(
        k
        for k, v in extra.items()
        if not (isinstance(v, Mapping) and v.get("must_understand") is False)
    )
    if bad:
        raise _bad(
            f"the array document has the fields {bad}, which are not Zarr v3 fields and do "
            'not say "must_understand": false.'
        )
    return {k: dict(v) for k, v in extra.items()}


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ArrayMetadata:
    """The Zarr v3 metadata of a virtual array (zarr-python's ``ArrayV3Metadata``, ours).

    Build it with :func:`~virtualizarr.manifests.make_array_metadata` (from the stored
    dtype, the chunking and the codecs a reader finds) or :meth:`from_dict` (from a
    ``zarr.json`` document); evolve it with :func:`dataclasses.replace`. Values are
    normalized as zarr normalizes them: the data type to the native byte order, the fill
    value cast to it, each codec completed with zarr's defaults.

    Parameters
    ----------
    shape : sequence of int
    data_type : numpy.dtype
        What the array holds (variable-length strings: ``StringDType``).
    chunk_grid : RegularChunkGrid, RectilinearChunkGrid or mapping
    fill_value : scalar
        What a missing chunk reads as.
    codecs : sequence of mapping
        The codec chain as JSON configurations, in encoding order.
    dimension_names : sequence of (str or None), optional
    attributes : mapping, optional
    chunk_key_encoding : ChunkKeyEncoding or mapping, optional
        Default: ``{"name": "default", "configuration": {"separator": "/"}}``.
    storage_transformers : sequence of mapping, optional
    extra_fields : mapping, optional
        Other fields of the document (each ``{"must_understand": false, ...}``).

    Raises
    ------
    InvalidMetadataError
        If the parts do not make valid Zarr v3 metadata (an unknown data type or codec,
        axes that disagree, a fill value of the wrong type...).

    Examples
    --------
    >>> meta = ArrayMetadata(shape=(4,), data_type=np.dtype(">f4"),
    ...     chunk_grid=RegularChunkGrid((2,)), fill_value=float("nan"),
    ...     codecs=[{"name": "bytes", "configuration": {"endian": "big"}}])
    >>> meta.to_dict()["fill_value"], meta.dtype
    ('NaN', dtype('float32'))
    >>> ArrayMetadata.from_dict(meta.to_dict()) == meta
    True
    """

    shape: tuple[int, ...]
    data_type: np.dtype[Any]
    chunk_grid: ChunkGrid
    fill_value: Any
    codecs: tuple[dict[str, Any], ...]
    dimension_names: tuple[str | None, ...] | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    chunk_key_encoding: ChunkKeyEncoding = DEFAULT_KEY_ENCODING
    storage_transformers: tuple[dict[str, Any], ...] = ()
    extra_fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            dtype = native_data_type(np.dtype(self.data_type))
            shape = _shape(self.shape)
            grid = parse_chunk_grid(self.chunk_grid)
            fill = cast_fill(self.fill_value, dtype)
        except InvalidMetadataError:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise _bad(f"invalid array metadata: {e}") from None
        if grid.ndim != len(shape):
            raise _bad(
                f"the chunk grid has {grid.ndim} axes but the shape {shape} has {len(shape)}."
            )
        if isinstance(grid, RectilinearChunkGrid):
            for axis, (spec, extent) in enumerate(zip(grid.chunk_shapes, shape, strict=True)):
                if not isinstance(spec, int) and sum(spec) < extent:
                    raise _bad(
                        f"the rectilinear chunk lengths of axis {axis} sum to {sum(spec)}, "
                        f"less than its extent {extent}."
                    )
        names = _dimension_names(self.dimension_names)
        if names is not None and len(names) != len(shape):
            raise _bad(f"{len(names)} dimension names for an array of {len(shape)} axes.")
        if self.attributes is None or not isinstance(self.attributes, Mapping):
            raise _bad(f"attributes must be an object; found {self.attributes!r:.60}")
        codecs = _normalized(tuple(self.codecs), dtype, len(shape))
        set_ = object.__setattr__
        set_(self, "shape", shape)
        set_(self, "data_type", dtype)
        set_(self, "chunk_grid", grid)
        set_(self, "fill_value", fill)
        set_(self, "codecs", codecs)
        set_(self, "dimension_names", names)
        set_(self, "attributes", dict(self.attributes))
        set_(self, "chunk_key_encoding", ChunkKeyEncoding.from_dict(self.chunk_key_encoding))
        set_(self, "storage_transformers", tuple(self.storage_transformers or ()))
        set_(self, "extra_fields", dict(self.extra_fields or {}))

    # ------------------------------------------------------------------ views
    @property
    def dtype(self) -> np.dtype[Any]:
        """The NumPy dtype the array holds (the same as :attr:`data_type`)."""
        return self.data_type

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def zarr_format(self) -> int:
        """Always 3."""
        return 3

    @property
    def chunks(self) -> tuple[int, ...]:
        """The chunk shape of a regular grid (``NotImplementedError`` for a rectilinear one)."""
        if isinstance(self.chunk_grid, RegularChunkGrid):
            return self.chunk_grid.chunk_shape
        raise NotImplementedError("a rectilinear chunk grid has no single chunk shape")

    def encode_chunk_key(self, coords: Sequence[int]) -> str:
        """The store key of the chunk at grid ``coords``."""
        return self.chunk_key_encoding.encode_chunk_key(coords)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The ``zarr.json`` document, as zarr-python's ``ArrayV3Metadata.to_dict`` gives it.

        Returns
        -------
        dict
            A new dict (callers may change it); sequences are tuples, as zarr's are.
        """
        doc: dict[str, Any] = {
            "shape": self.shape,
            "data_type": data_type_to_json(self.data_type),
            "chunk_grid": self.chunk_grid.to_dict(),
            "chunk_key_encoding": self.chunk_key_encoding.to_dict(),
            "fill_value": fill_to_json(self.fill_value, self.data_type),
            "codecs": tuple(_copy(c) for c in self.codecs),
            "attributes": dict(self.attributes),
            "dimension_names": self.dimension_names,
            "zarr_format": 3,
            "node_type": "array",
            "storage_transformers": self.storage_transformers,
        }
        if self.dimension_names is None:
            del doc["dimension_names"]
        doc.update(self.extra_fields)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ArrayMetadata:
        """Read a Zarr v3 array document (``zarr.json``), as zarr-python reads it.

        Parameters
        ----------
        doc : mapping
            The parsed JSON.

        Returns
        -------
        ArrayMetadata

        Raises
        ------
        InvalidMetadataError
            If ``doc`` is not valid Zarr v3 array metadata. (Documents zarr reads only by
            repairing them -- chunk sizes written as floats by old software -- are
            refused here; :func:`virtualizarr.formats.zarr_store.parse_v3_array` hands
            those to zarr.)
        """
        if not isinstance(doc, Mapping):
            raise _bad(f"an array document is a JSON object; found {doc!r:.60}")
        if doc.get("zarr_format") != 3:
            raise _bad(f"expected zarr_format 3; found {doc.get('zarr_format')!r:.20}")
        if doc.get("node_type") != "array":
            raise _bad(f"expected node_type 'array'; found {doc.get('node_type')!r:.20}")
        missing = sorted(
            {"data_type", "shape", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs"}
            - set(doc)
        )
        if missing:
            raise _bad(f"the array document lacks {missing}")
        dtype = data_type_from_json(doc["data_type"])
        try:
            fill = fill_from_json(doc["fill_value"], dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise _bad(f"invalid fill_value {doc['fill_value']!r:.60} for {dtype}: {e}") from None
        codecs = doc["codecs"]
        if isinstance(codecs, str | Mapping) or not isinstance(codecs, Iterable):
            raise _bad(f"codecs must be a list; found {codecs!r:.80}")
        transformers = doc.get("storage_transformers") or ()
        if isinstance(transformers, str | Mapping) or not isinstance(transformers, Iterable):
            raise _bad(f"storage_transformers must be a list; found {transformers!r:.80}")
        return cls(
            shape=doc["shape"],
            data_type=dtype,
            chunk_grid=doc["chunk_grid"],
            fill_value=fill,
            codecs=tuple(codecs),
            dimension_names=doc.get("dimension_names"),
            attributes=doc.get("attributes") or {},
            chunk_key_encoding=doc["chunk_key_encoding"],
            storage_transformers=tuple(transformers),
            extra_fields=_extra_fields(doc),
        )

    # ------------------------------------------------------------------ zarr
    def to_zarr(self) -> Any:
        """This metadata as zarr-python's ``zarr.core.metadata.v3.ArrayV3Metadata``.

        Imports zarr (and registers our codec names with it); for code that hands the
        array to zarr.

        Returns
        -------
        zarr.core.metadata.v3.ArrayV3Metadata

        Raises
        ------
        InvalidMetadataError
            If zarr refuses the document.
        """
        from zarr.core.metadata.v3 import ArrayV3Metadata

        register_zarr_codecs()
        doc = self.to_dict()
        try:
            with warnings.catch_warnings(), rectilinear_grids():
                warnings.simplefilter("ignore")  # zarr: fixed-length bytes "not in the v3 spec"
                return ArrayV3Metadata.from_dict(doc)
        except (TypeError, ValueError, KeyError) as e:
            raise _bad(f"zarr refuses the array metadata {doc!r:.200}: {e}") from e

    @classmethod
    def from_zarr(cls, metadata: Any) -> ArrayMetadata:
        """Convert zarr-python's ``ArrayV3Metadata`` (or anything with its ``to_dict``).

        Examples
        --------
        >>> meta = ArrayMetadata(shape=(2,), data_type=np.dtype("u1"),
        ...     chunk_grid=RegularChunkGrid((2,)), fill_value=0, codecs=[{"name": "bytes"}])
        >>> ArrayMetadata.from_zarr(meta.to_zarr()) == meta
        True
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = metadata.to_dict()
        if isinstance(doc.get("data_type"), Mapping | str):
            return cls.from_dict(doc)
        raise _bad(f"cannot read {type(metadata).__name__} as Zarr v3 array metadata")

    # ------------------------------------------------------------------ identity
    def _key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=repr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayMetadata):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _copy(codec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(codec)
    if "configuration" in out:
        out["configuration"] = dict(out["configuration"])
    return out


_CHAINS: dict[str, tuple[dict[str, Any], ...]] = {}


def _normalized(
    codecs: tuple[Any, ...], dtype: np.dtype[Any], ndim: int
) -> tuple[dict[str, Any], ...]:
    """:func:`normalize_codecs`, remembered: arrays of a dataset share a few chains."""
    key = json.dumps([codecs, dtype.descr if dtype.fields else dtype.str, ndim], default=repr)
    chain = _CHAINS.get(key)
    if chain is None:
        if len(_CHAINS) >= 4096:
            _CHAINS.clear()
        chain = _CHAINS[key] = normalize_codecs(codecs, dtype, ndim)
    return tuple(_copy(c) for c in chain)
