"""Reader for plain Zarr v2 and v3 stores: each chunk object referenced where it lies.

A store is listed once (a local directory walk, or one listing of an object-store prefix);
the listing says which chunks exist and how long each is, so an unsharded array needs no
read beyond its metadata documents. Metadata comes from consolidated metadata when the
store has it (``.zmetadata`` for v2, ``consolidated_metadata`` in a v3 ``zarr.json``), as
``xr.open_zarr`` reads it, else from each array's documents, fetched together.

What ``xr.open_zarr`` shows is the truth, and the virtual dataset is described so that its
references read back identically:

* dimensions are v2's ``_ARRAY_DIMENSIONS`` attribute (then hidden) or v3's
  ``dimension_names``; a store without them is refused, as xarray refuses it;
* a v2 array's ``fill_value`` is its ``_FillValue`` (xarray masks it), a v3 array's is not,
  and a v3 ``_FillValue`` attribute is decoded as xarray encodes it (base64 floats);
* group attributes starting with ``_nc`` are hidden, as xarray hides them.

Sharded v3 arrays are referenced inner chunk by inner chunk, at the byte ranges their
shard indexes give (see :mod:`~virtualizarr.readers.zarr.chunks`). Stores served over
HTTP(S) cannot be listed, and are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Final

from virtualizarr.errors import (
    FileFormatError,
    SourceNotFoundError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.formats.manifest_store import EXTENSION
from virtualizarr.formats.zarr_store import (
    ZarrArraySpec,
    decode_v3_fill_attr,
    parse_v2_array,
    parse_v3_array,
    stored_dtype,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import (
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    check_coordinate_names,
    check_dimension_sizes,
    make_array_metadata,
)
from virtualizarr.readers.base import Probe, Source, require_location
from virtualizarr.readers.zarr.chunks import array_manifest

__all__ = ["READER", "ZarrStoreReader", "open_zarr_store"]

_DIMS_KEY = "_ARRAY_DIMENSIONS"
_JSON_ERRORS = (ValueError, RecursionError, UnicodeDecodeError)
_CONSOLIDATED_MARK: Final = b'"zarr_consolidated_format"'
_PROBE_BYTES: Final = 1 << 20


class _Store:
    """A listed store: its keys and sizes, and its JSON documents read once."""

    def __init__(self, location: Location) -> None:
        self.location = location
        try:
            self.listing = location.list()
        except VirtualiZarrError:
            raise
        except Exception as e:  # refused or unreachable after retries
            raise FileFormatError(
                f"{location.label()}: the Zarr store could not be listed "
                f"({type(e).__name__}: {e}); check the URL and storage_options."
            ) from e
        self.docs: dict[str, Any] = {}

    def label(self, key: str = "") -> str:
        return self.location.label(key)

    def fetch(self, keys: Iterable[str]) -> None:
        """Read and parse the JSON documents ``keys`` (those the listing holds)."""
        wanted = [k for k in dict.fromkeys(keys) if k in self.listing and k not in self.docs]
        if not wanted:
            return
        try:
            got = self.location.get_many(wanted)
        except OSError as e:
            raise FileFormatError(
                f"{self.label()}: the store's metadata could not be read ({e}); it may be "
                "being rewritten -- open it again."
            ) from None
        for key, raw in got.items():
            try:
                self.docs[key] = json.loads(raw)
            except _JSON_ERRORS as e:
                raise FileFormatError(f"{self.label(key)} is not valid JSON ({e}).") from None

    def doc(self, key: str) -> Any:
        """A parsed document (None when the store lacks it)."""
        self.fetch([key])
        return self.docs.get(key)


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FileFormatError(f"{where} must be a JSON object; found {value!r:.80}.")
    return dict(value)


def _group_prefix(group: str | None) -> str:
    path = (group or "").strip("/")
    if path and any(p in ("", ".", "..") for p in path.split("/")):
        raise FileFormatError(f"group must be a path of group names ('a/b'); found {group!r}.")
    return f"{path}/" if path else ""


def _children(listing: Mapping[str, int], prefix: str, doc_name: str) -> list[str]:
    """Names of the nodes directly under ``prefix`` that hold ``doc_name``."""
    out = []
    for key in listing:
        if key.startswith(prefix) and key.endswith(f"/{doc_name}"):
            name = key[len(prefix) : -len(doc_name) - 1]
            if name and "/" not in name:
                out.append(name)
    return sorted(out)


# ---------------------------------------------------------------------- the hierarchy
def _v3_arrays(
    store: _Store, prefix: str, gdoc: dict[str, Any], drop: set[str]
) -> dict[str, dict[str, Any]]:
    """The documents of the group's arrays (consolidated metadata first, as xarray)."""
    consolidated = gdoc.get("consolidated_metadata")
    if isinstance(consolidated, dict) and isinstance(consolidated.get("metadata"), dict):
        members = consolidated["metadata"]
        return {
            n: d
            for n, d in members.items()
            if isinstance(n, str)
            and "/" not in n
            and n not in drop
            and isinstance(d, dict)
            and d.get("node_type") == "array"
        }
    names = [n for n in _children(store.listing, prefix, "zarr.json") if n not in drop]
    store.fetch(f"{prefix}{n}/zarr.json" for n in names)
    docs = {n: store.docs.get(f"{prefix}{n}/zarr.json") for n in names}
    return {n: d for n, d in docs.items() if isinstance(d, dict) and d.get("node_type") == "array"}


