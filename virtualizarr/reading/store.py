"""``ManifestStore``: a read-only Zarr v3 store that serves virtual arrays.

It answers Zarr's requests from manifests: ``zarr.json`` documents come from each
array's metadata, chunk keys resolve to byte ranges in the source files (read on demand),
inline chunks come from memory, and missing chunks are absent (Zarr fills them with the
array's fill value). Any Zarr reader, xarray's zarr engine included, can read through it.

Reading
-------
Zarr asks for chunks one ``get`` at a time but many at once (``asyncio.gather``). The
store collects the requests issued in one turn of the event loop, groups them by file,
merges ranges that are adjacent or close (gap at most ``max_gap`` bytes, merged span at
most ``max_span``), and reads each merged range once in a worker thread. Local files are
read with ``os.pread`` on file descriptors kept open for the store's lifetime (no fsspec,
no reopen per chunk); other URLs through fsspec (:class:`~virtualizarr.io.files.FileCache`).
The synchronous ``get_sync`` reads one range directly. Failures raise
:class:`~virtualizarr.errors.ChunkReadError` naming the file and the chunk key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from xarray.backends.zarr import FillValueCoder
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from virtualizarr.errors import ChunkReadError
from virtualizarr.formats.attrs import attrs_to_json, dumps
from virtualizarr.io.files import FileCache
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.chunk_codecs import register_zarr_codecs
from virtualizarr.manifests.group import VirtualGroup
from virtualizarr.reading.native import MAX_GAP, MAX_SPAN

__all__ = ["ManifestStore"]

register_zarr_codecs()  # zarr reads what we serve: it must know our codec names


def _zarr_attrs(attrs: Mapping[str, Any], arr: ManifestArray) -> dict[str, Any]:
    """Attributes as xarray's zarr engine (Zarr v3) expects them (``_FillValue`` coded)."""
    out = attrs_to_json({k: v for k, v in attrs.items() if k != "_FillValue"})
    if "_FillValue" in attrs:
        try:
            out["_FillValue"] = FillValueCoder.encode(attrs["_FillValue"], arr.dtype)
        except (TypeError, ValueError):
            out["_FillValue"] = attrs_to_json({"v": attrs["_FillValue"]})["v"]
    return out


_Request = tuple[int, int, str, "asyncio.Future[bytes]"]


class _Batcher:
    """Collects the range requests of one event-loop turn and reads them coalesced."""

    def __init__(self, files: FileCache, max_gap: int, max_span: int) -> None:
        self._files = files
        self._max_gap = max_gap
        self._max_span = max_span
        self._pending: dict[asyncio.AbstractEventLoop, dict[str, list[_Request]]] = {}

    async def read(self, url: str, offset: int, length: int, key: str) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = {}
            loop.call_soon(self._flush, loop)
        pending.setdefault(url, []).append((offset, length, key, fut))
        return await fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = self._pending.pop(loop, {})
        for url, reqs in pending.items():
            reqs.sort(key=lambda r: r[0])
            group: list[_Request] = []
            start = end = 0
            for r in reqs:
                off, length = r[0], r[1]
                if (
                    group
                    and off - end <= self._max_gap
                    and max(end, off + length) - start <= (self._max_span)
                ):
                    end = max(end, off + length)
                    group.append(r)
                    continue
                if group:
                    loop.create_task(self._run(url, start, end, group))
                group, start, end = [r], off, off + length
            if group:
                loop.create_task(self._run(url, start, end, group))

    async def _run(self, url: str, start: int, end: int, group: list[_Request]) -> None:
        try:
            data = await asyncio.to_thread(self._files.read, url, start, end - start)
        except ChunkReadError as e:
            for _, _, key, fut in group:
                if not fut.done():
                    fut.set_exception(ChunkReadError(f"chunk {key!r}: {e}"))
            return
        except BaseException as e:  # pragma: no cover - surfaced to every waiter
            for *_, fut in group:
                if not fut.done():
                    fut.set_exception(e)
            return
        for off, length, _, fut in group:
            if not fut.done():
                fut.set_result(data[off - start : off - start + length])


