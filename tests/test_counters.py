"""What the core counts for monitoring (kraken_proto.counters, KrakenProtocol.counters) and
the buffer's counts by event type (EventBuffer.counts)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from frames import HEARTBEAT, STATUS, NaiveBook, ack, ticker, trade
from hypothesis import given, settings
from hypothesis import strategies as st
from protocols import (
    authenticated,
    cfg,
    events,
    executions_frame,
    open_proto,
    pings,
    private_cfg,
    response,
    sent,
    subscribe_executions,
    subscribed_book,
)

from kraken_proto import (
    OHLC,
    BackpressureConfig,
    BookResync,
    BookUpdate,
    ClientConfig,
    ConnectionState,
    DropPolicy,
    GapPolicy,
    KrakenProtocol,
    LocalProtocolError,
    ProtocolCounters,
    ProtocolError,
    StateChanged,
    Subscribed,
    Ticker,
    Trade,
)
from kraken_proto.backpressure import COALESCE_REASONS, DROP_REASONS, EventBuffer
from kraken_proto.counters import (
    IGNORED,
    MARKET_CHANNELS,
    RESPONSE,
    RESYNC_REASONS,
    UNKNOWN,
    MessageCounter,
    Tally,
)
from kraken_proto.events import Dropped, Event
from kraken_proto.level3 import Level3Frame
from kraken_proto.private import BalancesFrame, ExecutionsFrame
from kraken_proto.wire import (
    BookFrame,
    HeartbeatFrame,
    InstrumentFrame,
    OHLCFrame,
    StatusFrame,
    TickerFrame,
    TradeFrame,
    decode_data_frame,
)
from kraken_transports.router import EventRouter


def utf8(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------- messages


def test_nothing_is_counted_per_message_by_default() -> None:
    proto = open_proto()
    proto.receive_data(HEARTBEAT, 1.0)
    counters = proto.counters
    assert isinstance(counters, ProtocolCounters)
    assert not counters.counting and counters.messages == {} and counters.message_bytes == {}
    assert counters.connection_attempts == 1 and counters.reconnects == 0


def test_messages_are_counted_by_channel_with_their_utf8_size() -> None:
    proto = KrakenProtocol(cfg(count_messages=True))
    proto.subscribe("ticker", "BTC/USD", 0.0)
    proto.connect(0.0)
    (request,) = sent(proto.connection_made(0.0))
    unknown_channel = '{"channel":"nouveauté","type":"update","data":[]}'  # not ASCII
    frames: list[tuple[str | bytes, str]] = [
        (STATUS, "status"),
        (ack("ticker", "BTC/USD", request["req_id"]).encode(), RESPONSE),
        (ticker("BTC/USD"), "ticker"),
        (ticker("BTC/USD").encode(), "ticker"),
        (HEARTBEAT, "heartbeat"),
        (response("pong", 99), RESPONSE),
        (unknown_channel, UNKNOWN),
        (b"\xff not json", UNKNOWN),
    ]
    for frame, _ in frames:
        proto.receive_data(frame, 1.0)
    counters = proto.counters
    assert counters.counting
    expected: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for frame, channel in frames:
        expected[channel] = expected.get(channel, 0) + 1
        sizes[channel] = sizes.get(channel, 0) + utf8(frame)
    assert counters.messages == expected
    assert counters.message_bytes == sizes
    assert counters.message_bytes[UNKNOWN] > len(unknown_channel) + len(b"\xff not json")


def test_a_message_over_the_size_limit_is_counted_unknown() -> None:
    proto = open_proto(cfg(max_message_size=1024))
    proto.count_messages()
    big = '{"channel":"heartbeat","pad":"' + "x" * 1024 + '"}'
    (error,) = events(proto.receive_data(big, 1.0), ProtocolError)
    assert "exceeds max_message_size" in error.error
    assert proto.counters.messages == {UNKNOWN: 1}
    assert proto.counters.message_bytes == {UNKNOWN: len(big)}


def test_messages_after_a_failure_are_counted_ignored() -> None:
    proto = open_proto()
    proto.count_messages()
    proto.connection_lost(1.0)
    assert proto.receive_data(HEARTBEAT, 1.1) == []
    assert proto.counters.messages == {IGNORED: 1}
    with pytest.raises(LocalProtocolError):  # misuse is refused, counting or not
        KrakenProtocol(cfg(count_messages=True)).receive_data(HEARTBEAT, 0.0)
    quiet = open_proto()
    quiet.connection_lost(1.0)
    assert quiet.receive_data(HEARTBEAT, 1.1) == []
    assert quiet.counters.messages == {}


def test_counting_survives_reconnects_and_starts_where_it_is_turned_on() -> None:
    proto = open_proto()
    proto.receive_data(HEARTBEAT, 0.5)  # not counted: counting is off
    proto.count_messages()
    proto.receive_data(HEARTBEAT, 1.0)
    proto.connection_lost(1.1)
    proto.handle_timer(proto.next_deadline() or 0.0)
    proto.connection_made(2.0)
    proto.receive_data(HEARTBEAT, 2.1)
    assert proto.counters.messages == {"heartbeat": 2}


def test_symbols_are_counted_within_the_cap_and_the_rest_as_omitted() -> None:
    proto = open_proto(cfg(count_messages=True))
    proto.count_messages(max_symbols=0)  # counting already on; no symbols yet
    proto.receive_data(trade("BTC/USD", 1), 1.0)
    assert proto.counters.symbol_entries == {}
    proto.count_messages(max_symbols=2)
    for frame in (
        trade("BTC/USD", 2),
        trade("BTC/USD", 3),
        trade("ETH/USD", 4),
        trade("SOL/USD", 5),  # the cap is reached
        ticker("ETH/USD"),  # admitted already (on another channel)
        ticker("XRP/USD"),
        HEARTBEAT,
    ):
        proto.receive_data(frame, 1.0)
    proto.count_messages(max_symbols=1)  # never lowers the cap
    counters = proto.counters
    assert counters.max_symbols == 2
    assert counters.symbol_entries == {
        ("trade", "BTC/USD"): 2,
        ("trade", "ETH/USD"): 1,
        ("ticker", "ETH/USD"): 1,
    }
    assert counters.symbols_omitted == {"trade": 1, "ticker": 1}
    assert counters.messages == {"trade": 5, "ticker": 2, "heartbeat": 1}


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_symbols_must_be_a_count(bad: object) -> None:
    with pytest.raises(LocalProtocolError, match="max_symbols must be an int >= 0"):
        open_proto().count_messages(max_symbols=bad)  # type: ignore[arg-type]


def test_count_messages_is_checked_by_the_config() -> None:
    with pytest.raises(Exception, match="count_messages"):
        ClientConfig(count_messages="yes")  # type: ignore[arg-type]


_POOL: list[str | bytes] = [
    HEARTBEAT,
    STATUS,
    trade("BTC/USD", 1),
    trade("ETH/USD", 2).encode(),
    ticker("BTC/USD"),
    ticker("ETH/USD", bid="nan"),  # an unusable entry
    response("pong", 1),
    response("frobnicate", 5),
    '{"channel":"ohlc","type":"update","data":[{"symbol":"BTC/USD"}]}',  # salvaged
    '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","checksum":"x"}]}',
    '{"channel":"nouveauté"}',
    '{"method":"subscribe","success":"maybe"}',
    "[1, 2]",
    "not json",
    b"\xff\xfe",
    "\udc80",
]


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(st.tuples(st.sampled_from(range(len(_POOL))), st.booleans()), max_size=40),
    symbols=st.integers(0, 3),
)
def test_counting_changes_nothing_but_the_counts(
    picks: list[tuple[int, bool]], symbols: int
) -> None:
    """Counting takes a path of its own: whatever arrives, it must act exactly as the
    default path, and its counts must add up to what was fed."""
    plain, counted = (subscribed_book(("BTC/USD",), config=cfg())[0] for _ in range(2))
    counted.count_messages(max_symbols=symbols)
    book = NaiveBook("BTC/USD")
    book.snapshot()
    fed = 0
    size = 0
    for n, (index, as_book) in enumerate(picks):
        frame = book.frame([(f"{90 + n % 5}.0", "1")], []) if as_book else _POOL[index]
        now = 1.0 + n / 10
        assert plain.receive_data(frame, now) == counted.receive_data(frame, now)
        fed += 1
        size += utf8(frame)
    counters = counted.counters
    assert sum(counters.messages.values()) == fed
    assert sum(counters.message_bytes.values()) == size
    assert set(counters.messages) <= {
        "book",
        "ticker",
        "trade",
        "ohlc",
        "heartbeat",
        "status",
        RESPONSE,
        UNKNOWN,
    }
    admitted = {symbol for _, symbol in counters.symbol_entries}
    assert len(admitted) <= symbols
    assert plain.counters.messages == {}
    assert plain.counters.book_resyncs == counters.book_resyncs


def test_a_frame_is_counted_under_its_channel_tag() -> None:
    """The counter names a data frame's channel by its type's ``channel`` tag: every data
    frame type carries the channel it is counted under, and the market ones are exactly
    those counted per symbol."""
    tags: dict[type, object] = {
        kind: kind.__struct_config__.tag
        for kind in (
            BookFrame,
            TickerFrame,
            TradeFrame,
            OHLCFrame,
            HeartbeatFrame,
            StatusFrame,
            InstrumentFrame,
            ExecutionsFrame,
            BalancesFrame,
            Level3Frame,
        )
    }
    assert tags[BookFrame] == "book" and tags[Level3Frame] == "level3"
    assert tags[ExecutionsFrame] == "executions" and tags[BalancesFrame] == "balances"
    assert len(set(tags.values())) == len(tags)
    market = {BookFrame, TickerFrame, TradeFrame, OHLCFrame, Level3Frame}
    assert {tags[kind] for kind in market} == MARKET_CHANNELS


def test_the_message_counter_counts_only_once_started() -> None:
    tally = Tally()
    counter = MessageCounter(tally)
    assert not counter.on and not tally.snapshot().counting
    counter.start()
    assert counter.on
    counter.frame(decode_data_frame(HEARTBEAT), 10)
    counter.frame(decode_data_frame(trade("BTC/USD", 1)), 20)
    counter.count(RESPONSE, 5)
    counter.count(RESPONSE, 6)
    counters = tally.snapshot()
    assert counters.messages == {"heartbeat": 1, "trade": 1, RESPONSE: 2}
    assert counters.message_bytes == {"heartbeat": 10, "trade": 20, RESPONSE: 11}
    assert counters.symbol_entries == {} and counters.max_symbols == 0
    counter.start(max_symbols=1)  # the symbols are counted from the next frame on
    for symbol in ("BTC/USD", "ETH/USD", "BTC/USD"):
        counter.frame(decode_data_frame(trade(symbol, 2)), 20)
    counter.frame(decode_data_frame(HEARTBEAT), 10)  # no symbols: not a market channel
    counters = tally.snapshot()
    assert counters.symbol_entries == {("trade", "BTC/USD"): 2}
    assert counters.symbols_omitted == {"trade": 1}
    assert counters.messages == {"heartbeat": 2, "trade": 4, RESPONSE: 2}
    with pytest.raises(LocalProtocolError, match="max_symbols must be an int >= 0"):
        counter.start(max_symbols=-1)
    assert tally.snapshot().max_symbols == 1


# --------------------------------------------------------------------------- rare events


def test_checksum_failures_and_resyncs_are_counted_by_reason() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"), config=cfg(resync_max_attempts=1))
    proto.receive_data(books["BTC/USD"].frame([("99.5", "1")], [], checksum=1), 1.0)
    refused = books["ETH/USD"].frame([("99.5", "-0.5")], [])  # a negative quantity
    assert events(proto.receive_data(refused, 1.1), BookResync)
    counters = proto.counters
    assert counters.checksum_failures == {"book": 1}
    assert counters.book_resyncs == {("book", "checksum"): 1, ("book", "unusable"): 1}
    # The budget is spent: the next mismatch is counted, the resync it would start is not.
    bad = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    assert events(proto.receive_data(bad, 2.0), BookResync) == []
    assert proto.counters.checksum_failures == {"book": 2}
    assert proto.counters.book_resyncs == {("book", "checksum"): 1, ("book", "unusable"): 1}
    assert set(RESYNC_REASONS) == {"checksum", "unusable", "invalid_frame"}


def test_an_invalid_book_frame_resync_is_counted() -> None:
    proto, _ = subscribed_book()
    broken = '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","checksum":"x"}]}'
    assert events(proto.receive_data(broken, 1.0), BookResync)
    assert proto.counters.book_resyncs == {("book", "invalid_frame"): 1}
    assert proto.counters.checksum_failures == {}


def test_sequence_gaps_are_counted_by_channel() -> None:
    proto = authenticated(private_cfg(gap_policy=GapPolicy.IGNORE))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "A"}), 1.1)
    proto.receive_data(executions_frame(6, {"exec_type": "new", "order_id": "B"}), 1.2)
    assert proto.counters.gaps == {"executions": 2}


def test_attempts_failures_and_reconnects_are_counted() -> None:
    proto = open_proto()  # attempt 1
    proto.connection_lost(1.0)  # failure 1
    retry = proto.next_deadline()
    assert retry is not None
    proto.handle_timer(retry)  # attempt 2, a reconnect
    proto.connection_lost(retry + 0.1)  # failure 2 (the attempt failed)
    proto.connect(retry + 0.2)  # attempt 3, from degraded: a reconnect too
    proto.connection_made(retry + 0.3)
    proto.close(retry + 0.4)  # not a failure
    proto.connect(retry + 0.5)  # attempt 4, after a close: not a reconnect
    counters = proto.counters
    assert (counters.connection_attempts, counters.connection_failures) == (4, 2)
    assert counters.reconnects == 2
    assert proto.state is ConnectionState.CONNECTING


def test_ping_round_trips_are_counted_only_when_known() -> None:
    proto = open_proto(cfg(ping_interval=10.0))
    (ping,) = pings(proto.handle_timer(10.0))
    proto.receive_data(response("pong", ping), 10.25)
    proto.receive_data(response("pong", 12345), 10.5)  # no such ping: no round trip
    (ping,) = pings(proto.handle_timer(20.0))
    proto.receive_data(response("pong", ping), 20.5)
    counters = proto.counters
    assert counters.round_trips == 2
    assert counters.round_trip_seconds == pytest.approx(0.75)
    assert counters.last_round_trip == pytest.approx(0.5)


def test_a_snapshot_is_a_copy() -> None:
    proto = open_proto(cfg(count_messages=True))
    before = proto.counters
    proto.receive_data(HEARTBEAT, 1.0)
    assert before.messages == {} and proto.counters.messages == {"heartbeat": 1}


# --------------------------------------------------------------------------- the buffer


def _tick(symbol: str, n: int) -> Ticker:
    d = Decimal(n)
    return Ticker.of(symbol, d, d, d, d, d, d, d, d, d, d, d)


def _trade(symbol: str, n: int) -> Trade:
    return Trade(symbol, "buy", Decimal(n), Decimal(1), "limit", n, "t")


def _book(symbol: str, n: int) -> BookUpdate:
    return BookUpdate(symbol, (), (), n)


def _candle(symbol: str, n: int) -> OHLC:
    d = Decimal(n)
    return OHLC(symbol, d, d, d, d, d, d, n, "t", "t", 1)


def _state(symbol: str, n: int) -> StateChanged:
    return StateChanged("subscribed", "degraded", f"reason {n}")


def _ack(symbol: str, n: int) -> Subscribed:
    return Subscribed("ticker", symbol, n, {})


class _SubTrade(Trade):
    """A market event subclass: counted under its own name, dropped as market data."""


def _sub_trade(symbol: str, n: int) -> Trade:
    return _SubTrade(symbol, "buy", Decimal(n), Decimal(1), "limit", n, "t")


MAKERS = [_tick, _trade, _book, _candle, _state, _ack, _sub_trade]


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(MAKERS), st.sampled_from(["BTC/USD", "ETH/USD"]), st.booleans()),
        max_size=120,
    ),
    policy=st.sampled_from(list(DropPolicy)),
    depth=st.integers(1, 6),
    window=st.sampled_from([0.0, 0.3]),
)
def test_counts_by_type_add_up_to_the_stats(
    ops: list[tuple[object, str, bool]], policy: DropPolicy, depth: int, window: float
) -> None:
    """For each event type, what was pushed is what was delivered plus its losses plus what
    is queued; summed over the types, each is the stats' figure."""
    config = BackpressureConfig(max_queue_depth=depth, drop_policy=policy, coalesce_window=window)
    buffer = EventBuffer(config)
    delivered: dict[str, int] = {}
    pushed: dict[str, int] = {}

    def check() -> None:
        counts = buffer.counts()
        stats = buffer.stats
        assert counts.received == pushed
        for name, received in counts.received.items():
            lost = sum(n for (kind, _), n in counts.dropped.items() if kind == name)
            lost += sum(n for (kind, _), n in counts.coalesced.items() if kind == name)
            assert received == counts.delivered[name] + lost + counts.queued.get(name, 0)
            assert counts.delivered[name] == delivered.get(name, 0)
        assert sum(counts.received.values()) == stats.received
        assert sum(counts.delivered.values()) == stats.delivered
        assert sum(counts.dropped.values()) == stats.dropped
        assert sum(counts.coalesced.values()) == stats.coalesced
        assert sum(counts.queued.values()) == stats.queued
        assert {reason for _, reason in counts.dropped} <= set(DROP_REASONS)
        assert {reason for _, reason in counts.coalesced} <= set(COALESCE_REASONS)
        assert (counts.policy, counts.capacity) == (policy.value, depth)

    def take(event: Event | None) -> None:
        if event is not None and not isinstance(event, Dropped):
            name = type(event).__name__
            delivered[name] = delivered.get(name, 0) + 1

    for n, (make, symbol, pop) in enumerate(ops):
        event = make(symbol, n)  # type: ignore[operator]
        pushed[type(event).__name__] = pushed.get(type(event).__name__, 0) + 1
        buffer.push(event, n * 0.1)
        if pop:
            take(buffer.pop(n * 0.1))
        check()
    while True:
        event = buffer.pop(1e6)
        if event is None:
            break
        take(event)
    check()
    counts = buffer.counts()
    assert counts.queued == {}
    if policy is DropPolicy.LATEST:
        assert {reason for _, reason in counts.dropped} <= {"latest"}
    elif policy is DropPolicy.OLDEST:
        assert {reason for _, reason in counts.dropped} <= {"oldest"}
    if policy is not DropPolicy.COALESCE:
        assert counts.coalesced == {}


