"""The one description of virtual data: variables in groups.

Every reader produces a :class:`VirtualGroup`; the xarray layer turns it into a dataset,
:class:`~virtualizarr.reading.store.ManifestStore` serves it to Zarr, and the reference
checks inspect it. A variable's data is a
:class:`~virtualizarr.manifests.ManifestArray` (where the stored, encoded values live);
its dimension names and attributes are exactly as the source stores them (raw,
undecoded: ``_FillValue``, ``scale_factor``, ``units`` ... keep their types and values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from virtualizarr.errors import VirtualiZarrError
from virtualizarr.manifests.array import ManifestArray

__all__ = ["VirtualGroup", "VirtualVariable", "check_coordinate_names", "check_dimension_sizes"]


@dataclass(frozen=True, slots=True)
class VirtualVariable:
    """One variable of a virtualized file.

    Attributes
    ----------
    dims : tuple of str
        Dimension names, as ``xr.open_dataset`` would name them.
    data : ManifestArray
        Where the stored (encoded) values live.
    attrs : dict
        The variable's attributes as stored in the file (undecoded).
    """

    dims: tuple[str, ...]
    data: ManifestArray
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VirtualGroup:
    """The variables and attributes of one file or group, and its subgroups.

    Attributes
    ----------
    variables : dict of str to VirtualVariable
        In the order the source lists them.
    attrs : dict
        The group's attributes, as stored.
    groups : dict of str to VirtualGroup
        Subgroups by name (empty unless a reader or caller fills them in).

    Examples
    --------
    >>> VirtualGroup({}, {"title": "t"}).attrs
    {'title': 't'}
    """

    variables: dict[str, VirtualVariable]
    attrs: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, VirtualGroup] = field(default_factory=dict)

    def replace_variables(self, variables: dict[str, VirtualVariable]) -> VirtualGroup:
        """The same group with other variables."""
        return VirtualGroup(variables, self.attrs, self.groups)

    def walk(self, path: str = "/") -> Iterator[tuple[str, VirtualGroup]]:
        """This group and every group below it, parents first: ``(path, group)``.

        Examples
        --------
        >>> tree = VirtualGroup({}, groups={"a": VirtualGroup({}, groups={"b": VirtualGroup({})})})
        >>> [p for p, _ in tree.walk()]
        ['/', '/a', '/a/b']
        """
        yield path, self
        for name, child in self.groups.items():
            yield from child.walk(f"{path.rstrip('/')}/{name}")

    def map_groups(self, fn: Callable[[VirtualGroup], VirtualGroup]) -> VirtualGroup:
        """``fn`` applied to this group and, recursively, to every group below it."""
        out = fn(self)
        groups = {name: child.map_groups(fn) for name, child in self.groups.items()}
        return VirtualGroup(out.variables, out.attrs, groups)


def check_dimension_sizes(
    variables: Mapping[str, VirtualVariable], source: str, error: type[VirtualiZarrError]
) -> None:
    """Refuse variables that give one dimension two lengths (xarray could not hold them).

    Parameters
    ----------
    variables : mapping of str to VirtualVariable
    source : str
        The document or file, for the message.
    error : type
        The error class to raise.

    Raises
    ------
    VirtualiZarrError
        Of class ``error``, naming the dimension and both variables.
    """
    seen: dict[str, tuple[int, str]] = {}
    for name, var in variables.items():
        for dim, size in zip(var.dims, var.data.shape, strict=False):
            first = seen.setdefault(dim, (int(size), name))
            if first[0] != int(size):
                raise error(
                    f"{source}: dimension {dim!r} has length {first[0]} in {first[1]!r} but "
                    f"{int(size)} in {name!r}; expected one length per dimension. The "
                    "metadata is corrupt; regenerate it, or drop one of the variables."
                )


def check_coordinate_names(
    variables: Mapping[str, VirtualVariable], source: str, error: type[VirtualiZarrError]
) -> None:
    """Refuse a variable named like a dimension that is not that dimension's 1-D coordinate
    (xarray cannot hold one: a scalar ``lon`` beside a dimension ``lon``, say).

    Parameters
    ----------
    variables : mapping of str to VirtualVariable
    source : str
        The document or file, for the message.
    error : type
        The error class to raise.

    Raises
    ------
    VirtualiZarrError
        Of class ``error``, naming the variable.
    """
    dims = {d for v in variables.values() for d in v.dims}
    for name, var in variables.items():
        if name in dims and var.dims != (name,):
            raise error(
                f"{source}: variable {name!r} has the name of a dimension but dimensions "
                f"{list(var.dims)}; expected the 1-D coordinate of dimension {name!r}. The "
                "metadata is corrupt; regenerate it, or drop the variable."
            )
