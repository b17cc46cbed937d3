"""The L2 order book of one symbol, maintained from snapshots and updates, checksum-verified.

Each side is three parallel lists in ascending price order: the prices (searched with
:mod:`bisect`), the :class:`~kraken_proto.events.BookLevel` objects as received, and each
level's checksum fragment ``T(price) + T(qty)`` (see :mod:`kraken_proto.checksum`). The best
ask is the first entry and the best bid the last, so bids never need negated keys. The
encoded top-10 text of each side is cached and rebuilt only for a side whose top 10 a
message changed, so a message's checksum is one small join plus a chained ``zlib.crc32``.

Fragments are computed once per level value, when it is set inside the top 10 or when it
rises into it; levels deeper than that (most of a depth-1000 book) are never formatted.

The book does not compare checksums or resync by itself: :meth:`OrderBook.apply_snapshot`
and :meth:`OrderBook.apply_update` return the computed CRC32, the caller compares it with
the wire value and drives the state (:meth:`OrderBook.mark_resyncing` and friends).
Queries answer only while the book is :attr:`BookState.LIVE`.
"""

from __future__ import annotations

import enum
import zlib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from decimal import Decimal

from kraken_proto.checksum import CHECKSUM_LEVELS, level_fragment
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.events import BookLevel

__all__ = ["BookState", "OrderBook"]

_MAX_PRECISION = 18
_TOP = CHECKSUM_LEVELS
_ZERO = Decimal(0)


