"""``ManifestStore``: a read-only Zarr v3 store that serves virtual arrays.

It answers Zarr's requests from manifests: ``zarr.json`` documents come from each
array's metadata, chunk keys resolve to byte ranges in the source files (read on demand),
inline chunks come from memory, and missing chunks are absent (Zarr fills them with the
array's fill value). Any Zarr reader, xarray's zarr engine included, can read through it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from virtualizarr.io import read_range
from virtualizarr.manifests.array import ManifestArray

__all__ = ["ManifestGroup", "ManifestStore"]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


@dataclass(frozen=True)
class ManifestGroup:
    """A Zarr group of virtual arrays (and, optionally, subgroups)."""

    arrays: Mapping[str, ManifestArray] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    groups: Mapping[str, ManifestGroup] = field(default_factory=dict)


class ManifestStore(Store):
    """A read-only Zarr store whose chunks are byte ranges of other files.

    Parameters
    ----------
    group : ManifestGroup
        The root group.
    array_attrs : mapping, optional
        Extra attributes per array path (for example the CF attributes xarray decodes),
        merged over each array metadata's own attributes.

    Examples
    --------
    >>> import zarr
    >>> store = ManifestStore(ManifestGroup(arrays={"x": some_manifest_array}))  # doctest: +SKIP
    >>> zarr.open_array(store, path="x", mode="r")[:]  # doctest: +SKIP
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self,
        group: ManifestGroup,
        *,
        array_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(read_only=True)
        self._group = group
        self._docs: dict[str, bytes] = {}
        self._arrays: dict[str, ManifestArray] = {}
        self._index(group, "", array_attrs or {})

    def _index(
        self, group: ManifestGroup, prefix: str, array_attrs: Mapping[str, Mapping[str, Any]]
    ) -> None:
        gdoc = {"zarr_format": 3, "node_type": "group", "attributes": dict(group.attrs)}
        self._docs[prefix + "zarr.json"] = json.dumps(gdoc, default=_json_default).encode()
        for name, arr in group.arrays.items():
            path = prefix + name
            doc = arr.metadata.to_dict()
            attrs = dict(doc.get("attributes") or {})
            attrs.update(array_attrs.get(path, {}))
            doc["attributes"] = attrs
            self._docs[path + "/zarr.json"] = json.dumps(doc, default=_json_default).encode()
            self._arrays[path] = arr
        for name, sub in group.groups.items():
            self._index(sub, f"{prefix}{name}/", array_attrs)

    def __eq__(self, value: object) -> bool:
        return isinstance(value, ManifestStore) and value._group is self._group

    def __repr__(self) -> str:
        return f"ManifestStore<{len(self._arrays)} arrays>"

    # ------------------------------------------------------------------ reading
    def _locate(self, key: str) -> tuple[ManifestArray, tuple[int, ...]] | None:
        """The array and chunk coordinates a chunk key names, or None."""
        head, sep, tail = key.rpartition("/c")
        if not sep or head not in self._arrays:
            # scalar arrays use the key "<array>/c"
            if key.endswith("/c") and key[:-2] in self._arrays:
                return self._arrays[key[:-2]], ()
            return None
        arr = self._arrays[head]
        parts = tail.lstrip("/").split("/") if tail else []
        try:
            coords = tuple(int(p) for p in parts)
        except ValueError:
            return None
        grid = arr.manifest.shape_chunk_grid
        if len(coords) != len(grid) or any(not 0 <= c < g for c, g in zip(coords, grid, strict=True)):
            return None
        return arr, coords

    def _read(self, key: str) -> bytes | None:
        doc = self._docs.get(key)
        if doc is not None:
            return doc
        found = self._locate(key)
        if found is None:
            return None
        arr, coords = found
        entry = arr.manifest.get_chunk(coords)
        if entry is None:
            return None
        if isinstance(entry, bytes):
            return entry
        return read_range(entry["path"], entry["offset"], entry["length"])

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Return the bytes of ``key`` (metadata document or chunk), or None if absent."""
        prototype = prototype or default_buffer_prototype()
        data = await asyncio.to_thread(self._read, key)
        if data is None:
            return None
        data = _slice(data, byte_range)
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Fetch several keys (or parts of them) concurrently."""
        return list(
            await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        """True if ``key`` is a metadata document or a present chunk."""
        if key in self._docs:
            return True
        found = self._locate(key)
        return found is not None and found[0].manifest.get_chunk(found[1]) is not None

    # ------------------------------------------------------------------ read-only
    async def set(self, key: str, value: Buffer) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    async def delete(self, key: str) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    async def set_partial_values(
        self, key_start_values: Iterable[tuple[str, int, bytes]]
    ) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    # ------------------------------------------------------------------ listing
    async def list(self) -> AsyncIterator[str]:
        """Every metadata document and present chunk key."""
        for key in self._docs:
            yield key
        for path, arr in self._arrays.items():
            for _, coords in arr.manifest.iter_keys():
                yield f"{path}/c/" + "/".join(map(str, coords)) if coords else f"{path}/c"

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Keys starting with ``prefix``."""
        async for key in self.list():
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Immediate children of ``prefix`` (documents and child nodes)."""
        prefix = prefix.rstrip("/")
        base = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        for key in self._docs:
            if key.startswith(base):
                child = key[len(base) :].split("/", 1)[0]
                if child not in seen:
                    seen.add(child)
                    yield child


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :]
    raise TypeError(f"unexpected byte range {byte_range!r}")
