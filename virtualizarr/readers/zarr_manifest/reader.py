"""Reader for Zarr v3 manifest stores written by ``ds.virtualize.to_zarr``.

See :mod:`virtualizarr.formats.manifest_store` for the layout. Each virtual array's
manifest gives its referenced chunks: a binary manifest becomes a lazy manifest (its path
table read now, its columns on the first chunk read:
:mod:`~virtualizarr.readers.zarr_manifest.binary`), a ``manifest.json`` is parsed now;
chunk files inside the store (inline chunks, loaded variables) are read into memory as
inline chunks; attributes get back the NumPy types recorded in the ``"virtualizarr"``
extension field. Relative manifest paths resolve against the array's directory -- a local
directory, or the store's URL when it is read from object storage
(``s3://bucket/refs.zarr``: one listing of the store's keys, then its documents and chunk
files fetched concurrently) or from a web server (``https://host/dir/refs.zarr``: no
listing; every file fetched by the key the documents record, each GET cut off at its size
limit). See :mod:`~virtualizarr.readers.zarr_manifest.files`. References in a store read
from a remote location are checked like any remote references
(:mod:`virtualizarr.security`): by default they may not point at local files.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from functools import partial
from operator import itemgetter
from typing import Any

import numpy as np

from virtualizarr.errors import (
    InvalidReferencesError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.formats.attrs import restore_attrs
from virtualizarr.formats.chunk_keys import parse_chunk_keys, parse_ints
from virtualizarr.formats.manifest_store import (
    BINARY_TRANSFORMER,
    EXTENSION,
    MANIFEST_TRANSFORMER,
    ROOT_METADATA,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import (
    MISSING,
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    check_dimension_sizes,
)
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.metadata import chunk_grid_shape, metadata_chunks
from virtualizarr.readers.base import (
    DOCUMENT_ERRORS,
    Probe,
    Source,
    check_grid_cells,
    guard_document,
    require_location,
)
from virtualizarr.readers.references import localize_group
from virtualizarr.readers.zarr_manifest.binary import (
    BinaryManifest,
    check_path_table,
    lazy_manifest,
    parse_binary_config,
)
from virtualizarr.readers.zarr_manifest.files import StoreFiles, old_store_error, store_files
from virtualizarr.security import ReferenceLimits, SourcePolicy, check_references

__all__ = ["READER", "ZarrManifestReader", "open_manifest_store"]


def _load_json(files: StoreFiles, key: str) -> Any:
    where = files.label(key)
    try:
        return json.loads(files.read_document(key))
    except FileNotFoundError:
        raise InvalidReferencesError(
            f"{where} is missing from the manifest store; expected the store's documents "
            "there. Check the URL, or rewrite the store."
        ) from None
    except UntrustedReferenceError:  # over a limit (a PermissionError, so an OSError)
        raise
    except OSError as e:
        raise InvalidReferencesError(f"{where} could not be read: {e}.") from None
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise InvalidReferencesError(f"{where} is not valid JSON: {e}.") from None


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


def _array_names(files: StoreFiles, ext: dict[str, Any]) -> list[str]:
    """The group's arrays: its recorded list, else its subdirectories that are arrays."""
    names = ext.get("arrays")
    if names is None:
        if not files.listable:
            raise old_store_error(files.label("zarr.json"), "'virtualizarr.arrays'")
        found = []
        for d in files.subdirectories():
            if files.is_array(d):
                doc = _load_json(files, f"{d}/zarr.json")
                if isinstance(doc, dict) and doc.get("node_type") == "array":
                    found.append(d)
        return found
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n
        for n in names
    ):
        raise InvalidReferencesError(
            f"{files.label('zarr.json')}: 'virtualizarr.arrays' must list the names of the "
            f"group's array directories; found {names!r:.120}."
        )
    return names


def _manifest_key(files: StoreFiles, name: str, rel: str) -> str:
    """The store key of an array's manifest, refusing locations outside the store."""
    key = posixpath.normpath(f"{name}/{rel}")
    if rel.startswith("/") or "://" in rel or key == ".." or key.startswith("../"):
        raise InvalidReferencesError(
            f"{files.label(name)}/zarr.json: the manifest location must be a path inside "
            f"the store, relative to the array (like './manifest.json'); found {rel!r:.80}."
        )
    return key


