"""virtualizarr: archival scientific files as virtual Zarr stores, without copying data.

Importing the package registers the ``ds.virtualize`` accessor and the built-in readers.
It does not import zarr: virtualizing, combining and writing references never need it.
The one zarr-backed name the package offers, :class:`ManifestStore` (also
``virtualizarr.manifests.ManifestStore`` for VirtualiZarr 2.x code), is imported on first
access through the module ``__getattr__`` below (PEP 562) -- the only import inside a
function of the package that is not of an optional dependency (``tests/test_structure.py``).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virtualizarr import accessor as _accessor  # registers ds.virtualize
from virtualizarr import manifests as _manifests
from virtualizarr.accessor import VirtualiZarrDatasetAccessor, VirtualiZarrDataTreeAccessor
from virtualizarr.api import open_virtual_dataset, open_virtual_datatree, verify
from virtualizarr.errors import StaleReferenceError, VirtualiZarrError
from virtualizarr.identity import VerifyReport
from virtualizarr.manifests import ChunkManifest, ManifestArray
from virtualizarr.mfdataset import open_virtual_mfdataset

if TYPE_CHECKING:
    from virtualizarr.reading.store import ManifestStore


def _lazy_attributes(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``ManifestStore`` (and zarr) when asked for."""

    def __getattr__(name: str) -> Any:
        if name == "ManifestStore":
            from virtualizarr.reading.store import ManifestStore

            return ManifestStore
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


__getattr__ = _lazy_attributes(__name__)

# VirtualiZarr 2.x code imports ManifestStore from virtualizarr.manifests. It lives above
# the manifests core (it reads bytes, and it is zarr's Store), so the core cannot import
# it; the core gets the same lazy lookup, and importing the core always runs this first.
_manifests.__dict__["__getattr__"] = _lazy_attributes(_manifests.__name__)

del _accessor, _manifests

__version__ = "0.1.0"

__all__ = [
    "ChunkManifest",
    "ManifestArray",
    "ManifestStore",
    "StaleReferenceError",
    "VerifyReport",
    "VirtualiZarrDataTreeAccessor",
    "VirtualiZarrDatasetAccessor",
    "VirtualiZarrError",
    "__version__",
    "open_virtual_dataset",
    "open_virtual_datatree",
    "open_virtual_mfdataset",
    "verify",
]
