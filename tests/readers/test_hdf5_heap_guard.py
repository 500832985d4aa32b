"""Global heap collections are walked before libhdf5 loads them (it loops on damaged ones)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from virtualizarr.errors import FileFormatError
from virtualizarr.readers.hdf5.heap_guard import (
    check_collection,
    heap_ids_in,
    walk_problem,
)


def collection(objects: list[tuple[int, bytes]], size: int = 4096) -> bytes:
    """A version-1 collection of ``size`` bytes holding ``objects``, then free space."""
    out = bytearray(b"GCOL\x01\x00\x00\x00" + size.to_bytes(8, "little"))
    for index, data in objects:
        out += index.to_bytes(2, "little") + b"\x00\x00" * 3 + len(data).to_bytes(8, "little")
        out += data + b"\x00" * (-len(data) % 8)
    free = size - len(out)
    out += b"\x00\x00\x00\x00\x00\x00\x00\x00" + free.to_bytes(8, "little")
    return bytes(out.ljust(size, b"\x00"))


def test_a_well_formed_collection_walks() -> None:
    assert walk_problem(collection([(1, b"a"), (2, b"bb"), (3, b"c" * 9)]), 8) is None


def test_a_collection_written_by_h5py_walks(tmp_path: Path) -> None:
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("s", data=np.array(["a", "bb", "ccc"], dtype=object))
        d.attrs["names"] = np.array(["x", "yy"], dtype=h5py.string_dtype())
    blob = path.read_bytes()
    at = blob.index(b"GCOL")
    size = int.from_bytes(blob[at + 8 : at + 16], "little")
    assert walk_problem(blob[at : at + size], 8) is None


def test_a_zero_sized_free_space_object_is_found() -> None:
    block = bytearray(collection([(1, b"ab"), (2, b"cd")]))
    # grow object 1 so that the walk lands on zeros: a free-space object of size 0
    block[16 + 8 : 16 + 16] = (256).to_bytes(8, "little")
    problem = walk_problem(bytes(block), 8)
    assert problem is not None and "size 0" in problem


def test_an_object_past_the_end_is_found() -> None:
    block = bytearray(collection([(1, b"ab")]))
    block[16 + 8 : 16 + 16] = (10_000).to_bytes(8, "little")
    problem = walk_problem(bytes(block), 8)
    assert problem is not None and "past the end" in problem


def test_check_collection_names_the_referrer_and_the_way_out() -> None:
    good = collection([(1, b"ab")])
    bad = bytearray(good)
    bad[16 + 8 : 16 + 16] = (256).to_bytes(8, "little")
    for blob, raises in ((good, False), (bytes(bad), True), (b"GCOL", True), (b"XXXX" * 8, True)):
        data = b"\x00" * 64 + blob

        def read(addr: int, size: int, data: bytes = data) -> bytes:
            if addr + size > len(data):
                raise OSError(f"read past the end ({addr} + {size} > {len(data)})")
            return data[addr : addr + size]

        if raises:
            with pytest.raises(FileFormatError, match=r"address 64.*'v'.*re-create"):
                check_collection(read, 64, 8, "'v'")
        else:
            check_collection(read, 64, 8, "'v'")


def test_heap_ids_skip_empty_sequences_and_undefined_addresses() -> None:
    def elem(n: int, addr: int, index: int) -> bytes:
        return n.to_bytes(4, "little") + addr.to_bytes(8, "little") + index.to_bytes(4, "little")

    data = elem(3, 4096, 1) + elem(0, 8192, 2) + elem(1, 2**64 - 1, 3) + elem(2, 4096, 4)
    assert heap_ids_in(data, 4, 8) == {4096}
    assert heap_ids_in(data, 100, 8) == {4096}  # a lying count is bounded by the data
    assert heap_ids_in(elem(5, 12288, 1)[:-1], 1, 8) == set()  # a truncated element


def _damage_first_collection(path: Path) -> None:
    """Make the first heap object's size 256: libhdf5's walk then lands on a zero size."""
    blob = bytearray(path.read_bytes())
    at = blob.index(b"GCOL")
    blob[at + 16 + 8 : at + 16 + 16] = (256).to_bytes(8, "little")
    path.write_bytes(bytes(blob))


OPEN_DAMAGED = """
import sys, virtualizarr
from virtualizarr.errors import FileFormatError
try:
    virtualizarr.open_virtual_dataset(sys.argv[1])
except FileFormatError as e:
    print("REFUSED", e)
"""


@pytest.mark.parametrize("where", ["dataset", "compact", "chunked", "attribute", "netcdf4"])
def test_a_damaged_collection_is_refused_before_libhdf5_loops(tmp_path: Path, where: str) -> None:
    import subprocess
    import sys

    path = tmp_path / f"{where}.nc"
    if where == "netcdf4":
        import netCDF4

        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("x", 3)
            v = nc.createVariable("label", str, ("x",))
            v[:] = np.array(["a", "bb", "ccc"], dtype=object)
            nc.createVariable("t", "f4", ("x",))[:] = [1, 2, 3]
    else:
        with h5py.File(path, "w") as f:
            words = np.array(["a", "bb", "ccc"], dtype=object)
            if where == "dataset":
                f.create_dataset("s", data=words)
            elif where == "compact":
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_layout(h5py.h5d.COMPACT)
                f.create_dataset("s", data=words, dcpl=dcpl)
            elif where == "chunked":
                f.create_dataset("s", data=words, chunks=(2,), maxshape=(None,))
            else:
                d = f.create_dataset("v", data=np.arange(3.0))
                d.attrs["names"] = np.array(["x", "yy", "zzz"], dtype=h5py.string_dtype())
    _damage_first_collection(path)
    # a subprocess with a timeout: without the guard libhdf5 never returns
    done = subprocess.run(
        [sys.executable, "-c", OPEN_DAMAGED, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "REFUSED" in done.stdout, done.stdout + done.stderr
    assert "global heap collection" in done.stdout and "re-create" in done.stdout


def test_the_guard_accepts_every_layout_of_variable_length_data(tmp_path: Path) -> None:
    import xarray as xr

    import virtualizarr

    path = tmp_path / "ok.h5"
    words = np.array([f"w{i}" * (i % 5) for i in range(50)], dtype=object)
    compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    compact.set_layout(h5py.h5d.COMPACT)
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=words)
        f.create_dataset("compact", data=words[:5], dcpl=compact)
        f.create_dataset("chunked", data=words, chunks=(7,), maxshape=(None,))
        f.attrs["tags"] = np.array(["a", "b"], dtype=h5py.string_dtype())
    with h5py.File(path) as f:
        assert f["compact"].id.get_create_plist().get_layout() == h5py.h5d.COMPACT
    vds = virtualizarr.open_virtual_dataset(str(path))
    refs = tmp_path / "refs.json"
    vds.virtualize.to_kerchunk(refs, format="json")
    with xr.open_dataset(refs, engine="virtualizarr") as got, h5py.File(path) as f:
        for name in ("contiguous", "compact", "chunked"):
            assert got[name].values.astype(str).tolist() == f[name].asstr()[...].tolist()
