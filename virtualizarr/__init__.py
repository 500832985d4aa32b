"""virtualizarr: archival scientific files as virtual Zarr stores, without copying data.

Importing the package registers the ``ds.virtualize`` accessor and the built-in readers.
"""

from virtualizarr import accessor as _accessor  # registers ds.virtualize
from virtualizarr import manifests as _manifests
from virtualizarr.accessor import VirtualiZarrDatasetAccessor, VirtualiZarrDataTreeAccessor
from virtualizarr.api import open_virtual_dataset, open_virtual_datatree, verify
from virtualizarr.errors import StaleReferenceError, VirtualiZarrError
from virtualizarr.identity import VerifyReport
from virtualizarr.manifests import ChunkManifest, ManifestArray
from virtualizarr.mfdataset import open_virtual_mfdataset
from virtualizarr.reading.store import ManifestStore

# VirtualiZarr 2.x code imports ManifestStore from virtualizarr.manifests. It lives above
# the manifests core (it reads bytes), so the core cannot import it; it is attached here,
# where the public API is assembled, and importing the core always runs this first.
_manifests.ManifestStore = ManifestStore  # type: ignore[attr-defined]

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