def _v2_arrays(
    store: _Store, prefix: str, drop: set[str]
) -> tuple[dict[str, tuple[Any, Any]], Any]:
    """``{name: (.zarray, .zattrs)}`` of the group's arrays, and the group's ``.zattrs``."""
    meta = store.doc(".zmetadata")
    if isinstance(meta, dict) and isinstance(meta.get("metadata"), dict):
        md = meta["metadata"]
        names = sorted(
            k[len(prefix) : -len("/.zarray")]
            for k in md
            if isinstance(k, str) and k.startswith(prefix) and k.endswith("/.zarray")
        )
        names = [n for n in names if n and "/" not in n and n not in drop]
        arrays = {n: (md[f"{prefix}{n}/.zarray"], md.get(f"{prefix}{n}/.zattrs")) for n in names}
        return arrays, md.get(f"{prefix}.zattrs")
    names = [n for n in _children(store.listing, prefix, ".zarray") if n not in drop]
    store.fetch(k for n in names for k in (f"{prefix}{n}/.zarray", f"{prefix}{n}/.zattrs"))
    arrays = {
        n: (store.docs.get(f"{prefix}{n}/.zarray"), store.docs.get(f"{prefix}{n}/.zattrs"))
        for n in names
    }
    return arrays, store.doc(f"{prefix}.zattrs")


# ---------------------------------------------------------------------- one array
def _dims_v2(attrs: dict[str, Any], ndim: int, where: str) -> tuple[str, ...]:
    dims = attrs.pop(_DIMS_KEY, None)
    if dims is None:
        raise FileFormatError(
            f"{where} has no {_DIMS_KEY} attribute, which xarray needs to name the array's "
            "dimensions (xr.open_zarr refuses the store too). Add it, or leave the array "
            "out with drop_variables=[...]."
        )
    if not isinstance(dims, list) or len(dims) != ndim or not all(isinstance(d, str) for d in dims):
        raise FileFormatError(
            f"{where}: {_DIMS_KEY} must list one dimension name per axis ({ndim}); found "
            f"{dims!r:.80}."
        )
    return tuple(dims)


def _dims_v3(spec: ZarrArraySpec, where: str) -> tuple[str, ...]:
    names = spec.dimension_names or ()  # as xarray reads them: absent is no names
    if len(names) != len(spec.shape) or not all(isinstance(n, str) for n in names):
        raise FileFormatError(
            f"{where} has no dimension_names, which xarray needs to name the array's "
            "dimensions (xr.open_zarr refuses the store too). Add them, or leave the array "
            "out with drop_variables=[...]."
        )
    return tuple(str(n) for n in names)


def _variable(
    store: _Store, array_dir: str, name: str, spec: ZarrArraySpec, raw_attrs: Any
) -> VirtualVariable:
    where = store.label(array_dir)
    if spec.zarr_format == 2:
        attrs = _object(raw_attrs, f"{where}/.zattrs")
        dims = _dims_v2(attrs, len(spec.shape), where)
        if spec.mask_fill is not None:
            attrs["_FillValue"] = spec.mask_fill
        else:
            attrs.pop("_FillValue", None)  # xarray takes it from fill_value alone
    else:
        attrs = dict(spec.attributes or {})
        dims = _dims_v3(spec, where)
        if "_FillValue" in attrs:
            attrs["_FillValue"] = decode_v3_fill_attr(attrs["_FillValue"], spec.dtype)
    stored = stored_dtype(list(spec.array_codecs), spec.dtype)
    metadata = make_array_metadata(
        shape=spec.shape,
        dtype=stored,
        chunks=spec.chunks,
        fill_value=spec.fill_value,
        codecs=spec.bytes_codecs,
        dimension_names=dims,
        array_codecs=spec.array_codecs,
        data_type=spec.dtype if stored != spec.dtype else None,
    )
    manifest = array_manifest(store.location, store.listing, array_dir, spec, where)
    data = ManifestArray(metadata, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims=dims, data=data, attrs=attrs)


def _parsed_variable(
    store: _Store,
    array_dir: str,
    name: str,
    parse: Callable[[Any, str], ZarrArraySpec],
    doc: Any,
    zattrs: Any,
) -> VirtualVariable:
    spec = parse(doc, store.label(array_dir))
    return _variable(store, array_dir, name, spec, zattrs)


def _guarded(where: str, fn: Any) -> VirtualVariable:
    """Run ``fn``; a foreign error on a malformed document becomes a FileFormatError."""
    try:
        out: VirtualVariable = fn()
    except VirtualiZarrError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as e:
        raise FileFormatError(
            f"{where}: the array's metadata is malformed ({type(e).__name__}: {e})."
        ) from e
    return out


