"""Reader for Zarr v3 manifest stores written by ``ds.virtualize.to_zarr``.

See :mod:`virtualizarr.writers.zarr` for the layout. Each array's ``manifest.json`` gives
its referenced chunks; chunk files inside the store (inline chunks, loaded variables) are
read into memory as inline chunks; attributes get back the NumPy types recorded in the
``"virtualizarr"`` extension field. Relative manifest paths resolve against the array's
directory.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.attrtypes import restore_attrs
from virtualizarr.errors import (
    InvalidReferencesError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
)
from virtualizarr.identity import localize_group
from virtualizarr.io import is_local, local_path, to_uri
from virtualizarr.manifests import ChunkManifest, ManifestArray, cf_encoding_attrs
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.manifests.metadata import chunk_grid_shape, metadata_chunks
from virtualizarr.readers._bulk import parse_chunk_keys, parse_ints
from virtualizarr.readers.base import (
    DOCUMENT_ERRORS,
    VirtualGroup,
    VirtualVariable,
    check_dimension_sizes,
    check_grid_cells,
    guard_document,
    register_reader,
)
from virtualizarr.security import ReferenceLimits, SourcePolicy, check_references
from virtualizarr.writers.zarr import MANIFEST_TRANSFORMER

__all__ = ["ZarrManifestReader", "open_manifest_store"]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidReferencesError(f"{path} is missing from the manifest store.") from None
    except OSError as e:
        raise InvalidReferencesError(f"{path} could not be read: {e}.") from None
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise InvalidReferencesError(f"{path} is not valid JSON: {e}.") from None


def _resolve(p: str, base: Path) -> str:
    if "://" in p or p.startswith("/"):
        return p if "://" in p else Path(p).as_uri()
    return (base / p).resolve().as_uri()


def _object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object (``{}`` for null/absent), or an error naming what it should be."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidReferencesError(f"{what} must be a JSON object; found {value!r:.80}.")
    return value


def _dtype_record(ext: dict[str, Any]) -> dict[str, Any] | None:
    record = ext.get("attribute_dtypes")
    return record if isinstance(record, dict) else None


def _array_names(root: Path, ext: dict[str, Any]) -> list[str]:
    """The group's arrays: its recorded list, else its subdirectories that are arrays."""
    names = ext.get("arrays")
    if names is None:
        found = []
        for d in sorted(root.iterdir()):
            if (d / "zarr.json").is_file():
                doc = _load_json(d / "zarr.json")
                if isinstance(doc, dict) and doc.get("node_type") == "array":
                    found.append(d.name)
        return found
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n
        for n in names
    ):
        raise InvalidReferencesError(
            f"{root}/zarr.json: 'virtualizarr.arrays' must list the names of the group's "
            f"array directories; found {names!r:.120}."
        )
    return names


