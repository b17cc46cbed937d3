"""The bounded event buffer: each drop policy, coalescing, the rate cap, the accounting."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from kraken_proto import (
    OHLC,
    BackpressureConfig,
    BookUpdate,
    DropPolicy,
    StateChanged,
    Subscribed,
    Ticker,
    Trade,
)
from kraken_proto.backpressure import BufferStats, EventBuffer
from kraken_proto.events import Dropped, Event

MARKET = (Ticker, BookUpdate, Trade, OHLC)


def tick(symbol: str, n: int) -> Ticker:
    d = Decimal(n)
    return Ticker.of(symbol, d, d, d, d, d, d, d, d, d, d, d)


def trade(symbol: str, n: int) -> Trade:
    return Trade(symbol, "buy", Decimal(n), Decimal(1), "limit", n, "t")


def book(symbol: str, n: int) -> BookUpdate:
    return BookUpdate(symbol, (), (), n)


def state(n: int) -> StateChanged:
    return StateChanged("subscribed", "degraded", f"reason {n}")


def ack(symbol: str, n: int) -> Subscribed:
    return Subscribed("trade", symbol, n, {})


def drain(buffer: EventBuffer, now: float = 0.0) -> list[Event]:
    out = []
    while (event := buffer.pop(now)) is not None:
        out.append(event)
    return out


def test_fifo_when_under_capacity() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=5))
    events = [trade("BTC/USD", n) for n in range(5)]
    for event in events:
        assert buffer.push(event, 0.0)
    assert len(buffer) == 5
    assert buffer.next_ready(1.0) == 1.0
    assert drain(buffer) == events
    assert buffer.next_ready(1.0) is None
    assert buffer.stats == BufferStats(5, 5, 0, 0, 0)


def test_oldest_drops_the_oldest_and_reports_it_first() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.OLDEST))
    for n in range(4):
        assert buffer.push(trade("BTC/USD", n), 0.0)
    assert buffer.next_ready(3.0) == 3.0
    out = drain(buffer, 3.0)
    assert out == [Dropped(2, 0, "oldest", 3.0), trade("BTC/USD", 2), trade("BTC/USD", 3)]
    assert buffer.stats == BufferStats(4, 2, 2, 0, 0)


def test_latest_rejects_the_newcomer() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.LATEST))
    assert buffer.push(trade("BTC/USD", 0), 0.0)
    assert buffer.push(trade("BTC/USD", 1), 0.0)
    assert not buffer.push(trade("BTC/USD", 2), 0.0)
    out = drain(buffer, 1.0)
    assert out == [Dropped(1, 0, "latest", 1.0), trade("BTC/USD", 0), trade("BTC/USD", 1)]


def test_coalesce_replaces_tickers_and_books_per_symbol_when_full_never_trades() -> None:
    config = BackpressureConfig(max_queue_depth=3, drop_policy=DropPolicy.COALESCE)
    buffer = EventBuffer(config)
    buffer.push(tick("BTC/USD", 1), 0.0)
    buffer.push(book("BTC/USD", 1), 0.0)
    buffer.push(trade("BTC/USD", 1), 0.0)
    buffer.push(tick("BTC/USD", 2), 0.0)  # full: replaces the queued BTC ticker in place
    buffer.push(book("BTC/USD", 2), 0.0)  # full: replaces the queued BTC book update
    buffer.push(trade("BTC/USD", 2), 0.0)  # trades never coalesce: the oldest event goes
    out = drain(buffer)
    assert out == [
        Dropped(1, 2, "coalesce", 0.0),
        book("BTC/USD", 2),
        trade("BTC/USD", 1),
        trade("BTC/USD", 2),
    ]
    assert buffer.stats == BufferStats(6, 3, 1, 2, 0)


def test_coalesce_window_merges_before_the_queue_is_full() -> None:
    config = BackpressureConfig(
        max_queue_depth=100, drop_policy=DropPolicy.COALESCE, coalesce_window=0.5
    )
    buffer = EventBuffer(config)
    buffer.push(tick("ETH/USD", 1), 0.0)
    buffer.push(tick("ETH/USD", 2), 0.4)  # within the window: merged
    buffer.push(tick("BTC/USD", 1), 0.4)  # another symbol: kept
    buffer.push(tick("ETH/USD", 3), 1.0)  # the queued one is 1.0 s old: kept separately
    out = drain(buffer, 1.0)
    assert out == [
        Dropped(0, 1, "coalesce", 1.0),
        tick("ETH/USD", 2),
        tick("BTC/USD", 1),
        tick("ETH/USD", 3),
    ]


def test_control_events_are_never_dropped_and_do_not_count_against_the_depth() -> None:
    latest = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.LATEST))
    for event in (trade("BTC/USD", 0), trade("BTC/USD", 1), state(0), trade("BTC/USD", 2)):
        latest.push(event, 0.0)
    latest.push(ack("BTC/USD", 5), 0.0)
    assert drain(latest) == [
        Dropped(1, 0, "latest", 0.0),
        trade("BTC/USD", 0),
        trade("BTC/USD", 1),
        state(0),
        ack("BTC/USD", 5),
    ]
    oldest = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.OLDEST))
    for event in (state(1), state(2), trade("BTC/USD", 0), trade("BTC/USD", 1)):
        oldest.push(event, 0.0)
    oldest.push(trade("BTC/USD", 2), 0.0)  # drops trade 0, behind the two state changes
    assert len(oldest) == 4
    assert drain(oldest) == [
        Dropped(1, 0, "oldest", 0.0),
        state(1),
        state(2),
        trade("BTC/USD", 1),
        trade("BTC/USD", 2),
    ]


def test_a_consumer_that_keeps_falling_behind_still_gets_events() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=4))
    popped: list[Event | None] = []
    for n in range(20):
        for i in range(3):
            buffer.push(trade("BTC/USD", 3 * n + i), 0.0)
        popped.append(buffer.pop(0.0))
    kinds = [type(e).__name__ for e in popped]
    assert kinds[:3] == ["Trade", "Dropped", "Trade"]
    assert kinds.count("Trade") == 10 and kinds.count("Dropped") == 10
    stats = buffer.stats
    assert stats.received == stats.delivered + stats.dropped + stats.queued
    assert stats.delivered == 10


def test_delivery_rate_cap() -> None:
    buffer = EventBuffer(BackpressureConfig(max_messages_per_second=2.0))
    for n in range(5):
        buffer.push(trade("BTC/USD", n), 0.0)
    assert [e.trade_id for e in drain(buffer, 0.0)] == [0, 1]  # type: ignore[attr-defined]
    assert buffer.pop(0.1) is None
    assert buffer.next_ready(0.1) == 0.5
    assert buffer.pop(0.5) == trade("BTC/USD", 2)
    assert buffer.config.max_messages_per_second == 2.0


events_strategy = st.lists(
    st.tuples(
        st.sampled_from([tick, trade, book, ack]),
        st.sampled_from(["BTC/USD", "ETH/USD", "XRP/USD"]),
        st.booleans(),  # pop after this push?
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    ops=events_strategy,
    policy=st.sampled_from(list(DropPolicy)),
    depth=st.integers(1, 8),
    window=st.sampled_from([0.0, 0.3]),
)
def test_accounting_identity_and_order_hold_for_any_sequence(
    ops: list[tuple[object, str, bool]], policy: DropPolicy, depth: int, window: float
) -> None:
    config = BackpressureConfig(max_queue_depth=depth, drop_policy=policy, coalesce_window=window)
    buffer = EventBuffer(config)
    delivered: list[Event] = []
    reported_dropped = reported_coalesced = 0
    for n, (make, symbol, pop) in enumerate(ops):
        buffer.push(make(symbol, n), n * 0.1)  # type: ignore[operator]
        market = sum(1 for e in buffer._slots if isinstance(getattr(e, "event", e), MARKET))
        assert market == buffer._market <= depth
        if pop:
            event = buffer.pop(n * 0.1)
            if isinstance(event, Dropped):
                reported_dropped += event.dropped
                reported_coalesced += event.coalesced
            elif event is not None:
                delivered.append(event)
        stats = buffer.stats
        assert stats.received == stats.delivered + stats.dropped + stats.coalesced + stats.queued
    for event in drain(buffer, 1e6):
        if isinstance(event, Dropped):
            reported_dropped += event.dropped
            reported_coalesced += event.coalesced
        else:
            delivered.append(event)
    stats = buffer.stats
    assert (stats.dropped, stats.coalesced) == (reported_dropped, reported_coalesced)
    assert stats.delivered == len(delivered) and stats.queued == 0
    # Delivery order follows arrival order of the surviving events (coalescing keeps the slot).
    trades = [e.trade_id for e in delivered if isinstance(e, Trade)]
    assert trades == sorted(trades)
    # Every control event arrives, in order.
    acks = [e.req_id for e in delivered if isinstance(e, Subscribed)]
    assert acks == [n for n, (make, _, _) in enumerate(ops) if make is ack]
    if policy is not DropPolicy.COALESCE:
        assert stats.coalesced == 0


def test_take_needs_no_clock_until_a_summary_is_due_or_a_rate_cap_is_set() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.OLDEST))
    assert buffer.take() is None
    buffer.push(trade("A", 1), 0.0)
    buffer.push(state(2), 0.0)
    assert buffer.take() == trade("A", 1)
    assert buffer.take() == state(2)
    for n in range(3, 6):
        buffer.push(trade("A", n), 0.0)
    assert buffer.take() is None  # a Dropped summary is due: it needs the time
    assert buffer.pop(7.0) == Dropped(1, 0, "oldest", 7.0)
    assert buffer.take() == trade("A", 4)
    assert buffer.stats == BufferStats(5, 3, 1, 0, 1)
    capped = EventBuffer(BackpressureConfig(max_messages_per_second=10))
    capped.push(trade("A", 1), 0.0)
    assert capped.take() is None
    assert capped.pop(0.0) == trade("A", 1)


@settings(max_examples=200, deadline=None)
@given(
    ops=events_strategy,
    policy=st.sampled_from(list(DropPolicy)),
    depth=st.integers(1, 8),
    window=st.sampled_from([0.0, 0.3]),
)
def test_take_then_pop_reads_exactly_what_pop_alone_reads(
    ops: list[tuple[object, str, bool]], policy: DropPolicy, depth: int, window: float
) -> None:
    # The drivers read with take() (no clock) and fall back to pop(now) when it says None:
    # the gate that tells take() to defer (a summary due) must follow every drop, summary
    # and delivery exactly, or the two readers would see different streams.
    config = BackpressureConfig(max_queue_depth=depth, drop_policy=policy, coalesce_window=window)
    popped, taken = EventBuffer(config), EventBuffer(config)
    out_popped: list[Event | None] = []
    out_taken: list[Event | None] = []
    for n, (make, symbol, read) in enumerate(ops):
        now = n * 0.1
        event = make(symbol, n)  # type: ignore[operator]
        assert popped.push(event, now) == taken.push(event, now)
        if read:
            out_popped.append(popped.pop(now))
            out_taken.append(taken.take() or taken.pop(now))
        assert popped.stats == taken.stats
    assert out_taken == out_popped
    assert drain(taken, 1e6) == drain(popped, 1e6)
    assert popped.stats == taken.stats


class SpecialTrade(Trade, frozen=True):
    """A subclass of a market event: still market data."""


def test_a_subclass_of_a_market_event_is_bounded_dropped_and_delivered_as_market_data() -> None:
    buffer = EventBuffer(BackpressureConfig(max_queue_depth=2, drop_policy=DropPolicy.OLDEST))
    special = [SpecialTrade("A", "buy", Decimal(n), Decimal(1), "limit", n, "t") for n in range(4)]
    buffer.push(state(0), 0.0)
    for event in special[:3]:
        buffer.push(event, 0.0)  # the third drops the oldest special trade
    assert len(buffer) == 3 and buffer.stats.dropped == 1
    assert buffer.pop(0.0) == Dropped(1, 0, "oldest", 0.0)
    assert buffer.take() == state(0)
    assert buffer.take() == special[1]  # delivered: one market slot is free again
    buffer.push(special[3], 0.0)
    assert buffer.stats.dropped == 1
    assert [buffer.take(), buffer.take(), buffer.take()] == [special[2], special[3], None]
    assert buffer.stats == BufferStats(5, 4, 1, 0, 0)
