"""Readers: one module per file format, registered in :data:`READERS`."""

from virtualizarr.readers.base import (
    READERS,
    Reader,
    VirtualGroup,
    VirtualVariable,
    find_reader,
    register_reader,
)

__all__ = [
    "READERS",
    "Reader",
    "VirtualGroup",
    "VirtualVariable",
    "find_reader",
    "register_reader",
]


def _register_builtins() -> None:
    """Import the built-in reader modules; each registers itself on import."""
    import importlib

    for module in ("hdf5", "netcdf3", "kerchunk", "zarr_manifest"):
        try:
            importlib.import_module(f"virtualizarr.readers.{module}")
        except ModuleNotFoundError as e:  # pragma: no cover - during development only
            if e.name != f"virtualizarr.readers.{module}":
                raise


_register_builtins()
