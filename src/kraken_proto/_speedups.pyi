"""The L2 book's update loop, compiled (optional; see ``OrderBook._apply_update_py``)."""

from collections.abc import Sequence

from kraken_proto.book import OrderBook
from kraken_proto.events import BookLevel

def apply_update(book: OrderBook, bids: Sequence[BookLevel], asks: Sequence[BookLevel], /) -> int:
    """Apply an update to a live book and return its CRC32."""

TOP: int
"""Levels per side covered by the checksum (``kraken_proto.book._TOP``)."""
TRUNCATED: int
"""Truncated entries a side keeps before compacting (``kraken_proto.book._TRUNCATED``)."""
