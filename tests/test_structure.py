"""The package's shape, checked: one-way layers, no import cycle, no hidden imports, small modules.

ARCHITECTURE's rules, as the code must keep them:

* dependencies point one way: the manifest core <- formats <- io, reading, readers,
  writers <- the API (``api``, ``mfdataset``, ``accessor``, ``backend``);
* no import cycle, counting imports inside functions too;
* no import inside a function except of an optional dependency (or zarr, which
  ``import virtualizarr`` never imports), and the one documented lazy name of the package
  (``virtualizarr.ManifestStore``, a PEP 562 ``__getattr__``);
* no module over 600 lines;
* every module imports in a fresh interpreter, in dependency order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "virtualizarr"
MAX_LINES = 600

OPTIONAL = {
    "pyarrow",
    "dask",
    "distributed",
    "tqdm",
    "google_crc32c",
    "icechunk",
    # format readers and their codecs (extras "tiff", "grib", "fits"): imported when a file
    # of that format is opened or a chunk of it decoded, never by `import virtualizarr`
    "tifffile",
    "imagecodecs",
    "cfgrib",
    "eccodes",
    "astropy",
    # zarr is a dependency, but ``import virtualizarr`` must not import it (it costs about
    # a sixth of a second): virtualizing, combining and writing references use our own
    # metadata (manifests.array_metadata). It is imported where zarr itself is needed --
    # ArrayMetadata.to_zarr, decoding a chunk whose codec numcodecs lacks, a Zarr document
    # only zarr's repairs read, a codec only zarr's registry knows, the Icechunk writer --
    # and at module level by the modules that serve arrays to zarr (reading.store,
    # backend, manifests.codecs), which nothing imported by `import virtualizarr` imports.
    "zarr",
    # fsspec is a dependency too, needed only for remote locations (io.objects:
    # Location.filesystem, io.remote): local files are read with os calls, and importing
    # fsspec costs ~20 ms that a process reading local files should not pay.
    "fsspec",
}
"""Third-party packages only some installs have (and zarr): imported where they are used,
inside functions, so that the package imports without them (icechunk: only
``to_icechunk`` needs it)."""

LAZY_NAMES = {("virtualizarr", "virtualizarr.reading.store")}
"""The one import of a module of the package inside a function: ``virtualizarr``'s PEP 562
``__getattr__`` imports ``ManifestStore`` (a zarr store, so zarr) on first access."""

LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "io": {"errors"},
    "manifests": {"errors"},
    "formats": {"errors", "manifests"},
    "identity": {"errors", "io", "manifests"},
    "security": {"errors", "io", "manifests"},
    "reading": {"errors", "io", "manifests", "formats"},
    "readers": {"errors", "io", "manifests", "formats", "identity", "security"},
    "writers": {"errors", "io", "manifests", "formats", "identity"},
    "dataset": {"errors", "manifests", "reading"},
    "migration": {"errors"},
    "api": {"errors", "io", "manifests", "identity", "security", "readers", "dataset", "migration"},
    "fastconcat": {"manifests", "dataset"},
    "parallel": {"errors", "io"},
    "mfdataset": {
        "errors",
        "io",
        "manifests",
        "api",
        "dataset",
        "fastconcat",
        "parallel",
        "migration",
    },
    "accessor": {"errors", "io", "manifests", "formats", "writers"},
    "backend": {"errors", "io", "manifests", "security", "readers", "reading", "api"},
    "testing": {"formats", "api"},
    # the command line: the public API, and writers.icechunk_repo (a whole repository)
    "cli": {"errors", "manifests", "identity", "api", "mfdataset", "writers"},
}
"""What each part of the package may import, besides itself (``virtualizarr/__init__``
imports the public API from everywhere)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import in a module."""
    tree = ast.parse(MODULES[name].read_text())
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, inside) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                base = child.module
                for a in child.names:
                    full = f"{base}.{a.name}"
                    out.append((full if full in MODULES else base, child.lineno, inside))
            visit(child, inside)

    visit(tree, False)
    return out


def internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        for target, _, _ in imports(name):
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def part(name: str) -> str:
    """The layer a module belongs to (``virtualizarr.readers.hdf5.dims`` -> ``readers``)."""
    return name.split(".")[1] if "." in name else ""


def test_every_module_is_under_the_size_limit() -> None:
    sizes = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_imports_inside_functions_are_of_optional_dependencies_only() -> None:
    found = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        for target, line, inside in imports(name)
        if inside and target.split(".")[0] not in OPTIONAL and (name, target) not in LAZY_NAMES
    ]
    assert found == []


def test_no_import_cycle() -> None:
    graph = internal_graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(MODULES):
        if name not in state:
            walk(name, [name])
    assert cycles == []


def test_dependencies_point_one_way() -> None:
    wrong = []
    for name, targets in internal_graph().items():
        layer = part(name)
        if layer not in LAYERS:  # the package's __init__: the public API
            continue
        for target in targets:
            other = part(target)
            if other != layer and other not in LAYERS[layer]:
                wrong.append(f"{name} imports {target} ({layer} may not use {other})")
    assert wrong == []


def topological_order() -> list[str]:
    graph = internal_graph()
    done: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen:
            return
        seen.add(node)
        for dep in sorted(graph[node]):
            visit(dep)
        done.append(node)

    for name in sorted(MODULES):
        visit(name)
    return done


def test_every_module_imports_in_a_fresh_interpreter_in_dependency_order() -> None:
    """The static graph above is the real one: importing the modules in its order works
    (the package's ``__init__`` runs first, as for any import of a submodule)."""
    names = [n for n in topological_order() if n != "virtualizarr.__main__"]  # runs the CLI
    assert names.index("virtualizarr.errors") < names.index("virtualizarr.api")
    lines = ["import importlib", f"for n in {names!r}:", "    importlib.import_module(n)"]
    script = "\n".join([*lines, "print(len(__import__('sys').modules) > 0)"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_importing_the_package_imports_no_optional_or_heavy_reader_dependency() -> None:
    """(pyarrow is left out: pandas imports it whenever it is installed.)"""
    script = (
        "import sys, virtualizarr\n"
        "print(sorted(m for m in ('h5py', 'dask', 'distributed', 'tqdm', 'tifffile', "
        "'imagecodecs', 'cfgrib', 'eccodes', 'astropy', 'zarr', 'icechunk') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