def _array_metadata(adir: str, doc: dict[str, Any]) -> ArrayMetadata:
    """The metadata of an array document (our extension and attributes removed)."""
    try:
        return ArrayMetadata.from_dict(doc)
    except (*DOCUMENT_ERRORS, NotImplementedError) as e:
        raise InvalidReferencesError(f"{adir}/zarr.json: invalid array metadata ({e}).") from None


def _manifests(
    files: StoreFiles, name: str, transformers: Any
) -> tuple[dict[str, Any], BinaryManifest | None, set[str]]:
    """An array's storage transformers read: the entries of its JSON manifests (merged),
    or its binary manifest's configuration; and the store keys of the manifest files."""
    adir = files.label(name)
    if not isinstance(transformers, list):
        raise InvalidReferencesError(
            f"{adir}/zarr.json: 'storage_transformers' must be a list; found {transformers!r:.80}."
        )
    manifest_doc: dict[str, Any] = {}
    manifest_keys: set[str] = set()
    names = [t.get("name") if isinstance(t, dict) else t for t in transformers]
    if BINARY_TRANSFORMER in names:
        if len(names) != 1:
            raise UnsupportedFeatureError(
                f"{adir}/zarr.json lists the storage transformers {names!r:.120}; a binary "
                f"manifest ({BINARY_TRANSFORMER!r}) must be the array's only one."
            )
        conf = _object(transformers[0].get("configuration"), f"{adir}/zarr.json: configuration")
        cfg = parse_binary_config(adir, name, conf)
        return manifest_doc, cfg, {cfg.paths_key, cfg.columns_key}
    for t, label in zip(transformers, names, strict=True):
        if label != MANIFEST_TRANSFORMER:
            raise UnsupportedFeatureError(
                f"{adir}/zarr.json uses the storage transformer {label!r:.80}; only "
                f"{BINARY_TRANSFORMER!r} and {MANIFEST_TRANSFORMER!r} are supported."
            )
        conf = _object(t.get("configuration"), f"{adir}/zarr.json: the transformer configuration")
        rel = conf.get("manifest", "./manifest.json")
        if not isinstance(rel, str):
            raise InvalidReferencesError(
                f"{adir}/zarr.json: the manifest location must be a relative path string; "
                f"found {rel!r:.80}."
            )
        key = _manifest_key(files, name, rel)
        manifest_keys.add(key)
        loaded = _load_json(files, key)
        if not isinstance(loaded, dict):
            raise InvalidReferencesError(f"{files.label(key)}: a manifest is a JSON object.")
        manifest_doc.update(loaded)
    return manifest_doc, None, manifest_keys


def _coords_of(enc: Any, shape: tuple[int, ...], adir: str, name: str, key: str) -> tuple[int, ...]:
    """Grid coordinates of a chunk key of the array, or an error naming it."""
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


def _read_array(files: StoreFiles, name: str) -> VirtualVariable:
    adir = files.label(name)
    doc = _load_json(files, f"{name}/zarr.json")
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        raise InvalidReferencesError(f"{adir}/zarr.json does not describe a Zarr v3 array.")
    doc = dict(doc)
    ext = _object(doc.pop("virtualizarr", None), f"{adir}/zarr.json: 'virtualizarr'")
    transformers = doc.pop("storage_transformers", None) or []
    raw_attrs = _object(doc.pop("attributes", None), f"{adir}/zarr.json: 'attributes'")
    attrs = restore_attrs(raw_attrs, _dtype_record(ext))
    meta = _array_metadata(adir, doc)  # without attributes: they travel beside the array
    manifest_doc, binary, manifest_keys = _manifests(files, name, transformers)
    shape = chunk_grid_shape(meta.shape, metadata_chunks(meta))
    # every other file in the array's directory is a chunk (a manifest kept there is not)
    chunk_files = [k for k in files.chunk_files(name, ext) if f"{name}/{k}" not in manifest_keys]
    stored = (binary.references if binary else len(manifest_doc)) + len(chunk_files)
    check_grid_cells(shape, stored, f"{adir} ({name!r})", InvalidReferencesError)
    coords_of = partial(_coords_of, meta.chunk_key_encoding, shape, adir, name)
    if binary is not None:
        table = check_path_table(files.label(binary.paths_key), _load_json(files, binary.paths_key))
        cells = [coords_of(k) for k in chunk_files]
        paths = [files.resolve(p, name) for p in table]
        inline = files.read_chunks(name, chunk_files)
        manifest = lazy_manifest(files, binary, paths, shape, cells, inline)
    else:
        manifest = _json_manifest(files, name, manifest_doc, shape, meta, chunk_files)
    dims = tuple(str(d) for d in (meta.dimension_names or [f"dim_{i}" for i in range(len(shape))]))
    data = ManifestArray(meta, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims=dims, data=data, attrs=attrs)


