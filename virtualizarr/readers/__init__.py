"""Readers: one module per file format, registered in :data:`READERS`."""

import sys
from typing import Any

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


class _LazyHDF5Reader:
    """Stands in for :class:`~virtualizarr.readers.hdf5.HDF5Reader` until a file needs it.

    Importing h5py and the HDF5 reader costs ~80 ms, which a process that only reads
    netCDF3 or references should not pay. The real reader replaces this one in
    :data:`READERS` (same name, same position) as soon as its module is imported.
    """

    name = "hdf5"

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True if ``magic`` starts with the HDF5 signature (see ``HDF5Reader``)."""
        return magic[:8] == b"\x89HDF\r\n\x1a\n"

    def open(self, path: str, **options: Any) -> VirtualGroup:
        """Import the HDF5 reader and open ``path`` with it."""
        from virtualizarr.readers.hdf5 import HDF5Reader

        return HDF5Reader().open(path, **options)


def _register_builtins() -> None:
    """Register the built-in readers; each module registers itself on import."""
    import importlib

    if "virtualizarr.readers.hdf5" not in sys.modules:
        register_reader(_LazyHDF5Reader())
    for module in ("netcdf3", "kerchunk", "zarr_manifest"):
        try:
            importlib.import_module(f"virtualizarr.readers.{module}")
        except ModuleNotFoundError as e:  # pragma: no cover - during development only
            if e.name != f"virtualizarr.readers.{module}":
                raise


_register_builtins()
