"""virtualizarr: archival scientific files as virtual Zarr stores, without copying data.

Importing the package registers the ``ds.virtualize`` accessor and the built-in readers.
"""

from virtualizarr import accessor as _accessor  # registers ds.virtualize
from virtualizarr.accessor import VirtualiZarrDatasetAccessor, VirtualiZarrDataTreeAccessor
from virtualizarr.api import open_virtual_dataset, open_virtual_datatree, verify
from virtualizarr.errors import StaleReferenceError, VirtualiZarrError
from virtualizarr.identity import VerifyReport
from virtualizarr.manifests import ChunkManifest, ManifestArray
from virtualizarr.mfdataset import open_virtual_mfdataset

del _accessor

__version__ = "0.1.0"

__all__ = [
    "ChunkManifest",
    "ManifestArray",
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
