"""The books part: the maintained books of one book channel, and their one snapshot,
checksum and resync path.

:class:`Books` is built once per channel (:func:`l2_books` for ``book``, keeping
:class:`~kraken_proto.book.OrderBook` objects; :func:`l3_books` for ``level3``, keeping
:class:`~kraken_proto.level3.L3Book` objects); both run the same code. A snapshot replaces a book
and makes it live, an update is applied while it is live, and either one's checksum is
compared with Kraken's: on a mismatch (or a number the book refuses) that symbol alone is
resynced through the :class:`~kraken_proto.subscriber.Subscriber` (deltas are dropped until
the fresh snapshot), within the resync budget, after which the subscription fails.

A book's :class:`~kraken_proto.book.BookState` changes in one place, :meth:`Books._move`,
which also keeps :attr:`Books.resyncing`, the count of books being rebuilt: the connection
is ``RESYNCING`` while any book part counts one. Whoever composes the part learns of the
moments the count may have changed through the ``changed`` callback. Resyncs (by reason)
and checksum mismatches are counted in the protocol's :class:`~kraken_proto.counters.Tally`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from kraken_proto.actions import Action, Emit
from kraken_proto.book import BookState, OrderBook, apply_live_update
from kraken_proto.config import ClientConfig, Precision
from kraken_proto.counters import Tally
from kraken_proto.events import BookResync, ProtocolError
from kraken_proto.level3 import L3Book
from kraken_proto.subscriber import Subscriber
from kraken_proto.subscriptions import (
    BOOK_DEPTHS,
    LEVEL3_DEPTHS,
    Subscription,
    SubscriptionStatus,
    SubscriptionTrigger,
)

__all__ = ["Books", "ResyncsChanged", "l2_books", "l3_books"]

_set = msgspec.structs.force_setattr
_LIVE = BookState.LIVE
_RESYNCING = BookState.RESYNCING
_FAILED = BookState.FAILED
_AWAITING = BookState.AWAITING_SNAPSHOT
_FAILED_SUB = SubscriptionStatus.FAILED
_T = SubscriptionTrigger

ResyncsChanged = Callable[[list[Action], float, str], None]
"""``changed(actions, now, reason)``: a book started or finished resyncing (or gave up)."""


class _Book(Protocol):
    """What the part needs of a book (both :class:`OrderBook` and :class:`L3Book`)."""

    @property
    def state(self) -> BookState: ...
    @property
    def is_live(self) -> bool: ...
    def apply_snapshot(self, bids: Any, asks: Any, /) -> int: ...
    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None: ...
    def mark_resyncing(self) -> None: ...
    def mark_failed(self) -> None: ...
    def mark_awaiting_snapshot(self) -> None: ...


_B = TypeVar("_B", bound=_Book)
NewBook = Callable[[str, int, int | None, Precision | None], _B]
"""``new(symbol, depth, view_depth, precision)``."""


def _depth_for(levels: int, depths: tuple[int, ...]) -> int:
    """The smallest depth Kraken offers that holds ``levels`` price levels."""
    return next((depth for depth in depths if depth >= levels), depths[-1])


class Books(Generic[_B]):
    """The books of one channel (see the module docstring)."""

    __slots__ = (
        "_apply",
        "_books",
        "_changed",
        "_channel",
        "_depths",
        "_heard",
        "_levels_of",
        "_new",
        "_precisions",
        "_replay",
        "_resyncing",
        "_silence",
        "_subscriber",
        "_tally",
        "_unusable",
    )

    def __init__(
        self,
        channel: str,
        new: NewBook[_B],
        apply_update: Callable[[_B, Any, Any], int],
        config: ClientConfig,
        *,
        replay: bool,
        subscriber: Subscriber,
        changed: ResyncsChanged,
        tally: Tally,
        levels_of: Callable[[Sequence[Any]], int] = len,
        depths: tuple[int, ...] = BOOK_DEPTHS,
        unusable: str = "unusable number in the {} book: {!r}",
    ) -> None:
        self._channel = channel
        self._new = new
        self._apply = apply_update
        self._replay = replay
        self._subscriber = subscriber
        self._changed = changed
        self._tally = tally
        self._levels_of = levels_of
        self._depths = depths
        self._unusable = unusable
        self._heard = subscriber.heard
        self._silence = config.silent_subscription_timeout is not None
        self._precisions: dict[str, Precision] = dict(config.precisions)
        self._books: dict[str, _B] = {}
        self._resyncing = 0

    @property
    def resyncing(self) -> int:
        """How many books are being rebuilt from a fresh snapshot."""
        return self._resyncing

    def get(self, symbol: str) -> _B | None:
        """The book of ``symbol``, or ``None`` if it is not subscribed."""
        return self._books.get(symbol)

    # ------------------------------------------------------------------ the subscriptions'

    def follow(
        self,
        record: Subscription,
        trigger: SubscriptionTrigger,
        status: SubscriptionStatus | None,
        actions: list[Action],
        now: float,
    ) -> None:
        """The subscription of a book moved (``status`` ``None``: it ended): the book follows.

        A new subscription gets an empty book awaiting its snapshot (replacing an old one);
        one sent again, or whose connection was lost, awaits a snapshot (a failed book stays
        failed when the connection is lost); a failed one's book fails; an ended one's book
        is dropped, left awaiting a snapshot that never comes (so a reference kept elsewhere
        serves no stale levels).
        """
        symbol = record.symbol
        assert symbol is not None  # book channels are per symbol
        book = self._books.get(symbol)
        if trigger is _T.SUBSCRIBE or trigger is _T.ADOPT:
            if book is not None:
                self._move(book, _AWAITING)
            depth = record.params.get("depth") or 10
            precision = self._precisions.get(symbol)
            self._books[symbol] = self._new(symbol, depth, record.user_depth, precision)
            return
        assert book is not None  # every record of this channel has its book
        if status is None:
            self._move(book, _AWAITING)
            del self._books[symbol]
            if trigger is _T.UNSUBSCRIBED:
                self._changed(actions, now, "no book left resyncing")
        elif trigger is _T.RESUBSCRIBE or (
            trigger is _T.CONNECTION_LOST and book.state is not _FAILED
        ):
            self._move(book, _AWAITING)
        elif status is _FAILED_SUB and trigger is not _T.CONNECTION_LOST:
            resyncing = book.state is _RESYNCING
            self._move(book, _FAILED)
            if resyncing:
                self._changed(actions, now, "no book left resyncing")

    def set_precision(self, symbol: str, precision: Precision) -> None:
        """The instrument channel told ``symbol``'s precisions: the book's checksum uses them
        from now on, as will a book of it subscribed later."""
        self._precisions[symbol] = precision
        book = self._books.get(symbol)
        if book is not None:
            book.set_precision(precision.price, precision.qty)

    # ------------------------------------------------------------------ frames

    def on_frame(self, frame: Any, now: float) -> list[Action]:
        """A data frame of this channel (``BookFrame`` or ``Level3Frame``)."""
        if frame.type == "snapshot":
            return self._snapshots(frame.data, now)
        actions: list[Action] = []
        books = self._books
        apply = self._apply
        for update in frame.data:
            symbol = update.symbol
            book = books.get(symbol)
            if book is None:
                problem = f"{self._channel} update for {symbol} without a snapshot"
                actions.append(Emit(ProtocolError(problem, "", now)))
                continue
            if not book.is_live:
                continue  # deltas are dropped until the new snapshot arrives
            try:
                # The book is live: straight to the update loop (OrderBook.apply_update
                # would check that again).
                computed = apply(book, update.bids, update.asks)
            except (ArithmeticError, ValueError) as exc:  # no number, NaN, absurd exponents
                self._refused(symbol, exc, actions, now)
                continue
            if computed != update.checksum:
                self._mismatch(symbol, computed, update.checksum, actions, now)
                continue
            _set(update, "received_at", now)
            actions.append(Emit(update))
        if self._silence:
            self._heard(self._channel, frame.data, now)
        return actions

    def _snapshots(self, data: Sequence[Any], now: float) -> list[Action]:
        actions: list[Action] = []
        for update in data:
            symbol = update.symbol
            book = self._books.get(symbol)
            if book is None:
                if not self._replay:
                    problem = (
                        f"Kraken sent a {self._channel} snapshot for {symbol}, "
                        "which is not subscribed; ignored"
                    )
                    actions.append(Emit(ProtocolError(problem, "", now)))
                    continue
                book = self._adopt(symbol, update, actions, now)
            resyncing = book.state is _RESYNCING
            try:
                computed = self._move(book, _LIVE, update)
            except (ArithmeticError, ValueError) as exc:
                self._refused(symbol, exc, actions, now)
                continue
            if computed != update.checksum:
                self._mismatch(symbol, computed, update.checksum, actions, now)
                continue
            _set(update, "received_at", now)
            _set(update, "snapshot", True)
            actions.append(Emit(update))
            if resyncing:
                self._changed(actions, now, "no book left resyncing")
        if self._silence:
            self._heard(self._channel, data, now)
        return actions

    def _adopt(self, symbol: str, update: Any, actions: list[Action], now: float) -> _B:
        """A snapshot for a symbol never subscribed (replay only: a capture that starts
        mid-stream): subscribe it as the capture shows it."""
        levels = max(self._levels_of(update.bids), self._levels_of(update.asks), 1)
        depth = _depth_for(levels, self._depths)
        self._subscriber.adopt(self._channel, symbol, depth, actions, now)
        return self._books[symbol]

    def invalid_frame(
        self, symbols: Sequence[str], reason: str, actions: list[Action], now: float
    ) -> None:
        """A frame of this channel did not decode: the live books it names can no longer be
        trusted, so each is rebuilt."""
        for symbol in symbols:
            book = self._books.get(symbol)
            if book is not None and book.state is _LIVE:
                self._resync(symbol, reason, "invalid_frame", actions, now)

    # ------------------------------------------------------------------ resyncs

    def _refused(self, symbol: str, exc: Exception, actions: list[Action], now: float) -> None:
        problem = self._unusable.format(symbol, exc)
        actions.append(Emit(ProtocolError(problem, "", now)))
        self._resync(symbol, problem, "unusable", actions, now)

    def _mismatch(
        self, symbol: str, computed: int, sent: int, actions: list[Action], now: float
    ) -> None:
        self._tally.checksum_failure(self._channel)
        reason = f"checksum mismatch: computed {computed}, Kraken sent {sent}"
        self._resync(symbol, reason, "checksum", actions, now)

    def _resync(
        self, symbol: str, reason: str, kind: str, actions: list[Action], now: float
    ) -> None:
        """Rebuild one book from a fresh snapshot; give up after the configured budget.
        ``kind`` is the reason counted (one of :data:`~kraken_proto.counters.RESYNC_REASONS`)."""
        key = (self._channel, symbol)
        subscriber = self._subscriber
        attempt = subscriber.spend_resync(key, now)
        book = self._books[symbol]
        if attempt is None:  # being unsubscribed: nothing to rebuild, nothing to serve
            self._move(book, _AWAITING)
            self._changed(actions, now, "no book left resyncing")
            return
        if attempt > subscriber.resync_budget:
            subscriber.give_up(key, reason, actions, now)  # the book fails with it
            self._changed(actions, now, "no book left resyncing")
            return
        self._move(book, _RESYNCING)
        actions.append(Emit(BookResync(symbol, reason, attempt, now)))
        self._tally.resync(self._channel, kind)
        subscriber.resubscribe(key, actions, now)
        self._changed(actions, now, f"resyncing {symbol}")

    def _move(self, book: _B, target: BookState, snapshot: Any = None) -> int:
        """The one place a book's state changes; keeps the count of resyncing books.

        ``LIVE`` only by applying ``snapshot`` (its checksum is returned; if the book
        refuses it, the exception propagates and nothing changed)."""
        old = book.state
        computed = 0
        if target is _LIVE:
            computed = book.apply_snapshot(snapshot.bids, snapshot.asks)
        elif target is _RESYNCING:
            book.mark_resyncing()
        elif target is _FAILED:
            book.mark_failed()
        else:
            book.mark_awaiting_snapshot()
        if old is _RESYNCING and target is not _RESYNCING:
            self._resyncing -= 1
        elif target is _RESYNCING and old is not _RESYNCING:
            self._resyncing += 1
        return computed


def _new_l2(
    symbol: str, depth: int, view_depth: int | None, precision: Precision | None
) -> OrderBook:
    return OrderBook(
        symbol,
        depth,
        view_depth=view_depth,
        price_precision=None if precision is None else precision.price,
        qty_precision=None if precision is None else precision.qty,
    )


def _new_l3(symbol: str, depth: int, view_depth: int | None, precision: Precision | None) -> L3Book:
    return L3Book(
        symbol,
        depth,
        price_precision=None if precision is None else precision.price,
        qty_precision=None if precision is None else precision.qty,
    )


def _price_levels(orders: Sequence[Any]) -> int:
    return len({order.limit_price for order in orders})


def l2_books(
    config: ClientConfig,
    *,
    replay: bool,
    subscriber: Subscriber,
    changed: ResyncsChanged,
    tally: Tally,
) -> Books[OrderBook]:
    """The part for the ``book`` channel (L2)."""
    return Books(
        "book",
        _new_l2,
        apply_live_update,
        config,
        replay=replay,
        subscriber=subscriber,
        changed=changed,
        tally=tally,
    )


def l3_books(
    config: ClientConfig,
    *,
    replay: bool,
    subscriber: Subscriber,
    changed: ResyncsChanged,
    tally: Tally,
) -> Books[L3Book]:
    """The part for the ``level3`` channel (L3)."""
    return Books(
        "level3",
        _new_l3,
        L3Book.apply_update,
        config,
        replay=replay,
        subscriber=subscriber,
        changed=changed,
        tally=tally,
        levels_of=_price_levels,
        depths=LEVEL3_DEPTHS,
        unusable="unusable level3 message for {}: {}",
    )