def _json_manifest(
    files: StoreFiles,
    name: str,
    manifest_doc: dict[str, Any],
    shape: tuple[int, ...],
    meta: ArrayMetadata,
    chunk_files: list[str],
) -> ChunkManifest:
    """The manifest of an array's JSON manifest entries and chunk files (read now)."""
    adir = files.label(name)
    coords_of = partial(_coords_of, meta.chunk_key_encoding, shape, adir, name)
    ids = np.full(shape, MISSING, np.int32)
    offs = np.zeros(shape, np.uint64)
    lens = np.zeros(shape, np.uint64)
    table: dict[str, int] = {}
    bulk = _bulk_refs(manifest_doc, shape, meta, partial(files.resolve, name=name))
    if bulk is not None:
        ids, offs, lens, table = bulk
    for key, entry in manifest_doc.items() if bulk is None else ():
        c = coords_of(key)
        try:
            path = files.resolve(str(entry["path"]), name)
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
    inline_keys = [key for key in chunk_files if key not in manifest_doc]
    for i, key in enumerate(inline_keys):
        ids[coords_of(key)] = -2 - i
    inline = files.read_chunks(name, inline_keys)
    return ChunkManifest(list(table), ids, offs, lens, inline)


def _bulk_refs(
    doc: dict[str, Any],
    shape: tuple[int, ...],
    meta: ArrayMetadata,
    resolve: Callable[[str], str],
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
    by_raw = {p: table.setdefault(resolve(p), len(table)) for p in dict.fromkeys(paths)}
    where = tuple(coords.T)
    ids = np.full(shape, MISSING, np.int32)
    out_offs = np.zeros(shape, np.uint64)
    out_lens = np.zeros(shape, np.uint64)
    ids[where] = [by_raw[p] for p in paths]
    out_offs[where] = offs
    out_lens[where] = lens
    return ids, out_offs, out_lens, table


def open_manifest_store(
    location: Location,
    *,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
    subgroups: bool = False,
) -> VirtualGroup:
    """Read a manifest store (or one of its groups) as a :class:`VirtualGroup`.

    A store on object storage is listed once; the documents and chunk files of the arrays
    read are then fetched concurrently. A store over HTTP(S), which cannot be listed, is
    read by known keys: its arrays from the root's ``"virtualizarr"."arrays"`` record and
    each array's chunk files from its ``"virtualizarr"."chunk_files"`` record; every GET
    is cut off past its limit. Relative paths in its manifests resolve against the
    array's URL, and the source policy treats it as references loaded from a remote
    location (by default they may not point at local files).

    Parameters
    ----------
    location : Location
        The store's directory, local or remote (``s3://bucket/refs.zarr``,
        ``https://host/dir/refs.zarr``).
    group : str, optional
        A subgroup path.
    drop_variables : iterable of str
        Arrays to leave out (their files are not read).
    allowed_sources : str, iterable of str or SourcePolicy, optional
        Protocols and URL prefixes the manifests may point at (see
        :mod:`virtualizarr.security`); None for the default policy.
    limits : ReferenceLimits, optional
        Size limits on the store's references; ``max_document_bytes`` bounds each
        ``zarr.json`` and ``manifest.json``.
    subgroups : bool
        Also read the groups below it, nested: those its ``"virtualizarr"."groups"``
        record names, or (a store without the record, on local disk or object storage)
        its subdirectories that are groups.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    InvalidReferencesError
        If a document is missing or malformed, a remote store cannot be listed or read,
        or a store read over HTTP(S) lacks the records that replace a listing (written by
        an older virtualizarr: rewrite it).
    UntrustedReferenceError
        If the manifests point outside ``allowed_sources`` or exceed ``limits``.

    Examples
    --------
    >>> vgroup = open_manifest_store(Location("s3://bucket/refs.zarr", so))  # doctest: +SKIP
    """
    files = store_files(location, group, limits)
    vgroup = _read_group(files, set(drop_variables), subgroups)
    check_references(vgroup, files.uri, allowed_sources, limits)
    return vgroup


def _group_names(files: StoreFiles, ext: dict[str, Any], arrays: list[str]) -> list[str]:
    """The group's subgroups: its recorded list, else its subdirectories that are groups."""
    names = ext.get("groups")
    if names is None:
        if not files.listable:
            return []  # written before groups were: a store of one group
        found = []
        for d in files.subdirectories():
            if d not in arrays and files.size(f"{d}/zarr.json") is not None:
                doc = _load_json(files, f"{d}/zarr.json")
                if isinstance(doc, dict) and doc.get("node_type") == "group":
                    found.append(d)
        return found
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n
        for n in names
    ):
        raise InvalidReferencesError(
            f"{files.label('zarr.json')}: 'virtualizarr.groups' must list the names of the "
            f"group's subgroup directories; found {names!r:.120}."
        )
    return names


