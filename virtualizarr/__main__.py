"""``python -m virtualizarr``: the command line (see :mod:`virtualizarr.cli`)."""

from virtualizarr.cli import main

main()
