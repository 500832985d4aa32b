"""The ``virtualizarr`` command line: make references, describe sources, verify references.

::

    virtualizarr refs 'data/air_*.nc' -o refs.json --concat-dim time
    virtualizarr refs 'data/air_*.nc' -o air.icechunk --concat-dim time   # a repository
    virtualizarr info refs.json
    virtualizarr verify refs.json        # exit status 1 when a source changed

Also ``python -m virtualizarr``. Every failure of ours is printed as one line (its message)
with exit status 2; ``--traceback`` shows the whole trace.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import click
import numpy as np

from virtualizarr.api import open_virtual_dataset, open_virtual_group, verify
from virtualizarr.errors import InvalidArgumentError, VirtualiZarrError
from virtualizarr.identity import VerifyReport, describe_change
from virtualizarr.manifests import ManifestArray, VirtualGroup
from virtualizarr.manifests.metadata import codecs_to_json
from virtualizarr.mfdataset import open_virtual_mfdataset
from virtualizarr.writers.icechunk_repo import (
    open_snippet,
    quiet_icechunk_logs,
    write_icechunk_repository,
)

__all__ = ["main", "parse_storage_options"]

_FORMATS = ("json", "parquet", "zarr", "icechunk")


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as fsspec storage options.

    Values are read as JSON when they parse (``anon=true``, ``block_size=1048576``), else
    kept as text; dotted keys nest (``client_kwargs.endpoint_url=http://...``).

    Parameters
    ----------
    items : iterable of str

    Returns
    -------
    dict

    Raises
    ------
    InvalidArgumentError
        For an item without ``=``.

    Examples
    --------
    >>> parse_storage_options(["anon=true", "client_kwargs.endpoint_url=http://h:9000"])
    {'anon': True, 'client_kwargs': {'endpoint_url': 'http://h:9000'}}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(
                f"--storage-option takes KEY=VALUE (e.g. anon=true); found {item!r}."
            )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InvalidArgumentError(f"--storage-option {key!r} nests under a value.")
        node[leaf] = value
    return out


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v for v in value.split(",") if v]


def _infer_format(output: str) -> str:
    suffix = Path(output.rstrip("/")).suffix.lower()
    found = {
        ".json": "json",
        ".parq": "parquet",
        ".parquet": "parquet",
        ".zarr": "zarr",
        ".icechunk": "icechunk",
    }
    if suffix not in found:
        raise InvalidArgumentError(
            f"cannot tell the output format from {output!r}; expected a name ending in .json, "
            ".parq/.parquet, .zarr or .icechunk, or pass --format."
        )
    return found[suffix]


def _run(fn: Callable[[], int | None], traceback: bool) -> None:
    """Run a command; our errors become one line on stderr and exit status 2."""
    try:
        status = fn()
    except VirtualiZarrError as e:
        if traceback:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    sys.exit(status or 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="virtualizarr")
def main() -> None:
    """Virtual Zarr stores over archival files, without copying data."""


_storage = click.option(
    "--storage-option",
    "-s",
    "storage",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option for remote paths (repeatable; JSON values, dotted keys nest).",
)
_traceback = click.option("--traceback", is_flag=True, help="Show the full trace on errors.")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="Where to write the references (or the repository)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS, case_sensitive=False),
    help="Output format (default: from the output's extension).",
)
@click.option("--concat-dim", help="Dimension to concatenate along (nested combine).")
@click.option(
    "--combine",
    type=click.Choice(["by_coords", "nested"]),
    help="How to combine several files (default: nested with --concat-dim, else by_coords).",
)
@click.option(
    "--loadable-variables",
    help="Comma-separated variables to load (default: 1-D coordinates; '' for none).",
)
@click.option("--drop-variables", help="Comma-separated variables to leave out.")
@click.option("--filetype", help="Force a reader (hdf5, netcdf3, kerchunk, ...).")
@click.option("--mode", type=click.Choice(["w-", "w"]), default="w-", show_default=True)
@click.option("--relative-paths", is_flag=True, help="Store source paths relative to the output.")
@click.option(
    "--message", "-m", help="Commit message of an Icechunk repository (default: the command)."
)
@click.option(
    "--parallel",
    type=click.Choice(["auto", "serial", "threads", "processes"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: for many files)."
)
@_storage
@_traceback
def refs(
    paths: tuple[str, ...],
    output: str,
    fmt: str | None,
    concat_dim: str | None,
    combine: str | None,
    loadable_variables: str | None,
    drop_variables: str | None,
    filetype: str | None,
    mode: str,
    relative_paths: bool,
    message: str | None,
    parallel: str,
    progress: bool | None,
    storage: tuple[str, ...],
    traceback: bool,
) -> None:
    """Virtualize PATHS (files or globs) and write their references to OUTPUT.

    OUTPUT ending in .icechunk (or --format icechunk) is a new local Icechunk repository:
    a virtual chunk container per source prefix, one commit on branch main.
    """

    def run() -> None:
        so = parse_storage_options(storage)
        out_format = fmt.lower() if fmt else _infer_format(output)
        if out_format == "icechunk" and relative_paths:
            raise InvalidArgumentError(
                "--relative-paths cannot be used with an Icechunk repository, which holds "
                "absolute chunk URLs only; leave it out."
            )
        kwargs: dict[str, Any] = {"storage_options": so or None, "filetype": filetype}
        if loadable_variables is not None:
            kwargs["loadable_variables"] = _names(loadable_variables)
        if drop_variables is not None:
            kwargs["drop_variables"] = _names(drop_variables)
        single = len(paths) == 1 and not any(c in paths[0] for c in "*?[")
        if single:
            ds = open_virtual_dataset(paths[0], **kwargs)
        else:
            how = combine or ("nested" if concat_dim else "by_coords")
            par = {"auto": True, "serial": False}.get(parallel, parallel)
            ds = open_virtual_mfdataset(
                list(paths) if len(paths) > 1 else paths[0],
                concat_dim=concat_dim,
                combine=cast(Literal["by_coords", "nested"], how),
                parallel=cast(Any, par),
                progress=progress,
                **kwargs,
            )
        write = {"mode": mode, "relative_paths": relative_paths, "storage_options": so or None}
        snippet = None
        if out_format == "icechunk":
            text = message or "virtualizarr refs " + " ".join(paths)
            quiet_icechunk_logs()
            containers = write_icechunk_repository(
                ds, output, mode=mode, message=text, storage_options=so or None
            )
            snippet = open_snippet(output, containers)
        elif out_format == "zarr":
            ds.virtualize.to_zarr(output, **write)
        else:
            ds.virtualize.to_kerchunk(output, format=cast(Any, out_format), **write)
        arrays = [v.data for v in ds.variables.values() if isinstance(v.data, ManifestArray)]
        n = sum(len(a.manifest) for a in arrays)
        click.echo(
            f"wrote {output} ({out_format}): {len(ds.variables)} variables, {n} chunk references"
        )
        if snippet is not None:
            click.echo("open it with icechunk and xarray:\n")
            click.echo(snippet)

    _run(run, traceback)


def describe(group: VirtualGroup) -> dict[str, Any]:
    """What a virtual group holds, as plain data (see ``virtualizarr info``).

    Parameters
    ----------
    group : VirtualGroup

    Returns
    -------
    dict
        ``{"attributes": n, "sources": [...], "variables": {name: {...}}, "groups": [...]}``.
    """
    variables: dict[str, Any] = {}
    sources: dict[str, None] = {}
    for name, var in group.variables.items():
        arr = var.data
        m = arr.manifest
        ids = m.path_ids
        referenced = ids >= 0
        sources.update(dict.fromkeys(m.paths))
        variables[name] = {
            "dims": list(var.dims),
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "chunks": [c if isinstance(c, int) else list(c) for c in arr.chunk_sizes],
            "codecs": [c["name"] for c in codecs_to_json(arr.metadata)],
            "references": int(np.count_nonzero(referenced)),
            "inline": len(m.inline),
            "missing": int(np.count_nonzero(ids == -1)),
            "bytes_referenced": int(m.lengths[referenced].sum()),
            "sources": len(m.paths),
        }
    return {
        "attributes": len(group.attrs),
        "sources": list(sources),
        "variables": variables,
        "groups": sorted(group.groups),
    }


def _print_description(path: str, info: Mapping[str, Any]) -> None:
    echo = click.echo
    total = sum(v["bytes_referenced"] for v in info["variables"].values())
    refs_n = sum(v["references"] for v in info["variables"].values())
    echo(
        f"{path}: {len(info['variables'])} variables, {refs_n} chunk references, "
        f"{total:,} bytes referenced in {len(info['sources'])} source(s)"
    )
    for name, v in info["variables"].items():
        dims = ", ".join(f"{d}: {s}" for d, s in zip(v["dims"], v["shape"], strict=True))
        echo(f"  {name} ({dims}) {v['dtype']}")
        echo(
            f"      chunks {tuple(v['chunks'])}, codecs {v['codecs'] or ['none']}, "
            f"{v['references']} referenced, {v['inline']} inline, {v['missing']} missing, "
            f"{v['bytes_referenced']:,} bytes"
        )
    for src in info["sources"][:20]:
        echo(f"  source: {src}")
    if len(info["sources"]) > 20:
        echo(f"  ... and {len(info['sources']) - 20} more sources")


@main.command()
@click.argument("path")
@click.option("--group", help="A group inside the file or references.")
@click.option("--filetype", help="Force a reader.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_storage
@_traceback
def info(
    path: str,
    group: str | None,
    filetype: str | None,
    as_json: bool,
    storage: tuple[str, ...],
    traceback: bool,
) -> None:
    """Describe what PATH (a file, or references) holds: variables, chunks, codecs, sources."""

    def run() -> None:
        so = parse_storage_options(storage)
        vgroup = open_virtual_group(path, filetype=filetype, group=group, storage_options=so)
        description = describe(vgroup)
        if as_json:
            click.echo(json.dumps(description, indent=2))
        else:
            _print_description(path, description)

    _run(run, traceback)


def _print_report(report: VerifyReport) -> None:
    click.echo(
        f"checked {len(report.checked)} source(s): {len(report.changed)} changed, "
        f"{len(report.missing)} missing, {len(report.unrecorded)} without a recorded identity"
    )
    for url, (then, now) in report.changed.items():
        click.echo(f"  changed: {url}: {describe_change(then, now)}")
    for url in report.missing:
        click.echo(f"  missing: {url}")


@main.command(name="verify")
@click.argument("refs_or_store")
@click.option("--group", help="A group inside the references.")
@_storage
@_traceback
def verify_command(
    refs_or_store: str, group: str | None, storage: tuple[str, ...], traceback: bool
) -> None:
    """Check that the sources REFS_OR_STORE points at are unchanged (exit 1 if not)."""

    def run() -> int:
        report = verify(refs_or_store, parse_storage_options(storage) or None, group=group)
        _print_report(report)
        return 0 if report.ok else 1

    _run(run, traceback)


if __name__ == "__main__":  # pragma: no cover
    main()
