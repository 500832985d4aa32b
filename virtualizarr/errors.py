"""The one error tree of virtualizarr.

Every failure the library reports is a :class:`VirtualiZarrError`. Each subclass also
inherits the builtin exception that fits it best, so ``except ValueError`` and friends
keep working for callers who do not know about this module.

Messages follow one rule: say what was expected, what was found, and what to do.
"""

from __future__ import annotations

__all__ = [
    "ChunkReadError",
    "DroppedVariableWarning",
    "FileFormatError",
    "IncompatibleArraysError",
    "InvalidArgumentError",
    "InvalidMetadataError",
    "InvalidReferencesError",
    "MigrationError",
    "MissingDependencyError",
    "NetworkError",
    "OutputExistsError",
    "OutputWriteError",
    "SourceNotFoundError",
    "StaleReferenceError",
    "UnsupportedFeatureError",
    "UnsupportedFileTypeError",
    "UnexpectedOptionError",
    "UnsupportedOperationError",
    "UntrustedReferenceError",
    "VirtualiZarrError",
    "VirtualiZarrWarning",
]


class VirtualiZarrError(Exception):
    """Root of every error raised by virtualizarr."""


class FileFormatError(VirtualiZarrError, ValueError):
    """A source file is corrupt, truncated, or not of the format it claims to be."""


class UnsupportedFileTypeError(VirtualiZarrError, ValueError):
    """A file is of a kind no installed reader understands."""


class UnsupportedFeatureError(VirtualiZarrError, NotImplementedError):
    """A file uses a feature (filter, data type, layout) that cannot be virtualized."""


class UnsupportedOperationError(VirtualiZarrError, NotImplementedError):
    """An operation on a virtual array that would need the data itself."""


class InvalidMetadataError(VirtualiZarrError, ValueError):
    """Zarr array metadata (a ``zarr.json`` document, a data type, a codec chain) is not valid."""


class IncompatibleArraysError(VirtualiZarrError, ValueError):
    """Virtual arrays that cannot be combined without producing wrong values."""


class InvalidReferencesError(VirtualiZarrError, ValueError):
    """A reference document (kerchunk JSON/Parquet, chunk manifest) is malformed."""


class ChunkReadError(VirtualiZarrError, OSError):
    """A referenced chunk could not be read (missing file, byte range past its end)."""


class StaleReferenceError(VirtualiZarrError, OSError):
    """A source file changed after it was virtualized."""


class OutputExistsError(VirtualiZarrError, FileExistsError):
    """A writer was asked to create output where some already exists."""


class OutputWriteError(VirtualiZarrError, OSError):
    """Output could not be written (an object store refused a write, the network failed)."""


class NetworkError(VirtualiZarrError, ConnectionError):
    """A remote location could not be reached (refused connection, unknown host, timeout)."""


class MissingDependencyError(VirtualiZarrError, ImportError):
    """An optional dependency needed for this operation is not installed."""


class SourceNotFoundError(VirtualiZarrError, FileNotFoundError):
    """A file to virtualize does not exist."""


class UntrustedReferenceError(VirtualiZarrError, PermissionError):
    """A reference document points somewhere the caller did not allow, or is too large.

    Raised by the reference readers under the ``allowed_sources=`` and ``limits=``
    policy (see :mod:`virtualizarr.security` and ``docs/security.md``).
    """


class InvalidArgumentError(VirtualiZarrError, ValueError):
    """An argument has a value the function does not accept (``format=``, ``mode=``...)."""


class UnexpectedOptionError(VirtualiZarrError, TypeError):
    """A reader was given options it does not take."""


class MigrationError(VirtualiZarrError, TypeError):
    """An argument of VirtualiZarr 1.x/2.x or kerchunk that virtualizarr spells otherwise.

    The message says what to write instead; ``docs/migration.md`` shows both side by side.
    """


class VirtualiZarrWarning(UserWarning):
    """Root of every warning virtualizarr emits."""


class DroppedVariableWarning(VirtualiZarrWarning):
    """A dataset of the source is left out of the virtual dataset.

    The message names it, says why (a dataset of object references, an external link to
    another file, a dangling link...) and what to do instead. No variable is ever left out
    without this warning or an error naming it.
    """
