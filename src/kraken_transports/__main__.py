"""``python -m kraken_transports``: the ``kraken-ws`` command line."""

from __future__ import annotations

import sys

from kraken_transports.cli import main

if __name__ == "__main__":
    sys.exit(main())
