"""Reader for GRIB files (editions 1 and 2): one reference per message, grouped as cfgrib does.

Every message is read once (GRIB keeps its metadata inside each message, so there is no
header to read alone), checked (:mod:`.messages`), and handed to ecCodes through cfgrib:
cfgrib's own index and ``build_dataset_components`` decide the variables, dimensions,
coordinates and attributes, exactly as ``xr.open_dataset(f, engine="cfgrib")`` shows
them. Only the locations are ours:

* a data variable's chunk is one message, shape ``(1, ..., 1, *grid)``; a field that
  cfgrib's hypercube lacks is a missing chunk, reading as NaN, as in cfgrib;
* its codec (``numcodecs.virtualizarr_grib``,
  :class:`~virtualizarr.manifests.chunk_codecs.GribCodec`) decodes a message with ecCodes
  as cfgrib does (float32, missing points NaN);
* coordinates (``time``, ``step``, levels, ``valid_time``, latitudes...) are computed by
  cfgrib and kept inline, except grid coordinates larger than
  :data:`INLINE_COORDINATE_BYTES`, which reference their first message (decoded by the
  same codec from ecCodes' ``latitudes``/``longitudes``);
* a file whose fields cfgrib cannot put in one dataset (several level types, say) is
  split as ``cfgrib.open_datasets`` splits it, into groups named by the splitting keys'
  values (``"surface"``, ``"heightAboveGround_instant"``...); open one with ``group=``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
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
    MISSING,
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    check_dimension_sizes,
    make_array_metadata,
)
from virtualizarr.manifests.chunk_codecs import GRIB_CODEC_ID
from virtualizarr.readers.base import Probe, Source, require_location
from virtualizarr.readers.grib import ALIASES, NAME, detect
from virtualizarr.readers.grib.messages import Message, check_message, scan_messages
from virtualizarr.readers.values import inline_variable

__all__ = ["GRIBReader", "read_grib"]

INLINE_COORDINATE_BYTES: Final = 1 << 18
"""Grid coordinates up to this size are kept inline; larger ones reference a message."""

MAX_POINTS: Final = 1 << 28
"""Most grid points a message may claim (ecCodes computes its coordinates in memory)."""

OPTIONS: Final = frozenset(
    {
        "filter_by_keys",
        "read_keys",
        "ignore_keys",
        "encode_cf",
        "squeeze",
        "time_dims",
        "extra_coords",
        "coords_as_attributes",
        "values_dtype",
    }
)
"""Reader options: cfgrib's ``backend_kwargs`` of the same names and meanings."""

_LOG = logging.getLogger("cfgrib")


def _imports() -> tuple[Any, Any, Any, Any]:
    try:
        import cfgrib.cfmessage
        import cfgrib.dataset
        import cfgrib.messages
        import eccodes
    except (ImportError, RuntimeError) as e:  # eccodes raises RuntimeError without its library
        raise MissingDependencyError(
            f"reading GRIB files needs the packages 'cfgrib' and 'eccodes' ({e}). Install "
            "them with `pip install cfgrib eccodes` (or `pip install virtualizarr[grib]`)."
        ) from e
    return cfgrib.dataset, cfgrib.messages, cfgrib.cfmessage, eccodes


MAX_GAUSSIAN_N: Final = 16000
"""Largest Gaussian grid number (parallels pole to equator) accepted; O8000 models exist."""


def _check_gaussian(msg: Any, offset: int, label: str) -> None:
    """Refuse a Gaussian grid ecCodes would overrun computing its latitudes.

    ecCodes finds a Gaussian grid's first latitude among the ``2N`` Gaussian latitudes and
    copies ``Nj`` from there; a definition where that cannot work (a pole, which is never
    a Gaussian latitude, or ``Nj > 2N``) makes it read past its table and crash.
    """
    if msg.message_get("gridType", str, "") not in ("regular_gg", "reduced_gg"):
        return
    n = msg.message_get("N", int, 0)
    nj = msg.message_get("Nj", int, 0)
    first = msg.message_get("latitudeOfFirstGridPointInDegrees", float, 0.0)
    last = msg.message_get("latitudeOfLastGridPointInDegrees", float, 0.0)
    if not (0 < n <= MAX_GAUSSIAN_N and 0 < nj <= 2 * n and abs(first) < 90 and abs(last) < 90):
        raise FileFormatError(
            f"{label}: the GRIB message at byte {offset} defines an impossible Gaussian grid "
            f"(N={n}, Nj={nj}, latitudes {first} to {last}); expected 0 < Nj <= 2N <= "
            f"{2 * MAX_GAUSSIAN_N} and latitudes strictly between the poles. The message is "
            "corrupt."
        )


