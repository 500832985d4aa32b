"""Reader for FITS files: image HDUs and binary tables as byte ranges, big-endian kept.

astropy parses the headers (``fits.open``, lazily, without reading data); the data of
each HDU is one chunk at ``datLoc`` (:meth:`~astropy.io.fits.hdu.base._BaseHDU.fileinfo`):

* an image HDU (the primary array or an ``IMAGE`` extension) becomes a variable of
  shape ``(NAXISn, ..., NAXIS1)`` named by its ``EXTNAME`` (``PRIMARY`` for the primary
  array; ``EXTNAME_<EXTVER>`` or ``HDU<i>`` when names repeat or are missing), with
  dimensions ``x`` (``NAXIS1``), ``y``, ``z``, then ``naxis4``...; when another HDU
  already gave such a dimension another length, this HDU's dimensions take its name as a
  suffix (``y_SCI_2``). Scaling follows astropy (:mod:`.scaling`);
* a binary table becomes one variable of a structured (record) dtype, dimension
  ``<name>_row``, with the columns as fields in the file's big-endian layout. Columns that
  astropy converts (``TSCAL``/``TZERO``, logical ``L``, bits ``X``, variable-length
  ``P``/``Q``, ``TDIM``, vectors) make the table unsupported;
* header keywords are the variable's attributes (``COMMENT`` and ``HISTORY`` joined into
  one string each); a primary header without data gives the dataset's attributes.

Tile-compressed images (``ZIMAGE``), ASCII tables and random groups are refused with
:class:`~virtualizarr.errors.UnsupportedFeatureError` naming the HDU; pass
``drop_variables=[name]`` to open the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from virtualizarr.errors import (
    FileFormatError,
    MissingDependencyError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location
from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    make_array_metadata,
)
from virtualizarr.readers.base import Probe, Source, check_grid_cells, require_location
from virtualizarr.readers.fits import ALIASES, NAME, detect
from virtualizarr.readers.fits.scaling import image_encoding

__all__ = ["FITSReader", "read_fits"]

AXES: Final = ("x", "y", "z")
TABLE_TYPES: Final = {
    "B": ">u1",
    "I": ">i2",
    "J": ">i4",
    "K": ">i8",
    "E": ">f4",
    "D": ">f8",
    "C": ">c8",
    "M": ">c16",
}
"""Binary-table column codes astropy shows as stored (``A`` strings too)."""

_TEXT_CARDS: Final = ("COMMENT", "HISTORY", "")


def _import_fits() -> Any:
    try:
        from astropy.io import fits
    except ImportError as e:
        raise MissingDependencyError(
            f"reading FITS files needs the package 'astropy' ({e}). Install it with "
            "`pip install astropy` (or `pip install virtualizarr[fits]`)."
        ) from e
    return fits


def _attrs(header: Any) -> dict[str, Any]:
    """Header keywords as attributes: plain values, commentary cards joined."""
    out: dict[str, Any] = {}
    text: dict[str, list[str]] = {}
    for card in header.cards:
        key = str(card.keyword)
        if key in _TEXT_CARDS:
            if key:
                text.setdefault(key, []).append(str(card.value))
            continue
        value = card.value
        if isinstance(value, bool | np.bool_ | int | np.integer):
            value = int(value)
        elif isinstance(value, float | np.floating):
            value = float(value)
        elif not isinstance(value, str):
            value = str(value)
        out.setdefault(key, value)
    for key, lines in text.items():
        out[key] = "\n".join(lines)
    return out


def _names(hdus: list[Any]) -> list[str]:
    out: list[str] = []
    for i, hdu in enumerate(hdus):
        base = str(hdu.name or "").strip() or f"HDU{i}"
        name = base
        if name in out:
            extver = hdu.header.get("EXTVER")
            name = f"{base}_{extver}" if isinstance(extver, int) else f"{base}_{i}"
        while name in out:
            name += "_"
        out.append(name)
    return out


def _dims(ndim: int, name: str, shape: tuple[int, ...], taken: dict[str, int]) -> tuple[str, ...]:
    base = [AXES[k] if k < 3 else f"naxis{k + 1}" for k in reversed(range(ndim))]
    if any(taken.get(d, n) != n for d, n in zip(base, shape, strict=True)):
        base = [f"{d}_{name}" for d in base]
    for d, n in zip(base, shape, strict=True):
        taken.setdefault(d, n)
    return tuple(base)


def _chunk(
    url: str, offset: int, length: int, shape: tuple[int, ...], size: int, where: str
) -> ChunkManifest:
    if offset + length > size:
        raise FileFormatError(
            f"{where}: its data ({length} bytes at {offset}) runs past the end of the file "
            f"({size} bytes); the file is truncated."
        )
    grid = (1,) * len(shape)
    return ChunkManifest(
        [url],
        np.zeros(grid, np.int32),
        np.full(grid, offset, np.uint64),
        np.full(grid, length, np.uint64),
    )


def _image(
    hdu: Any, name: str, url: str, size: int, where: str, taken: dict[str, int]
) -> VirtualVariable:
    header = hdu.header
    naxis = header.get("NAXIS")
    if not isinstance(naxis, int) or not 0 < naxis <= 999:
        raise FileFormatError(f"{where}: NAXIS is {naxis!r}; expected 1 to 999.")
    lengths = [header.get(f"NAXIS{k}") for k in range(1, naxis + 1)]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths):
        raise FileFormatError(f"{where}: NAXISn are {lengths}; expected integers >= 0.")
    shape = tuple(int(n) for n in reversed(lengths))
    enc = image_encoding(
        header.get("BITPIX"), header.get("BSCALE"), header.get("BZERO"), header.get("BLANK"), where
    )
    nbytes = int(np.prod(shape, dtype=np.float64)) * enc.stored.itemsize
    attrs = {**_attrs(header), **enc.cf_attrs}
    dims = _dims(len(shape), name, shape, taken)
    fill = (enc.data_type or enc.stored).newbyteorder("=").type(0)
    metadata = make_array_metadata(
        shape=shape,
        dtype=enc.stored,
        chunks=tuple(max(n, 1) for n in shape),
        fill_value=fill,
        array_codecs=enc.filters,
        data_type=enc.data_type,
        dimension_names=dims,
    )
    offset = int(hdu.fileinfo()["datLoc"])
    if nbytes == 0:  # an axis of length 0: no chunk at all
        manifest = ChunkManifest.empty(tuple(1 if n else 0 for n in shape))
    else:
        manifest = _chunk(url, offset, nbytes, shape, size, where)
    data = ManifestArray(metadata, manifest, name=name, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims, data, attrs)


def _table(hdu: Any, name: str, url: str, size: int, where: str) -> VirtualVariable:
    header = hdu.header
    fields: list[tuple[str, str]] = []
    for col in hdu.columns:
        fmt = str(col.format)
        code = fmt.lstrip("0123456789")[:1]
        repeat = int(fmt[: len(fmt) - len(fmt.lstrip("0123456789"))] or 1)
        converted = col.bscale not in (None, 1) or col.bzero not in (None, 0) or col.dim
        if converted or not (code == "A" or (code in TABLE_TYPES and repeat == 1)):
            raise UnsupportedFeatureError(
                f"{where}: column {col.name!r} (TFORM {fmt}"
                + (", scaled" if converted else "")
                + ") is a kind astropy converts when reading (scaled, logical, bit, vector or "
                f"variable-length); only plain numeric and string columns are supported. Pass "
                f"drop_variables=[{name!r}] to open the rest."
            )
        fields.append((str(col.name), f"S{repeat}" if code == "A" else TABLE_TYPES[code]))
    try:
        dtype = np.dtype(fields)
    except (TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: its columns do not form a record type ({e}).") from e
    rows, row_bytes = header.get("NAXIS2"), header.get("NAXIS1")
    if not (isinstance(rows, int) and isinstance(row_bytes, int) and rows >= 0):
        raise FileFormatError(f"{where}: NAXIS1/NAXIS2 are not row size and count.")
    if row_bytes != dtype.itemsize:
        raise FileFormatError(
            f"{where}: rows are {row_bytes} bytes but the columns add up to {dtype.itemsize}."
        )
    dims = (f"{name}_row",)
    metadata = make_array_metadata(
        shape=(rows,),
        dtype=dtype,
        chunks=(max(rows, 1),),
        fill_value=np.zeros((), dtype.newbyteorder("="))[()],
        dimension_names=dims,
    )
    offset = int(hdu.fileinfo()["datLoc"])
    manifest = _chunk(url, offset, rows * row_bytes, (rows,), size, where)
    attrs = _attrs(header)
    return VirtualVariable(dims, ManifestArray(metadata, manifest, name=name), attrs)


def _variable(
    fits: Any, hdu: Any, name: str, url: str, size: int, where: str, taken: dict[str, int]
) -> VirtualVariable | None:
    header = hdu.header
    if header.get("ZIMAGE") is True or isinstance(hdu, fits.CompImageHDU):
        raise UnsupportedFeatureError(
            f"{where}: a tile-compressed image (ZIMAGE); no maintained codec decodes FITS "
            f"tile compression in Zarr. Pass drop_variables=[{name!r}] to open the rest, or "
            "decompress the file (astropy, funpack)."
        )
    if isinstance(hdu, fits.GroupsHDU | fits.TableHDU):
        kind = "random groups" if isinstance(hdu, fits.GroupsHDU) else "an ASCII table"
        raise UnsupportedFeatureError(
            f"{where}: {kind} is not supported. Pass drop_variables=[{name!r}] to open the rest."
        )
    if isinstance(hdu, fits.BinTableHDU):
        return _table(hdu, name, url, size, where)
    if header.get("NAXIS", 0) == 0:
        return None
    return _image(hdu, name, url, size, where, taken)


def read_fits(location: Location, drop_variables: Iterable[str] = ()) -> VirtualGroup:
    """Describe the image and binary-table HDUs of a FITS file.

    Parameters
    ----------
    location : Location
        The file, local or remote.
    drop_variables : iterable of str
        HDUs (by variable name) to leave out.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    FileFormatError
        If the file is not a readable FITS file.
    UnsupportedFeatureError
        For tile-compressed images, ASCII tables, random groups and converted columns.
    MissingDependencyError
        If astropy is not installed.
    """
    fits = _import_fits()
    drop = set(drop_variables)
    label = location.label()
    variables: dict[str, VirtualVariable] = {}
    root_attrs: dict[str, Any] = {}
    with FileCache(storage_options=location.storage_options) as files:
        size = files.size(location)
        try:
            with contextlib.ExitStack() as stack:
                handle = files.handle(location)
                if isinstance(handle, str):  # astropy leaves a path it opened open on errors
                    handle = stack.enter_context(open(handle, "rb"))
                hdus = stack.enter_context(
                    fits.open(
                        handle,
                        memmap=False,
                        lazy_load_hdus=False,
                        do_not_scale_image_data=True,
                        ignore_missing_end=True,
                        output_verify="ignore",
                    )
                )
                hdu_list = list(hdus)
                names = _names(hdu_list)
                taken: dict[str, int] = {}
                check_grid_cells((len(hdu_list),), len(hdu_list), label, FileFormatError)
                for i, (hdu, name) in enumerate(zip(hdu_list, names, strict=True)):
                    if name in drop:
                        continue
                    where = f"{label}, HDU {i} ({name})"
                    var = _variable(fits, hdu, name, location.url, size, where, taken)
                    if var is not None:
                        variables[name] = var
                    elif i == 0:
                        root_attrs = _attrs(hdu.header)
        except VirtualiZarrError:
            raise
        except (MemoryError, RecursionError) as e:
            raise FileFormatError(
                f"{label}: astropy could not parse it ({type(e).__name__})."
            ) from e
        except Exception as e:  # astropy raises OSError, ValueError, VerifyError, KeyError...
            raise FileFormatError(
                f"{label}: not a readable FITS file ({type(e).__name__}: {e}). The file is "
                "probably truncated or corrupt; check it with astropy's fitsinfo or fitsverify."
            ) from e
    return VirtualGroup(variables, root_attrs)


class FITSReader:
    """Virtualize FITS files: image HDUs and binary tables as byte ranges.

    Examples
    --------
    >>> FITSReader().name
    'fits'
    """

    name = NAME
    aliases: tuple[str, ...] = ALIASES
    references = False

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the file starts with ``SIMPLE  =``.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        return detect(probe)

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Describe a FITS file's HDUs as variables.

        Parameters
        ----------
        source : Location
            The file, local or remote.
        group : str, optional
            Must be None: FITS files have no groups.
        drop_variables : iterable of str
            HDUs (by variable name) to leave out.
        **options
            None are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileFormatError
            If the file is not a readable FITS file.
        UnsupportedFeatureError
            For a group, tile-compressed images, ASCII tables, random groups and
            converted table columns.
        MissingDependencyError
            If astropy is not installed.
        UnexpectedOptionError
            For any option.
        """
        location = require_location(source, "FITS")
        if group not in (None, "", "/"):
            raise UnsupportedFeatureError(
                f"FITS files have no groups, so group={group!r} cannot be opened in "
                f"{location.url}; pass group=None (each HDU is a variable)."
            )
        if options:
            raise UnexpectedOptionError(
                f"the FITS reader takes no reader options; got {sorted(options)}. Remove them."
            )
        return read_fits(location, drop_variables)
