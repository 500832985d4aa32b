"""Writers: kerchunk references (dict/JSON) and, later, Zarr manifest stores."""

from virtualizarr.writers.kerchunk import KerchunkRefs, dataset_to_kerchunk_refs

__all__ = ["KerchunkRefs", "dataset_to_kerchunk_refs"]