class _Fieldset(Mapping[int, Any]):
    """cfgrib's view of the file: message offset -> cfgrib ``Message``, read on demand."""

    def __init__(
        self, location: Location, files: FileCache, messages: list[Message], mods: tuple[Any, ...]
    ) -> None:
        self._location = location
        self._files = files
        self._messages = {m.offset: m for m in messages}
        self._cfmessages, self._eccodes = mods[1], mods[3]
        self._label = location.label()

    def message(self, offset: int) -> Any:
        m = self._messages[offset]
        data = self._files.read_at(self._location, m.offset, m.length)
        if len(data) != m.length:
            raise FileFormatError(f"{self._label}: the message at byte {offset} is truncated.")
        check_message(data, offset, self._label)
        handle = self._eccodes.codes_new_from_message(data)
        msg = self._cfmessages.Message(codes_id=handle, errors="raise")
        points = msg.message_get("numberOfPoints", int, 0)
        if not 0 < points <= MAX_POINTS:
            raise FileFormatError(
                f"{self._label}: the GRIB message at byte {offset} claims {points} grid points; "
                f"expected 1 to {MAX_POINTS}. The message is corrupt."
            )
        _check_gaussian(msg, offset, self._label)
        return msg

    def __getitem__(self, key: int) -> Any:
        return self.message(key)

    def __iter__(self) -> Iterator[int]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def items(self) -> Any:
        return ((off, self.message(off)) for off in self._messages)


def _split_name(fbk: Mapping[str, Any], taken: set[str]) -> str:
    name = "_".join(str(v) for v in fbk.values()) or "fields"
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


class _Build:
    """Turns cfgrib's dataset components into a virtual group."""

    def __init__(self, url: str, messages: list[Message], values_dtype: np.dtype[Any]) -> None:
        self.url = url
        self.lengths = {m.offset: m.length for m in messages}
        self.dtype = values_dtype.newbyteorder("<")

    def data_variable(self, name: str, var: Any) -> VirtualVariable:
        arr = var.data
        shape = tuple(int(n) for n in arr.shape)
        geo = int(arr.geo_ndim)
        header = shape[: len(shape) - geo]
        grid = (*header, *([1] * geo))
        ids = np.full(grid, MISSING, np.int32)
        offs = np.zeros(grid, np.uint64)
        lens = np.zeros(grid, np.uint64)
        for header_indexes, message_ids in arr.field_id_index.items():
            cell = (*header_indexes, *([0] * geo))
            first = message_ids[0]
            if not isinstance(first, int) or first not in self.lengths:
                raise UnsupportedFeatureError(f"variable {name!r}: a field is not a whole message.")
            ids[cell] = 0
            offs[cell] = first
            lens[cell] = self.lengths[first]
        metadata = make_array_metadata(
            shape=shape,
            dtype=self.dtype,
            chunks=(*([1] * len(header)), *shape[len(header) :]),
            fill_value=np.nan,
            codecs=[
                {
                    "name": f"numcodecs.{GRIB_CODEC_ID}",
                    "configuration": {
                        "key": "values",
                        "dtype": self.dtype.str,
                        "grid_2d": geo == 2,
                    },
                }
            ],
            dimension_names=tuple(var.dimensions),
        )
        attrs = dict(var.attributes)
        data = ManifestArray(
            metadata,
            ChunkManifest([self.url], ids, offs, lens),
            name=name,
            encoding_attrs=cf_encoding_attrs(attrs),
        )
        return VirtualVariable(tuple(var.dimensions), data, attrs)

    def grid_coordinate(self, name: str, var: Any, first: int) -> VirtualVariable:
        """A large latitude/longitude array as a reference to the message it comes from."""
        values = np.asarray(var.data)
        dtype = values.dtype.newbyteorder("<")
        metadata = make_array_metadata(
            shape=values.shape,
            dtype=dtype,
            chunks=values.shape,
            fill_value=0.0,
            codecs=[
                {
                    "name": f"numcodecs.{GRIB_CODEC_ID}",
                    "configuration": {"key": f"{name}s", "dtype": dtype.str},
                }
            ],
            dimension_names=tuple(var.dimensions),
        )
        grid = (1,) * values.ndim
        manifest = ChunkManifest(
            [self.url],
            np.zeros(grid, np.int32),
            np.full(grid, first, np.uint64),
            np.full(grid, self.lengths[first], np.uint64),
        )
        attrs = dict(var.attributes)
        return VirtualVariable(
            tuple(var.dimensions), ManifestArray(metadata, manifest, name=name), attrs
        )

    def group(self, components: tuple[Any, ...], drop: set[str]) -> VirtualGroup:
        _, variables, attributes, _ = components
        firsts: dict[tuple[str, ...], int] = {}
        for var in variables.values():
            if hasattr(var.data, "field_id_index"):
                geo = tuple(var.dimensions[len(var.dimensions) - var.data.geo_ndim :])
                ids = var.data.index.field_ids_index
                if ids and isinstance(ids[0][1][0], int):
                    firsts.setdefault(geo, ids[0][1][0])
        out: dict[str, VirtualVariable] = {}
        for name, var in variables.items():
            if name in drop:
                continue
            if hasattr(var.data, "field_id_index"):
                out[name] = self.data_variable(name, var)
                continue
            values = np.asarray(var.data)
            dims = tuple(var.dimensions)
            if (
                name in ("latitude", "longitude")
                and values.nbytes > INLINE_COORDINATE_BYTES
                and dims in firsts
                and values.ndim == len(dims)
            ):
                out[name] = self.grid_coordinate(name, var, firsts[dims])
            else:
                out[name] = inline_variable(name, values, dims, dict(var.attributes))
        check_dimension_sizes(out, self.url, FileFormatError)
        attrs = {k: v for k, v in attributes.items() if k != "history"}
        return VirtualGroup(out, attrs)