def _read_array(adir: Path, name: str) -> VirtualVariable:
    doc = _load_json(adir / "zarr.json")
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        raise InvalidReferencesError(f"{adir}/zarr.json does not describe a Zarr v3 array.")
    doc = dict(doc)
    ext = _object(doc.pop("virtualizarr", None), f"{adir}/zarr.json: 'virtualizarr'")
    transformers = doc.pop("storage_transformers", None) or []
    raw_attrs = _object(doc.pop("attributes", None), f"{adir}/zarr.json: 'attributes'")
    attrs = restore_attrs(raw_attrs, _dtype_record(ext))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = ArrayV3Metadata.from_dict(doc)
    except (*DOCUMENT_ERRORS, NotImplementedError) as e:
        raise InvalidReferencesError(f"{adir}/zarr.json: invalid array metadata ({e}).") from None
    if not isinstance(transformers, list):
        raise InvalidReferencesError(
            f"{adir}/zarr.json: 'storage_transformers' must be a list; found {transformers!r:.80}."
        )
    manifest_doc: dict[str, Any] = {}
    for t in transformers:
        if not isinstance(t, dict) or t.get("name") != MANIFEST_TRANSFORMER:
            label = t.get("name") if isinstance(t, dict) else t
            raise UnsupportedFeatureError(
                f"{adir}/zarr.json uses the storage transformer {label!r:.80}; only "
                f"{MANIFEST_TRANSFORMER!r} is supported."
            )
        conf = _object(t.get("configuration"), f"{adir}/zarr.json: the transformer configuration")
        rel = conf.get("manifest", "./manifest.json")
        if not isinstance(rel, str):
            raise InvalidReferencesError(
                f"{adir}/zarr.json: the manifest location must be a relative path string; "
                f"found {rel!r:.80}."
            )
        loaded = _load_json(adir / rel)
        if not isinstance(loaded, dict):
            raise InvalidReferencesError(f"{adir / rel}: a manifest is a JSON object.")
        manifest_doc.update(loaded)
    shape = chunk_grid_shape(meta.shape, metadata_chunks(meta))
    chunk_files = sorted(_chunk_files(adir))
    check_grid_cells(
        shape, len(manifest_doc) + len(chunk_files), f"{adir} ({name!r})", InvalidReferencesError
    )
    ids = np.full(shape, MISSING, np.int32)
    offs = np.zeros(shape, np.uint64)
    lens = np.zeros(shape, np.uint64)
    table: dict[str, int] = {}
    enc = meta.chunk_key_encoding

    def coords_of(key: str) -> tuple[int, ...]:
        try:
            c = tuple(int(i) for i in enc.decode_chunk_key(key))
        except (ValueError, TypeError):
            c = (-1,)
        if not shape:
            c = () if key in ("c", "0") else (-1,)
        if len(c) != len(shape) or any(not 0 <= i < g for i, g in zip(c, shape, strict=True)):
            raise InvalidReferencesError(
                f"{adir}: chunk key {key!r} is not a chunk of {name!r} (grid {shape})."
            )
        return c

    bulk = _bulk_refs(manifest_doc, shape, meta, adir)
    if bulk is not None:
        ids, offs, lens, table = bulk
    for key, entry in manifest_doc.items() if bulk is None else ():
        c = coords_of(key)
        try:
            path = _resolve(str(entry["path"]), adir)
            off, n = int(entry["offset"]), int(entry["length"])
            if off < 0 or n < 0:
                raise ValueError("negative offset or length")
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidReferencesError(
                f"{adir}/manifest.json: entry {key!r} must be {{'path', 'offset', 'length'}} "
                f"({e}); found {entry!r:.200}."
            ) from None
        ids[c] = table.setdefault(path, len(table))
        offs[c] = off
        lens[c] = n
    inline: list[bytes] = []
    for f in chunk_files:
        key = f.relative_to(adir).as_posix()
        if key in manifest_doc:
            continue
        c = coords_of(key)
        ids[c] = -2 - len(inline)
        inline.append(f.read_bytes())
    manifest = ChunkManifest(list(table), ids, offs, lens, inline)
    dims = tuple(str(d) for d in (meta.dimension_names or [f"dim_{i}" for i in range(len(shape))]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = ArrayV3Metadata.from_dict({**meta.to_dict(), "attributes": {}})
    data = ManifestArray(meta, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims=dims, data=data, attrs=attrs)


def _bulk_refs(
    doc: dict[str, Any], shape: tuple[int, ...], meta: ArrayV3Metadata, adir: Path
) -> tuple[Any, Any, Any, dict[str, int]] | None:
    """Path ids, offsets, lengths and path table of a manifest, built in bulk.

    Returns None -- and the caller walks the entries one by one, with its precise error
    messages -- unless every entry is a well-formed reference inside the grid.
    """
    enc = meta.chunk_key_encoding.to_dict()
    config = enc.get("configuration")
    if not isinstance(config, dict):
        config = {}
    sep = str(config.get("separator", "/" if enc.get("name") == "default" else "."))
    prefix = "c" + sep if enc.get("name") == "default" else "" if enc.get("name") == "v2" else None
    if not shape or not doc or prefix is None:
        return None
    values = list(doc.values())
    if set(map(type, values)) != {dict} or set(map(len, values)) != {3}:
        return None
    try:
        paths = list(map(itemgetter("path"), values))
        offs = parse_ints(list(map(itemgetter("offset"), values)))
        lens = parse_ints(list(map(itemgetter("length"), values)))
    except KeyError:
        return None
    coords = parse_chunk_keys(list(doc), sep, shape, prefix)
    if coords is None or offs is None or lens is None or set(map(type, paths)) != {str}:
        return None
    table: dict[str, int] = {}
    by_raw = {p: table.setdefault(_resolve(p, adir), len(table)) for p in dict.fromkeys(paths)}
    where = tuple(coords.T)
    ids = np.full(shape, MISSING, np.int32)
    out_offs = np.zeros(shape, np.uint64)
    out_lens = np.zeros(shape, np.uint64)
    ids[where] = [by_raw[p] for p in paths]
    out_offs[where] = offs
    out_lens[where] = lens
    return ids, out_offs, out_lens, table


def _chunk_files(adir: Path) -> Iterable[Path]:
    for dirpath, _, files in os.walk(adir):
        for fn in files:
            if fn not in ("zarr.json", "manifest.json"):
                yield Path(dirpath) / fn


def open_manifest_store(
    path: str,
    *,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> VirtualGroup:
    """Read a manifest store (or one of its groups) as a :class:`VirtualGroup`.

    Parameters
    ----------
    path : str
        The store's directory (local path or ``file://`` URI).
    group : str, optional
        A subgroup path.
    drop_variables : iterable of str
        Arrays to leave out.
    allowed_sources : str, iterable of str or SourcePolicy, optional
        Protocols and URL prefixes the manifests may point at (see
        :mod:`virtualizarr.security`); None for the default policy.
    limits : ReferenceLimits, optional
        Size limits on the store's references.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    InvalidReferencesError
        If a document is missing or malformed.
    UntrustedReferenceError
        If the manifests point outside ``allowed_sources`` or exceed ``limits``.
    """
    root = Path(local_path(path))
    if group:
        root = root / group.strip("/")
    gdoc = _load_json(root / "zarr.json")
    if not isinstance(gdoc, dict) or gdoc.get("node_type") != "group":
        raise InvalidReferencesError(f"{root}/zarr.json does not describe a Zarr v3 group.")
    ext = _object(gdoc.get("virtualizarr"), f"{root}/zarr.json: 'virtualizarr'")
    names = _array_names(root, ext)
    drop = set(drop_variables)
    variables = {
        n: guard_document(str(root), f"array {n!r}", partial(_read_array, root / n, n))
        for n in names
        if n not in drop
    }
    check_dimension_sizes(variables, str(root), InvalidReferencesError)
    raw_attrs = _object(gdoc.get("attributes"), f"{root}/zarr.json: 'attributes'")
    attrs = guard_document(
        str(root), "the group attributes", partial(restore_attrs, raw_attrs, _dtype_record(ext))
    )
    # paths were resolved against each array's directory; so are the identity record's keys
    array_dir = f"{to_uri(str(root)).rstrip('/')}/_/zarr.json"
    vgroup = localize_group(VirtualGroup(variables=variables, attrs=attrs), array_dir, ext)
    check_references(vgroup, to_uri(str(root)), allowed_sources, limits)
    return vgroup


class ZarrManifestReader:
    """Read Zarr v3 manifest stores (directories with a ``zarr.json``).

    Examples
    --------
    >>> ZarrManifestReader().guess_can_open(b"", "/no/such/dir")
    False
    """

    name = "zarr"

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True if ``path`` is a local directory holding a ``zarr.json``.

        Parameters
        ----------
        magic : bytes
            Unused (directories have no magic bytes).
        path : str

        Returns
        -------
        bool
        """
        return is_local(path) and os.path.isfile(os.path.join(local_path(path), "zarr.json"))

    def open(
        self,
        path: str,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
        **options: Any,
    ) -> VirtualGroup:
        """Read the manifest store at ``path``.

        Parameters
        ----------
        path : str
        group : str, optional
        drop_variables : iterable of str
        allowed_sources : str, iterable of str or SourcePolicy, optional
            See :func:`open_manifest_store`.
        limits : ReferenceLimits, optional
            See :func:`open_manifest_store`.
        **options
            None are accepted.

        Returns
        -------
        VirtualGroup
        """
        if options:
            raise UnexpectedOptionError(
                "the zarr manifest reader takes no options beyond group, drop_variables, "
                f"allowed_sources and limits; found {sorted(options)}. Remove them."
            )
        return open_manifest_store(
            path,
            group=group,
            drop_variables=drop_variables,
            allowed_sources=allowed_sources,
            limits=limits,
        )


register_reader(ZarrManifestReader())
