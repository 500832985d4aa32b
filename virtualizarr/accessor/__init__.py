"""The ``virtualize`` accessors on xarray objects: ``ds.virtualize`` and ``dt.virtualize``.

Importing this package registers them, also under VirtualiZarr 2.x's name ``vz``
(``ds.vz.to_kerchunk(...)`` runs unchanged), as the same classes.
"""

from __future__ import annotations

import xarray as xr

from virtualizarr.accessor.dataset import VirtualiZarrDatasetAccessor
from virtualizarr.accessor.datatree import VirtualiZarrDataTreeAccessor

__all__ = ["VirtualiZarrDataTreeAccessor", "VirtualiZarrDatasetAccessor"]

for _name in ("virtualize", "vz"):
    xr.register_dataset_accessor(_name)(VirtualiZarrDatasetAccessor)  # type: ignore[no-untyped-call]
    xr.register_datatree_accessor(_name)(VirtualiZarrDataTreeAccessor)  # type: ignore[no-untyped-call]
del _name