def _read_group(files: StoreFiles, drop: set[str], subgroups: bool) -> VirtualGroup:
    """One group of the store (and the groups below it), its paths made absolute."""
    root = files.label()
    gdoc = _load_json(files, "zarr.json")
    if not isinstance(gdoc, dict) or gdoc.get("node_type") != "group":
        raise InvalidReferencesError(f"{root}/zarr.json does not describe a Zarr v3 group.")
    ext = _object(gdoc.get("virtualizarr"), f"{root}/zarr.json: 'virtualizarr'")
    names = _array_names(files, ext)
    wanted = [n for n in names if n not in drop]
    files.prefetch(wanted)
    variables = {
        n: guard_document(root, f"array {n!r}", partial(_read_array, files, n)) for n in wanted
    }
    check_dimension_sizes(variables, root, InvalidReferencesError)
    raw_attrs = _object(gdoc.get("attributes"), f"{root}/zarr.json: 'attributes'")
    attrs = guard_document(
        root, "the group attributes", partial(restore_attrs, raw_attrs, _dtype_record(ext))
    )
    groups: dict[str, VirtualGroup] = {}
    if subgroups:
        for name in _group_names(files, ext, names):
            groups[name] = _read_group(files.sub(name), drop, True)
    # paths were resolved against each array's directory; so are the identity record's keys
    array_dir = f"{files.uri.rstrip('/')}/_/zarr.json"
    local = localize_group(VirtualGroup(variables=variables, attrs=attrs), array_dir, ext)
    return VirtualGroup(local.variables, local.attrs, groups)


_ROOT_PROBE_BYTES = 16 << 20
"""Bytes of a root ``zarr.json`` searched for our record (stores written before the record
came first put it after the group's attributes, which can be long)."""


class ZarrManifestReader:
    """Read Zarr v3 manifest stores (directories with our ``zarr.json``), local or remote.

    Examples
    --------
    >>> ZarrManifestReader().guess_can_open(Probe(Location("file:///no/such/dir")))
    Traceback (most recent call last):
    ...
    virtualizarr.errors.SourceNotFoundError: /no/such/dir does not exist; check the path.
    """

    name = "manifest_store"
    aliases: tuple[str, ...] = ("zarr_manifest",)
    references = True

    def guess_can_open(self, probe: Probe) -> bool:
        """True for a directory whose ``zarr.json`` carries our ``"virtualizarr"`` record.

        A plain Zarr store (without the record) is left to other readers, and to
        xarray's own zarr engine.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        marker = f'"{EXTENSION}"'.encode()
        return probe.is_dir and marker in probe.read_key(ROOT_METADATA, _ROOT_PROBE_BYTES)

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
        subgroups: bool = False,
        **options: Any,
    ) -> VirtualGroup:
        """Read the manifest store at ``source``.

        Parameters
        ----------
        source : Location
            The store's directory, local or remote.
        group : str, optional
        drop_variables : iterable of str
        allowed_sources : str, iterable of str or SourcePolicy, optional
            See :func:`open_manifest_store`.
        limits : ReferenceLimits, optional
            See :func:`open_manifest_store`.
        subgroups : bool
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
                f"allowed_sources, limits and subgroups; found {sorted(options)}. Remove them."
            )
        return open_manifest_store(
            require_location(source, "manifest store"),
            group=group,
            drop_variables=drop_variables,
            allowed_sources=allowed_sources,
            limits=limits,
            subgroups=subgroups,
        )


READER = ZarrManifestReader()
"""The registered manifest-store reader."""
