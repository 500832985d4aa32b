"""Names from VirtualiZarr 1.x/2.x and kerchunk, accepted or explained.

Code written for the other tools should either run unchanged, where a concept is the
same and only its name differs (``url=`` for the path, ``ds.vz``...), or fail with a
:class:`~virtualizarr.errors.MigrationError` that says what to write instead, where we
differ on purpose (a ``parser=`` object instead of ``filetype=``, an object-store
``registry=`` instead of fsspec ``storage_options=``). ``docs/migration.md`` shows both
side by side.

:func:`legacy_arguments` wraps the public entry points; it keeps their signature (for
help, IDEs and the documentation) and costs one dictionary lookup per call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from virtualizarr.errors import MigrationError

__all__ = ["MIGRATION_GUIDE", "legacy_arguments", "parser_filetype"]

MIGRATION_GUIDE = "docs/migration.md"
"""Where the side-by-side guide lives (named in every :class:`MigrationError`)."""

P = ParamSpec("P")
R = TypeVar("R")

PARSER_FILETYPES: Mapping[str, str] = {
    "HDFParser": "hdf5",
    "HDF5Parser": "hdf5",
    "NetCDF3Parser": "netcdf3",
    "KerchunkJSONParser": "kerchunk",
    "KerchunkParquetParser": "kerchunk",
    "ZarrParser": "zarr",
    "DMRPPParser": "dmrpp",
    "FITSParser": "fits",
}
"""VirtualiZarr 2.x parser classes and the ``filetype=`` that picks our reader."""

_REMOVED: Mapping[str, str] = {
    "registry": (
        "virtualizarr reaches files through fsspec, not an object-store registry: pass "
        "storage_options={...} (e.g. {'anon': True} or "
        "{'client_kwargs': {'endpoint_url': ...}}) for remote paths, or nothing for local "
        "ones"
    ),
    "indexes": (
        "loaded 1-D dimension coordinates get xarray's default index and virtual ones "
        "none, so there is nothing to choose: drop the argument (to keep a coordinate "
        "virtual, leave it out of loadable_variables)"
    ),
    "cftime_variables": (
        "times are decoded as xr.open_dataset decodes them (cftime for non-standard "
        "calendars): drop the argument, or pass decode_times=False"
    ),
    "virtual_array_class": "every virtual variable is a ManifestArray: drop the argument",
    "virtual_backend_kwargs": "pass reader_options={...} instead",
    "backend": "pass filetype='<name>' (e.g. 'hdf5', 'netcdf3', 'kerchunk') instead",
}
"""Arguments of the other tools that have no counterpart, and what to do instead."""


def parser_filetype(parser: object) -> str:
    """What to write instead of a VirtualiZarr 2.x ``parser=`` object.

    Parameters
    ----------
    parser : object
        The parser (``HDFParser(group="g")``...).

    Returns
    -------
    str
        The equivalent arguments, e.g. ``"filetype='hdf5', group='g'"``.
    """
    name = type(parser).__name__
    args = [f"filetype={PARSER_FILETYPES[name]!r}"] if name in PARSER_FILETYPES else []
    for option in ("group", "drop_variables"):
        value = getattr(parser, option, None)
        if value:
            args.append(f"{option}={value!r}")
    return ", ".join(args) or "filetype='<name>' (or nothing: the format is detected)"


def _refusal(function: str, argument: str, value: object) -> MigrationError:
    if argument == "parser":
        instead = (
            f"pass {parser_filetype(value)} instead of a parser object (and "
            "storage_options={...} instead of a registry, for remote paths)"
        )
    else:
        instead = _REMOVED[argument]
    return MigrationError(
        f"{function}() does not take {argument}= (VirtualiZarr 1.x/2.x): {instead}. "
        f"See {MIGRATION_GUIDE} for side-by-side examples."
    )


def legacy_arguments(
    path_argument: str, aliases: tuple[str, ...]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept the other tools' names for the path argument; explain the rest.

    Parameters
    ----------
    path_argument : str
        The wrapped function's first parameter (``"path"``, ``"paths"``).
    aliases : tuple of str
        Its names elsewhere (``("url", "filepath")``), accepted as keywords.

    Returns
    -------
    callable
        A decorator. The wrapped function also refuses, with a
        :class:`~virtualizarr.errors.MigrationError`, ``parser=``/``registry=`` given by
        keyword or positionally after the path (``open_virtual_dataset(url, registry,
        parser)``), and the VirtualiZarr 1.x arguments without a counterpart.
    """

    legacy = frozenset((*aliases, "parser", *_REMOVED))

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        name = func.__name__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            if kwargs.keys() & legacy:
                for alias in aliases:
                    if alias in kwargs:
                        if args or path_argument in kwargs:
                            raise MigrationError(
                                f"{name}() got the path twice: as {path_argument} and as "
                                f"{alias}= (its VirtualiZarr 2.x name); pass one."
                            )
                        args = (kwargs.pop(alias),)
                for argument in ("parser", *_REMOVED):
                    if argument in kwargs:
                        raise _refusal(name, argument, kwargs[argument])
            if len(args) > 1:  # open_virtual_dataset(url, registry, parser)
                parsers = [v for v in args[1:] if type(v).__name__.endswith("Parser")]
                if parsers:  # the one that says what to write; registry is then the other
                    raise _refusal(name, "parser", parsers[0])
                if any(type(v).__name__.endswith("Registry") for v in args[1:]):
                    raise _refusal(name, "registry", args[1])
                raise MigrationError(
                    f"{name}() takes the {path_argument} as its only positional argument; "
                    f"found {len(args)} (VirtualiZarr 2.x passed registry and parser "
                    f"there). Pass the others by name. See {MIGRATION_GUIDE}."
                )
            return func(*args, **kwargs)

        return wrapper  # same parameters, plus the aliases

    return decorate
