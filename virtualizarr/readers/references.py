"""What the reference readers (kerchunk, manifest stores) do alike after parsing.

A reference document holds paths as written -- absolute, or relative to the document --
and, in our ``"virtualizarr"`` record, the identities of the sources recorded when they
were virtualized. :func:`localize_group` makes the paths absolute and attaches the
identities to the manifests, so stale sources can be detected
(:func:`virtualizarr.identity.check_sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from virtualizarr.identity import identity_token
from virtualizarr.io.uri import is_relative, resolve_relative
from virtualizarr.manifests import ManifestArray, VirtualGroup, VirtualVariable

__all__ = ["localize_group"]


def localize_group(
    vgroup: VirtualGroup, reference: str | None, extension: Mapping[str, Any]
) -> VirtualGroup:
    """Resolve relative chunk paths against ``reference`` and attach recorded identities.

    Parameters
    ----------
    vgroup : VirtualGroup
        As a reference reader produced it (paths exactly as the document holds them).
    reference : str or None
        Absolute URI of the reference file or store; relative paths are relative to the
        directory holding it. None (an in-memory document) leaves paths unchanged.
    extension : mapping
        The document's ``"virtualizarr"`` record; its ``"sources"`` maps paths (as
        written) to identity mappings.

    Returns
    -------
    VirtualGroup
    """
    record = extension.get("sources") if isinstance(extension, Mapping) else None
    tokens: dict[str, str | None] = {}
    if isinstance(record, Mapping):
        for path, ident in record.items():
            if isinstance(ident, Mapping):
                tokens[str(path)] = identity_token(ident)

    def resolve(p: str) -> str:
        return resolve_relative(p, reference) if reference is not None else p

    resolved_tokens = {resolve(p): t for p, t in tokens.items()}
    return vgroup.map_groups(lambda g: _localize(g, reference, resolve, resolved_tokens))


def _localize(
    vgroup: VirtualGroup,
    reference: str | None,
    resolve: Callable[[str], str],
    resolved_tokens: Mapping[str, str | None],
) -> VirtualGroup:
    variables = {}
    for name, v in vgroup.variables.items():
        m = v.data.manifest
        if reference is not None and any(is_relative(p) for p in m.paths):
            m = m.rename_paths(resolve)
        if resolved_tokens and any(p in resolved_tokens for p in m.paths):
            m = m.with_sources(resolved_tokens)
        if m is not v.data.manifest:
            data = ManifestArray(
                v.data.metadata, m, name=v.data.name, encoding_attrs=v.data.encoding_attrs
            )
            v = VirtualVariable(dims=v.dims, data=data, attrs=v.attrs)
        variables[name] = v
    return vgroup.replace_variables(variables)