class BookState(enum.Enum):
    """Whether a book's levels can be trusted."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"
    """Created or reset; no snapshot applied since."""
    LIVE = "live"
    """A snapshot was applied, and every update since; queries are served."""
    RESYNCING = "resyncing"
    """A checksum failed; a fresh snapshot has been requested."""
    FAILED = "failed"
    """Resyncing was given up; the book stays unusable until a new snapshot."""


_LIVE = BookState.LIVE


def _check_precision(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"{name} must be None or an int, got {value!r}")
    if not 0 <= value <= _MAX_PRECISION:
        raise LocalProtocolError(f"{name} must be between 0 and {_MAX_PRECISION}, got {value}")


def _fragmenter(
    price_precision: int | None, qty_precision: int | None
) -> Callable[[BookLevel], str]:
    """A function giving ``level_fragment(level.price, level.qty, ...)`` at these precisions.

    Kraken pads every book number to the pair's precision, so a value's positional text
    normally has exactly the right decimals already; its digits are then that text without
    ``.`` and leading zeros, which is much cheaper than the general formatting. Anything
    else (exponent form, other decimals) goes through ``level_fragment`` itself. Equality
    with ``level_fragment`` is property-tested.
    """
    if price_precision is None and qty_precision is None:

        def own_digits(level: BookLevel) -> str:
            ps = str(level.price)
            qs = str(level.qty)
            if "E" in ps or "E" in qs:
                return level_fragment(level.price, level.qty, None, None)
            return ps.replace(".", "").lstrip("0") + qs.replace(".", "").lstrip("0")

        return own_digits

    if not price_precision or not qty_precision:
        # Precision 0 or only one precision known: rare enough for the general path.
        def general(level: BookLevel) -> str:
            return level_fragment(level.price, level.qty, price_precision, qty_precision)

        return general

    # With p > 0 decimals, the "." of a padded text is the character at index -p - 1.
    p_dot = -price_precision - 1
    q_dot = -qty_precision - 1

    def padded(level: BookLevel) -> str:
        ps = str(level.price)
        qs = str(level.qty)
        try:
            if ps[p_dot] == "." and qs[q_dot] == "." and "E" not in ps and "E" not in qs:
                return ps.replace(".", "").lstrip("0") + qs.replace(".", "").lstrip("0")
        except IndexError:  # shorter than the precision: not padded
            pass
        return level_fragment(level.price, level.qty, price_precision, qty_precision)

    return padded


class OrderBook:
    """The L2 book of one symbol at a subscribed ``depth``, queried up to ``view_depth``.

    ``depth`` is what was subscribed: each side is truncated to it after every message, as
    Kraken requires for the checksum. ``view_depth`` (default ``depth``) is what the user
    asked for; queries never show more, which lets the protocol subscribe deeper than the
    user's depth. ``price_precision``/``qty_precision`` are the pair's decimals used by the
    checksum; ``None`` means the digits of each value as received.
    """

    __slots__ = (
        "_ask_bytes",
        "_ask_crc",
        "_ask_frags",
        "_ask_levels",
        "_ask_prices",
        "_bid_bytes",
        "_bid_frags",
        "_bid_levels",
        "_bid_prices",
        "_depth",
        "_fragment",
        "_price_precision",
        "_qty_precision",
        "_state",
        "_symbol",
        "_view_depth",
    )

    def __init__(
        self,
        symbol: str,
        depth: int,
        *,
        view_depth: int | None = None,
        price_precision: int | None = None,
        qty_precision: int | None = None,
    ) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise LocalProtocolError(f"depth must be an int >= 1, got {depth!r}")
        if view_depth is None:
            view_depth = depth
        elif (
            isinstance(view_depth, bool)
            or not isinstance(view_depth, int)
            or not 1 <= view_depth <= depth
        ):
            raise LocalProtocolError(
                f"view_depth must be an int between 1 and depth ({depth}), got {view_depth!r}"
            )
        _check_precision("price_precision", price_precision)
        _check_precision("qty_precision", qty_precision)
        self._symbol = symbol
        self._depth = depth
        self._view_depth = view_depth
        self._price_precision = price_precision
        self._qty_precision = qty_precision
        self._fragment = _fragmenter(price_precision, qty_precision)
        self._state = BookState.AWAITING_SNAPSHOT
        self._ask_prices: list[Decimal] = []
        self._bid_prices: list[Decimal] = []
        self._ask_levels: list[BookLevel] = []
        self._bid_levels: list[BookLevel] = []
        # "" = not computed; never the case within a side's top 10 (the best 10 entries).
        self._ask_frags: list[str] = []
        self._bid_frags: list[str] = []
        self._ask_bytes = b""
        self._ask_crc = 0
        self._bid_bytes = b""

    # -- attributes ---------------------------------------------------------------------------

    @property
    def symbol(self) -> str:
        """The pair this book belongs to, e.g. ``"BTC/USD"``."""
        return self._symbol

    @property
    def depth(self) -> int:
        """The subscribed depth: each side holds at most this many levels."""
        return self._depth

    @property
    def view_depth(self) -> int:
        """The user's depth (``<= depth``): queries never return more levels than this."""
        return self._view_depth

    @property
    def state(self) -> BookState:
        """The book's current :class:`BookState`."""
        return self._state

    @property
    def is_live(self) -> bool:
        """True when the book is :attr:`BookState.LIVE` and queries are served."""
        return self._state is _LIVE

    @property
    def price_precision(self) -> int | None:
        """Decimals of prices used by the checksum, or ``None`` for the values' own digits."""
        return self._price_precision

    @property
    def qty_precision(self) -> int | None:
        """Decimals of quantities used by the checksum, or ``None`` for the values' own digits."""
        return self._qty_precision

    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None:
        """Change the checksum precisions and recompute the cached fragments with them."""
        _check_precision("price_precision", price_precision)
        _check_precision("qty_precision", qty_precision)
        self._price_precision = price_precision
        self._qty_precision = qty_precision
        self._fragment = _fragmenter(price_precision, qty_precision)
        self._reset_fragments()

    # -- state --------------------------------------------------------------------------------

    def mark_resyncing(self) -> None:
        """Mark the book as being rebuilt; queries refuse until the next snapshot."""
        self._state = BookState.RESYNCING

    def mark_failed(self) -> None:
        """Mark the book as given up; queries refuse until a snapshot is applied."""
        self._state = BookState.FAILED

    def mark_awaiting_snapshot(self) -> None:
        """Mark the book as waiting for a snapshot (e.g. after a reconnect)."""
        self._state = BookState.AWAITING_SNAPSHOT

    # -- applying messages --------------------------------------------------------------------

    def apply_snapshot(self, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
        """Replace the whole book with a snapshot, make it live and return its checksum.

        Levels are applied in order (a qty of 0 deletes, so it is ignored here), then each
        side is truncated to ``depth``. The returned CRC32 is for the caller to compare with
        the checksum the snapshot carried. Allowed in any state.
        """
        depth = self._depth
        prices, levels = _sorted_side(asks)
        del prices[depth:]
        del levels[depth:]
        self._ask_prices = prices
        self._ask_levels = levels
        prices, levels = _sorted_side(bids)
        excess = len(prices) - depth
        if excess > 0:
            del prices[:excess]
            del levels[:excess]
        self._bid_prices = prices
        self._bid_levels = levels
        self._reset_fragments()
        self._state = _LIVE
        return zlib.crc32(self._bid_bytes, self._ask_crc)

    def apply_update(self, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
        """Apply an update's levels in order, truncate to ``depth``, return the checksum.

        A qty of 0 deletes the level (a no-op for a price the book does not hold); a price
        may appear several times in one message. Raises
        :class:`~kraken_proto.errors.LocalProtocolError` unless the book is live.
        """
        if self._state is not _LIVE:
            raise LocalProtocolError(
                f"book {self._symbol} is {self._state.value}: apply a snapshot before updates"
            )
        if asks:
            self._update_asks(asks)
        if bids:
            self._update_bids(bids)
        return zlib.crc32(self._bid_bytes, self._ask_crc)

    def checksum(self) -> int:
        """The CRC32 of the current levels, whatever the state."""
        return zlib.crc32(self._bid_bytes, self._ask_crc)

    def _reset_fragments(self) -> None:
        """Compute the top-10 fragments of both sides afresh, forget the others."""
        fragment = self._fragment
        levels = self._ask_levels
        self._ask_frags = [fragment(level) for level in levels[:_TOP]]
        self._ask_frags += [""] * (len(levels) - _TOP)
        levels = self._bid_levels
        self._bid_frags = [""] * (len(levels) - _TOP)
        self._bid_frags += [fragment(level) for level in levels[-_TOP:]]
        self._ask_bytes = "".join(self._ask_frags[:_TOP]).encode()
        self._ask_crc = zlib.crc32(self._ask_bytes)
        self._bid_bytes = "".join(self._bid_frags[: -_TOP - 1 : -1]).encode()

    # The two update loops mirror each other. They are written out per side because this is
    # the hot path and the index arithmetic differs (the best ask is first, the best bid
    # last). Each keeps the invariant that every level within its side's top 10 has its
    # fragment: set there, it is formatted at once; when a delete in the top 10 lifts the
    # 11th level in, that one is formatted.

    def _update_asks(self, updates: Sequence[BookLevel]) -> None:
        prices = self._ask_prices
        levels = self._ask_levels
        frags = self._ask_frags
        fragment = self._fragment
        dirty = False
        for level in updates:
            price = level.price
            i = bisect_left(prices, price)
            if i < len(prices) and prices[i] == price:
                if level.qty:
                    levels[i] = level
                    if i < _TOP:
                        frags[i] = fragment(level)
                        dirty = True
                    else:
                        frags[i] = ""
                else:
                    del prices[i]
                    del levels[i]
                    del frags[i]
                    if i < _TOP:
                        dirty = True
                        if len(frags) >= _TOP and not frags[_TOP - 1]:
                            frags[_TOP - 1] = fragment(levels[_TOP - 1])
            elif level.qty:
                prices.insert(i, price)
                levels.insert(i, level)
                if i < _TOP:
                    frags.insert(i, fragment(level))
                    dirty = True
                else:
                    frags.insert(i, "")
        depth = self._depth
        if len(prices) > depth:
            del prices[depth:]
            del levels[depth:]
            del frags[depth:]
        if dirty:
            self._ask_bytes = data = "".join(frags[:_TOP]).encode()
            self._ask_crc = zlib.crc32(data)

    def _update_bids(self, updates: Sequence[BookLevel]) -> None:
        prices = self._bid_prices
        levels = self._bid_levels
        frags = self._bid_frags
        fragment = self._fragment
        dirty = False
        for level in updates:
            price = level.price
            i = bisect_left(prices, price)
            # The rank from the best bid (0 = best) a level inserted at i takes; the level
            # already at i, if any, has rank ``rank - 1``.
            rank = len(prices) - i
            if rank and prices[i] == price:
                if level.qty:
                    levels[i] = level
                    if rank <= _TOP:
                        frags[i] = fragment(level)
                        dirty = True
                    else:
                        frags[i] = ""
                else:
                    del prices[i]
                    del levels[i]
                    del frags[i]
                    if rank <= _TOP:
                        dirty = True
                        if len(frags) >= _TOP and not frags[-_TOP]:
                            frags[-_TOP] = fragment(levels[-_TOP])
            elif level.qty:
                prices.insert(i, price)
                levels.insert(i, level)
                if rank < _TOP:
                    frags.insert(i, fragment(level))
                    dirty = True
                else:
                    frags.insert(i, "")
        excess = len(prices) - self._depth
        if excess > 0:
            del prices[:excess]
            del levels[:excess]
            del frags[:excess]
        if dirty:
            self._bid_bytes = "".join(frags[: -_TOP - 1 : -1]).encode()

    # -- queries ------------------------------------------------------------------------------

    def _require_live(self) -> None:
        if self._state is not _LIVE:
            raise BookNotLiveError(self._symbol, self._state.value)

    def _limit(self, n: int | None) -> int:
        if n is None:
            return self._view_depth
        if n < 0:
            raise LocalProtocolError(f"n must be None or >= 0, got {n}")
        return min(n, self._view_depth)

    def best_bid(self) -> BookLevel | None:
        """The highest bid, or ``None`` if there are no bids."""
        self._require_live()
        levels = self._bid_levels
        return levels[-1] if levels else None

    def best_ask(self) -> BookLevel | None:
        """The lowest ask, or ``None`` if there are no asks."""
        self._require_live()
        levels = self._ask_levels
        return levels[0] if levels else None

    def spread(self) -> Decimal | None:
        """Best ask price minus best bid price, or ``None`` if a side is empty."""
        self._require_live()
        if not self._bid_prices or not self._ask_prices:
            return None
        return self._ask_prices[0] - self._bid_prices[-1]

    def mid_price(self) -> Decimal | None:
        """The exact mean of the best bid and best ask prices, or ``None`` if a side is empty."""
        self._require_live()
        if not self._bid_prices or not self._ask_prices:
            return None
        return (self._ask_prices[0] + self._bid_prices[-1]) / 2

    def bids(self, n: int | None = None) -> list[BookLevel]:
        """The best ``n`` bids (up to ``view_depth``; all of those if ``n`` is None), best first."""
        self._require_live()
        return self._bid_levels[: -self._limit(n) - 1 : -1]

    def asks(self, n: int | None = None) -> list[BookLevel]:
        """The best ``n`` asks (up to ``view_depth``; all of those if ``n`` is None), best first."""
        self._require_live()
        return self._ask_levels[: self._limit(n)]

    def bid_volume(self) -> Decimal:
        """Total quantity of the bids within ``view_depth``."""
        self._require_live()
        return sum([level.qty for level in self._bid_levels[-self._view_depth :]], _ZERO)

    def ask_volume(self) -> Decimal:
        """Total quantity of the asks within ``view_depth``."""
        self._require_live()
        return sum([level.qty for level in self._ask_levels[: self._view_depth]], _ZERO)

    def __repr__(self) -> str:
        bid = self._bid_prices[-1] if self._bid_prices else None
        ask = self._ask_prices[0] if self._ask_prices else None
        return (
            f"<OrderBook {self._symbol} {self._state.value} bid={bid} ask={ask} "
            f"levels={len(self._bid_prices)}/{len(self._ask_prices)}>"
        )


def _sorted_side(updates: Sequence[BookLevel]) -> tuple[list[Decimal], list[BookLevel]]:
    """A snapshot side applied in order, as ascending parallel price and level lists."""
    by_price: dict[Decimal, BookLevel] = {}
    for level in updates:
        if level.qty:
            by_price[level.price] = level
        else:
            by_price.pop(level.price, None)
    prices = sorted(by_price)
    return prices, [by_price[price] for price in prices]
