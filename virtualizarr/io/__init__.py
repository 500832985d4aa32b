"""Everything that touches files and URLs, and nothing else.

* :mod:`~virtualizarr.io.uri` -- paths and URIs, as pure functions;
* :mod:`~virtualizarr.io.objects` -- :class:`Location`: one file or directory, local or
  remote, and every operation on it (sizes, ranged reads, listings, puts);
* :mod:`~virtualizarr.io.files` -- :class:`FileCache`: the files a reader keeps open;
* :mod:`~virtualizarr.io.write` -- atomic file writes and all-or-nothing directory outputs;
* :mod:`~virtualizarr.io.remote` -- fsspec plumbing (retries, capped HTTP reads) under them.

Local files are read with ``os`` calls; anything else goes through fsspec, so remote
protocols plug in here and nowhere else.
"""

from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location

__all__ = ["FileCache", "Location"]