def test_coalescing_reasons() -> None:
    config = BackpressureConfig(
        max_queue_depth=2, drop_policy=DropPolicy.COALESCE, coalesce_window=1.0
    )
    buffer = EventBuffer(config)
    buffer.push(_tick("BTC/USD", 1), 0.0)
    buffer.push(_tick("BTC/USD", 2), 0.5)  # within the window
    buffer.push(_tick("ETH/USD", 3), 5.0)  # full now
    buffer.push(_tick("BTC/USD", 4), 9.0)  # out of the window, but full
    buffer.push(_trade("BTC/USD", 5), 9.0)  # nothing to coalesce: the oldest goes
    counts = buffer.counts()
    assert counts.coalesced == {("Ticker", "window"): 1, ("Ticker", "full"): 1}
    assert counts.dropped == {("Ticker", "oldest"): 1}
    assert counts.queued == {"Ticker": 1, "Trade": 1}
    assert counts.received == {"Ticker": 4, "Trade": 1}
    assert counts.delivered == {"Ticker": 0, "Trade": 0}


def test_the_router_counts_by_type_with_or_without_a_buffer() -> None:
    router = EventRouter(BackpressureConfig(max_queue_depth=1, drop_policy=DropPolicy.LATEST))
    router.dispatch(_trade("BTC/USD", 1), 0.0)
    router.dispatch(_trade("BTC/USD", 2), 0.0)  # rejected: the buffer is full
    router.dispatch(_state("BTC/USD", 3), 0.0)
    assert isinstance(router.buffer.pop(0.0), Dropped)  # the summary of the loss first
    assert router.buffer.pop(0.0) == _trade("BTC/USD", 1)
    counts = router.counts()
    assert counts.received == {"Trade": 2, "StateChanged": 1}
    assert counts.delivered == {"Trade": 1, "StateChanged": 0}
    assert counts.dropped == {("Trade", "latest"): 1}
    assert counts.queued == {"StateChanged": 1}
    assert (counts.policy, counts.capacity) == ("latest", 1)
    # Without a buffer, what the callbacks are handed is counted once asked for.
    callbacks_only = EventRouter(BackpressureConfig(), buffer_events=False)
    callbacks_only.dispatch(_trade("BTC/USD", 1), 0.0)
    assert callbacks_only.counts().received == {}
    callbacks_only.count_handed()
    callbacks_only.count_handed()  # idempotent
    callbacks_only.dispatch(_trade("BTC/USD", 2), 0.0)
    callbacks_only.dispatch(_trade("BTC/USD", 3), 0.0)
    counts = callbacks_only.counts()
    assert counts.received == counts.delivered == {"Trade": 2}
    assert counts.dropped == counts.coalesced == counts.queued == {}
    assert callbacks_only.stats().received == 0  # nothing buffered
