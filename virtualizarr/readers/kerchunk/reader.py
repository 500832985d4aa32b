"""The kerchunk reader: JSON documents, in-memory dicts and Parquet reference stores.

Relative chunk paths resolve against the document's location, the source identities our
writers record are attached to the manifests, and everything the references point at is
checked against the caller's source policy and size limits (:mod:`virtualizarr.security`)
before any of it is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from virtualizarr.errors import UnexpectedOptionError
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import is_relative, resolve_relative
from virtualizarr.manifests import VirtualGroup
from virtualizarr.readers.base import Probe, Source
from virtualizarr.readers.kerchunk.arrays import references_to_group
from virtualizarr.readers.kerchunk.parquet import PARQUET_METADATA, parse_kerchunk_parquet
from virtualizarr.readers.kerchunk.parse import parse_kerchunk_dict, parse_kerchunk_json
from virtualizarr.readers.references import localize_group
from virtualizarr.security import ReferenceLimits, SourcePolicy, check_paths, check_references

__all__ = ["READER", "KerchunkReader"]


def _checked_size_of(
    reference: Location | None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None,
    storage_options: Mapping[str, Any] | None = None,
) -> Callable[[str], int]:
    """``size_of`` for a document loaded from ``reference``: the target of a whole-file
    reference is resolved and checked against the source policy *before* it is looked at
    (a crafted document must not make us stat local files or probe hosts)."""
    policy = SourcePolicy.parse(allowed_sources)
    ref = reference.url if reference is not None else None
    options = reference.storage_options if reference is not None else storage_options

    def size_of(url: str) -> int:
        target = resolve_relative(url, ref) if ref and is_relative(url) else url
        check_paths([target], ref, policy)
        return Location(target, options).size()

    return size_of


def _is_document(doc: Mapping[str, Any]) -> bool:
    return "refs" in doc or ".zgroup" in doc


class KerchunkReader:
    """Read kerchunk references (JSON files, dicts and Parquet stores) as virtual groups.

    Examples
    --------
    >>> KerchunkReader().guess_can_open(Probe({"version": 1, "refs": {}}))
    True
    """

    name = "kerchunk"
    aliases: tuple[str, ...] = ("references",)
    references = True

    def guess_can_open(self, probe: Probe) -> bool:
        """True for a reference dict, a file starting with ``{``, or a Parquet store.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        if probe.document is not None:
            return _is_document(probe.document)
        if probe.is_dir:
            return probe.has(PARQUET_METADATA)
        return bytes(probe.head).lstrip()[:1] == b"{"

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
        storage_options: Mapping[str, Any] | None = None,
        subgroups: bool = False,
        **options: Any,
    ) -> VirtualGroup:
        """Read the references and describe their arrays.

        Relative chunk paths are resolved against the directory holding the document, and
        the source identities the ``"virtualizarr"`` record holds are attached to the
        manifests.

        Parameters
        ----------
        source : Location or mapping
            A kerchunk JSON file, a Parquet store directory, or a document in memory.
        group : str, optional
            Group inside the references.
        drop_variables : iterable of str
            Arrays to leave out.
        allowed_sources : str, iterable of str or SourcePolicy, optional
            Protocols and URL prefixes the references may point at (see
            :mod:`virtualizarr.security`); None for the default policy.
        limits : ReferenceLimits, optional
            Size limits on the document.
        storage_options : mapping, optional
            For an in-memory document: fsspec options to size whole-file references
            with (a location carries its own).
        subgroups : bool
            Also read every group below ``group``, nested.
        **options
            None other are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        InvalidReferencesError
            For malformed references.
        UntrustedReferenceError
            If the references point outside ``allowed_sources`` or exceed ``limits``.
        """
        if options:
            raise UnexpectedOptionError(
                f"the kerchunk reader takes no options beyond group, drop_variables, "
                f"allowed_sources, limits and subgroups; found {sorted(options)}. Remove them."
            )
        if not isinstance(source, Location):
            refs = parse_kerchunk_dict(dict(source))
            refs.size_of = _checked_size_of(None, allowed_sources, storage_options)
            vgroup = references_to_group(refs, group, drop_variables, subgroups)
            vgroup = localize_group(vgroup, None, refs.extension)
            check_references(vgroup, None, allowed_sources, limits)
            return vgroup
        size_of = _checked_size_of(source, allowed_sources)
        if source.is_dir():
            refs = parse_kerchunk_parquet(source, size_of)
        else:
            refs = parse_kerchunk_json(source, limits)
        refs.size_of = size_of
        vgroup = references_to_group(refs, group, drop_variables, subgroups)
        vgroup = localize_group(vgroup, source.url, refs.extension)
        check_references(vgroup, source.url, allowed_sources, limits)
        return vgroup


READER = KerchunkReader()
"""The registered kerchunk reader."""