class ManifestStore(Store):
    """A read-only Zarr store whose chunks are byte ranges of other files.

    Parameters
    ----------
    group : VirtualGroup
        The root group: each variable becomes an array with the variable's attributes
        and dimension names; subgroups become groups.
    max_gap : int, optional
        Requests for ranges of one file closer than this (bytes) are read as one range.
    max_span : int, optional
        Largest merged range, in bytes.
    storage_options : mapping, optional
        fsspec options for remote sources (credentials, endpoint).

    Examples
    --------
    >>> import zarr
    >>> store = ManifestStore(VirtualGroup({"x": VirtualVariable(("x",), arr)}))  # doctest: +SKIP
    >>> zarr.open_array(store, path="x", mode="r")[:]  # doctest: +SKIP
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self,
        group: VirtualGroup,
        *,
        max_gap: int = MAX_GAP,
        max_span: int = MAX_SPAN,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(read_only=True)
        self._group = group
        self._docs: dict[str, bytes] = {}
        self._arrays: dict[str, ManifestArray] = {}
        self._files = FileCache(storage_options=storage_options)
        self._batcher = _Batcher(self._files, max_gap, max_span)
        self._index(group, "")

    def _index(self, group: VirtualGroup, prefix: str) -> None:
        gdoc = {"zarr_format": 3, "node_type": "group", "attributes": attrs_to_json(group.attrs)}
        self._docs[prefix + "zarr.json"] = dumps(gdoc)
        for name, var in group.variables.items():
            path = prefix + name
            arr = var.data
            doc = arr.metadata.to_dict()
            attrs: dict[str, Any] = {**arr.metadata.attributes, **var.attrs}
            doc["attributes"] = _zarr_attrs(attrs, arr)
            doc["dimension_names"] = list(var.dims)
            self._docs[path + "/zarr.json"] = dumps(doc)
            self._arrays[path] = arr
        for name, sub in group.groups.items():
            self._index(sub, f"{prefix}{name}/")

    def __eq__(self, value: object) -> bool:
        return isinstance(value, ManifestStore) and value._group is self._group

    def __hash__(self) -> int:
        return id(self._group)

    def __repr__(self) -> str:
        return f"ManifestStore<{len(self._arrays)} arrays>"

    def close(self) -> None:
        """Close the files the store keeps open."""
        self._files.close()
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "group": self._group,
            "docs": self._docs,
            "arrays": self._arrays,
            "limits": (self._batcher._max_gap, self._batcher._max_span),
            "storage_options": self._files.storage_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Store.__init__(self, read_only=True)
        self._group = state["group"]
        self._docs = state["docs"]
        self._arrays = state["arrays"]
        self._files = FileCache(storage_options=state.get("storage_options"))
        self._batcher = _Batcher(self._files, *state.get("limits", (MAX_GAP, MAX_SPAN)))

    # ------------------------------------------------------------------ reading
    def _locate(self, key: str) -> tuple[ManifestArray, tuple[int, ...]] | None:
        """The array and chunk coordinates a chunk key names, or None."""
        head, sep, tail = key.rpartition("/c")
        if not sep or head not in self._arrays:
            # scalar arrays use the key "<array>/c"
            if key.endswith("/c") and key[:-2] in self._arrays:
                return self._arrays[key[:-2]], ()
            head, sep, tail = key.partition("/c/")
            if not sep or head not in self._arrays:
                return None
            tail = "/" + tail
        arr = self._arrays[head]
        parts = tail.lstrip("/").split("/") if tail else []
        try:
            coords = tuple(int(p) for p in parts)
        except ValueError:
            return None
        grid = arr.manifest.shape_chunk_grid
        if len(coords) != len(grid) or any(
            not 0 <= c < g for c, g in zip(coords, grid, strict=True)
        ):
            return None
        return arr, coords

    def _lookup(self, key: str) -> bytes | tuple[str, int, int] | None:
        """A document or inline chunk (bytes), a byte range to read, or None (absent)."""
        doc = self._docs.get(key)
        if doc is not None:
            return doc
        found = self._locate(key)
        if found is None:
            return None
        arr, coords = found
        entry = arr.manifest.get_chunk(coords)
        if entry is None or isinstance(entry, bytes):
            return entry
        return entry["path"], entry["offset"], entry["length"]

    def _read_sync(self, key: str) -> bytes | None:
        found = self._lookup(key)
        if found is None or isinstance(found, bytes):
            return found
        try:
            return self._files.read(*found)
        except ChunkReadError as e:
            raise ChunkReadError(f"chunk {key!r}: {e}") from e

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Synchronous :meth:`get` (one range, read in the calling thread)."""
        data = self._read_sync(key)
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(_slice(data, byte_range))

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Return the bytes of ``key`` (metadata document or chunk), or None if absent.

        Parameters
        ----------
        key : str
        prototype : BufferPrototype, optional
        byte_range : ByteRequest, optional

        Returns
        -------
        Buffer or None

        Raises
        ------
        ChunkReadError
            If a referenced file is missing or shorter than the chunk's range.
        """
        prototype = prototype or default_buffer_prototype()
        found = self._lookup(key)
        if found is None:
            return None
        if isinstance(found, bytes):
            data = found
        else:
            url, offset, length = found
            data = await self._batcher.read(url, offset, length, key)
        return prototype.buffer.from_bytes(_slice(data, byte_range))

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Fetch several keys (or parts of them) concurrently, coalescing their reads."""
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

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

    def set_sync(self, key: str, value: Buffer) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    async def delete(self, key: str) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    def delete_sync(self, key: str) -> None:
        """Refused: the store is read-only."""
        self._check_writable()

    async def set_partial_values(self, key_start_values: Iterable[tuple[str, int, bytes]]) -> None:
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