def _index(
    fieldset: _Fieldset, mods: tuple[Any, ...], options: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """cfgrib's index of every message, and the keyword arguments to build datasets."""
    dataset, cfmessages, cfmessage, _ = mods
    time_dims = tuple(options.get("time_dims", ("time", "step")))
    extra_coords = dict(options.get("extra_coords", {}))
    fbk = dict(options.get("filter_by_keys", {}))
    keys = dataset.compute_index_keys(time_dims, extra_coords, fbk)
    keys = [k for k in keys if k not in set(options.get("ignore_keys", ()))]
    index = cfmessages.FieldsetIndex.from_fieldset(fieldset, keys, cfmessage.COMPUTED_KEYS)
    kwargs = {
        "read_keys": tuple(options.get("read_keys", ())),
        "time_dims": time_dims,
        "extra_coords": extra_coords,
        "errors": "warn",  # cfgrib's default: a variable that clashes is skipped
        "encode_cf": tuple(
            options.get("encode_cf", ("parameter", "time", "geography", "vertical"))
        ),
        "squeeze": bool(options.get("squeeze", True)),
        "coords_as_attributes": dict(options.get("coords_as_attributes", {})),
        "values_dtype": np.dtype(options.get("values_dtype", np.float32)),
    }
    return index.subindex(fbk), kwargs


def _datasets(
    index: Any, kwargs: dict[str, Any], mods: tuple[Any, ...]
) -> list[tuple[dict[str, Any], Any]]:
    """cfgrib's datasets: one, or the split ``cfgrib.open_datasets`` makes."""
    dataset = mods[0]
    try:
        return [({}, dataset.build_dataset_components(index, **kwargs))]
    except dataset.DatasetBuildError as e:
        if len(e.args) < 3 or not e.args[2]:
            raise
        splits: list[dict[str, Any]] = list(e.args[2])
    out: list[tuple[dict[str, Any], Any]] = []
    for fbk in splits:
        own = {k: v for k, v in fbk.items() if k not in index.filter_by_keys}
        for sub_fbk, comp in _datasets(index.subindex(own), kwargs, mods):
            out.append(({**own, **sub_fbk}, comp))
    return out


def read_grib(
    location: Location,
    drop_variables: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> VirtualGroup:
    """Describe a GRIB file as cfgrib groups its fields.

    Parameters
    ----------
    location : Location
        The file, local or remote.
    drop_variables : iterable of str
    options : mapping, optional
        cfgrib's ``backend_kwargs`` (:data:`OPTIONS`), e.g. ``filter_by_keys``.

    Returns
    -------
    VirtualGroup
        The dataset cfgrib builds; when cfgrib must split the file, an empty root whose
        groups are the parts (with ``"split_by"`` naming the keys).

    Raises
    ------
    FileFormatError
        If a message is damaged, or cfgrib cannot build a dataset from the fields.
    MissingDependencyError
        If cfgrib or eccodes is not installed.
    """
    mods = _imports()
    opts = dict(options or {})
    drop = set(drop_variables)
    label = location.label()
    with FileCache(storage_options=location.storage_options) as files:
        size = files.size(location)

        def read(offset: int, n: int) -> bytes:
            return files.read_at(location, offset, n)

        messages = list(scan_messages(read, size, label))
        if not messages:
            raise FileFormatError(f"{label}: no GRIB message found; expected 'GRIB' ... '7777'.")
        fieldset = _Fieldset(location, files, messages, mods)
        try:
            index, kwargs = _index(fieldset, mods, opts)
            if not index.field_ids_index:
                raise FileFormatError(
                    f"{label}: no GRIB message matches filter_by_keys={opts.get('filter_by_keys')}."
                )
            parts = _datasets(index, kwargs, mods)
            build = _Build(location.url, messages, kwargs["values_dtype"])
            groups = [(fbk, build.group(comp, drop)) for fbk, comp in parts]
        except VirtualiZarrError:
            raise
        except Exception as e:  # ecCodes' GribInternalError, cfgrib's DatasetBuildError...
            raise FileFormatError(
                f"{label}: ecCodes/cfgrib could not build a dataset from its GRIB messages "
                f"({type(e).__name__}: {e}). The file may be corrupt; cfgrib's "
                "filter_by_keys (reader_options={'filter_by_keys': {...}}) selects fields."
            ) from e
    if len(groups) == 1 and not groups[0][0]:
        return groups[0][1]
    taken: set[str] = set()
    named = {_split_name(fbk, taken): g for fbk, g in groups}
    keys = sorted({k for fbk, _ in groups for k in fbk})
    return VirtualGroup({}, {"split_by": keys}, named)


class GRIBReader:
    """Virtualize GRIB 1 and 2 files: one chunk per message, variables as cfgrib makes them.

    Examples
    --------
    >>> GRIBReader().name
    'grib'
    """

    name = NAME
    aliases: tuple[str, ...] = ALIASES
    references = False

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the file starts with ``GRIB``.

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
        """Describe a GRIB file (or one of the groups cfgrib splits it into).

        Parameters
        ----------
        source : Location
            The file, local or remote.
        group : str, optional
            One of the groups a file is split into when cfgrib cannot make one dataset
            of it (the error then lists them).
        drop_variables : iterable of str
        **options
            cfgrib's ``backend_kwargs``: ``filter_by_keys``, ``read_keys``,
            ``ignore_keys``, ``encode_cf``, ``squeeze``, ``time_dims``, ``extra_coords``,
            ``coords_as_attributes``, ``values_dtype``.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileFormatError
            If the file is damaged, or has no such group.
        UnsupportedFeatureError
            If the file must be opened one group at a time (no ``group`` given).
        MissingDependencyError
            If cfgrib or eccodes is not installed.
        UnexpectedOptionError
            For options cfgrib does not have.
        """
        location = require_location(source, "GRIB")
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise UnexpectedOptionError(
                f"the GRIB reader takes cfgrib's options {sorted(OPTIONS)}; got {unknown}. "
                "Remove them."
            )
        tree = read_grib(location, drop_variables, options)
        label = location.label()
        if group in (None, "", "/"):
            if tree.groups and not tree.variables:
                raise UnsupportedFeatureError(
                    f"{label}: cfgrib cannot put all its fields in one dataset (they differ in "
                    f"{tree.attrs['split_by']}); open one group at a time with group= one of "
                    f"{sorted(tree.groups)}, or select fields with "
                    "reader_options={'filter_by_keys': {...}}."
                )
            return tree
        name = str(group).strip("/")
        if name not in tree.groups:
            raise FileFormatError(
                f"{label} has no group {group!r}; its groups are {sorted(tree.groups) or ['/']}."
            )
        return tree.groups[name]
