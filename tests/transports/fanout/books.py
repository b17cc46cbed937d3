"""Book events as a driver emits them (levels applied to a reference book, checksums
computed by it), made without any network: the fan-out's unit tests feed these."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from kraken_proto.book import OrderBook
from kraken_proto.events import BookLevel, BookUpdate

SYMBOL = "BTC/USD"
DEPTH = 10


def level(price: int, qty: int) -> BookLevel:
    """A level at ``price`` tenths with ``qty`` hundred-millionths, padded as Kraken pads."""
    return BookLevel.of(f"{Decimal(price) / 10:.1f}", f"{Decimal(qty) / 10**8:.8f}")


class Market:
    """A reference book of :data:`SYMBOL` turning level changes into verified events."""

    def __init__(self) -> None:
        self.book = OrderBook(SYMBOL, DEPTH, price_precision=1, qty_precision=8)

    def snapshot(self, bids: list[BookLevel], asks: list[BookLevel]) -> BookUpdate:
        """A snapshot event (bids below asks, as the caller draws them)."""
        checksum = self.book.apply_snapshot(bids, asks)
        return BookUpdate(SYMBOL, tuple(bids), tuple(asks), checksum, None, True)

    def update(self, bids: list[BookLevel], asks: list[BookLevel]) -> BookUpdate:
        """An update event."""
        checksum = self.book.apply_update(bids, asks)
        return BookUpdate(SYMBOL, tuple(bids), tuple(asks), checksum)

    def levels(self) -> tuple[list[BookLevel], list[BookLevel]]:
        """The reference book's levels now."""
        return self.book.bids(), self.book.asks()


# Bids at 600000..600099 tenths, asks at 600100..600199: the sides never cross.
bid_prices = st.integers(600_000, 600_099)
ask_prices = st.integers(600_100, 600_199)
quantities = st.integers(0, 5_000_000)


@st.composite
def changes(draw: st.DrawFn) -> tuple[list[BookLevel], list[BookLevel]]:
    """One update's levels (a zero quantity deletes)."""
    bids = draw(st.lists(st.builds(level, bid_prices, quantities), max_size=3))
    asks = draw(st.lists(st.builds(level, ask_prices, quantities), max_size=3))
    return bids, asks


@st.composite
def sessions(draw: st.DrawFn) -> list[BookUpdate]:
    """A snapshot and the updates after it, as a driver would emit them."""
    market = Market()
    nonzero = st.integers(1, 5_000_000)
    # A snapshot holds at most the depth (Kraken sends the best DEPTH levels).
    bids = draw(st.lists(st.builds(level, bid_prices, nonzero), min_size=1, max_size=DEPTH))
    asks = draw(st.lists(st.builds(level, ask_prices, nonzero), min_size=1, max_size=DEPTH))
    events = [market.snapshot(bids, asks)]
    for bid_levels, ask_levels in draw(st.lists(changes(), max_size=40)):
        events.append(market.update(bid_levels, ask_levels))
    return events