def open_zarr_store(
    location: Location, *, group: str | None = None, drop_variables: Iterable[str] = ()
) -> VirtualGroup:
    """Read a Zarr v2 or v3 store (or one of its groups) as a :class:`VirtualGroup`.

    Parameters
    ----------
    location : Location
        The store's root directory, local or on object storage (``s3://bucket/a.zarr``).
    group : str, optional
        A group inside the store (``"a/b"``).
    drop_variables : iterable of str
        Arrays to leave out.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    SourceNotFoundError
        If nothing is stored at ``location``.
    FileFormatError
        If the store (or group) is missing or its metadata is malformed.
    UnsupportedFeatureError
        For a store over HTTP(S) (it cannot be listed), a manifest store, and arrays whose
        dtype or codecs cannot be virtualized (the message names them).

    Examples
    --------
    >>> vgroup = open_zarr_store(Location.of("data.zarr"))  # doctest: +SKIP
    """
    if location.is_http:
        raise UnsupportedFeatureError(
            f"{location.url}: a Zarr store served over HTTP(S) cannot be listed, and the "
            "listing is what says which chunks exist and how long each is. Open it from "
            "local disk or object storage (s3://, gs://...)."
        )
    store = _Store(location)
    if not store.listing:
        raise SourceNotFoundError(f"{location.label()} holds nothing; check the path.")
    prefix = _group_prefix(group)
    drop = set(drop_variables)
    gdoc = store.doc(f"{prefix}zarr.json")
    if gdoc is not None:
        gdoc = _object(gdoc, store.label(f"{prefix}zarr.json"))
        if gdoc.get("node_type") != "group":
            raise FileFormatError(
                f"{store.label(prefix + 'zarr.json')} is not a Zarr group (node_type "
                f"{gdoc.get('node_type')!r:.20}); xarray opens groups. Pass the group that "
                "holds the array."
            )
        if EXTENSION in gdoc:
            raise UnsupportedFeatureError(
                f"{location.label()} is a virtualizarr manifest store, not a plain Zarr "
                "store; open it with filetype='manifest_store' (or no filetype)."
            )
        docs = _v3_arrays(store, prefix, gdoc, drop)
        specs = {n: (parse_v3_array, d, None) for n, d in docs.items()}
        group_attrs = gdoc.get("attributes")
    elif f"{prefix}.zgroup" in store.listing or (".zmetadata" in store.listing and not prefix):
        v2, group_attrs = _v2_arrays(store, prefix, drop)
        specs = {n: (parse_v2_array, za, zattrs) for n, (za, zattrs) in v2.items()}
    else:
        what = f"group {group!r} of " if prefix else ""
        raise FileFormatError(
            f"{location.label()}: no Zarr {what}store found (expected {prefix}zarr.json for "
            f"Zarr v3, or {prefix}.zgroup for Zarr v2); check the path and group."
        )
    variables: dict[str, VirtualVariable] = {}
    for name, (parse, doc, zattrs) in specs.items():
        array_dir = f"{prefix}{name}"
        where = store.label(array_dir)
        variables[name] = _guarded(
            where, partial(_parsed_variable, store, array_dir, name, parse, doc, zattrs)
        )
    check_dimension_sizes(variables, location.label(), FileFormatError)
    check_coordinate_names(variables, location.label(), FileFormatError)
    attrs = _object(group_attrs, store.label(f"{prefix}attributes"))
    attrs = {k: v for k, v in attrs.items() if not k.lower().startswith("_nc")}
    return VirtualGroup(variables=variables, attrs=attrs)


class ZarrStoreReader:
    """Virtualize plain Zarr v2 and v3 stores (``filetype="zarr"``).

    A virtualizarr manifest store given with ``filetype="zarr"`` is handed to the
    ``manifest_store`` reader (``defers_to``).

    Examples
    --------
    >>> ZarrStoreReader().name
    'zarr'
    """

    name = "zarr"
    aliases: tuple[str, ...] = ("zarr2", "zarr3", "zarr_v2", "zarr_v3")
    references = False
    defers_to: tuple[str, ...] = ("manifest_store",)

    def guess_can_open(self, probe: Probe) -> bool:
        """True for a directory holding a Zarr group: ``zarr.json`` (v3), ``.zgroup`` (v2),
        or a v2 ``.zmetadata`` (Parquet references also have a ``.zmetadata``, without
        ``zarr_consolidated_format``: those are left to the kerchunk reader).

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        if not probe.is_dir:
            return False
        if probe.has("zarr.json") or probe.has(".zgroup"):
            return True
        return probe.has(".zmetadata") and _CONSOLIDATED_MARK in probe.read_key(
            ".zmetadata", _PROBE_BYTES
        )

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Read the Zarr store at ``source``.

        Parameters
        ----------
        source : Location
            The store's root directory.
        group : str, optional
        drop_variables : iterable of str
        **options
            None are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        UnexpectedOptionError
            For any option.
        """
        if options:
            raise UnexpectedOptionError(
                "the zarr reader takes no options beyond group and drop_variables; found "
                f"{sorted(options)}. Remove them."
            )
        location = require_location(source, "Zarr store")
        return open_zarr_store(location, group=group, drop_variables=drop_variables)


READER = ZarrStoreReader()
"""The registered Zarr store reader."""
