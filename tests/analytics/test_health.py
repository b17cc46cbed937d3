"""MarketHealthTracker: ACTIVE, STALE, HALTED and UNKNOWN, from events and a fake clock.

The scripted sessions run a real ``KrakenProtocol``: frames in (status, instrument, trades,
heartbeats), timers fired as a driver would, and every event it emits observed by the
tracker at the same ``now``. The property test checks the tracker against a brute-force
reading of the observation history.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from frames import HEARTBEAT, NaiveBook, ack, ticker, trade
from hypothesis import given
from hypothesis import strategies as st
from protocols import authenticated, cfg, l3_snapshot, open_proto, private_cfg, sent

from kraken_proto import (
    Action,
    ClientConfig,
    Emit,
    KrakenProtocol,
    OpenConnection,
    Precision,
    StateChanged,
    SystemStatus,
)
from kraken_proto.analytics import (
    TRADING_STATUSES,
    MarketHealth,
    MarketHealthTracker,
    MarketStatus,
)
from kraken_proto.analytics import health as health_module
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import (
    MARKET_DATA_EVENTS,
    OHLC,
    BookUpdate,
    Event,
    Instrument,
    L3Update,
    Pong,
    ProtocolError,
    Ticker,
    Trade,
)

ACTIVE, STALE, HALTED, UNKNOWN = (
    MarketStatus.ACTIVE,
    MarketStatus.STALE,
    MarketStatus.HALTED,
    MarketStatus.UNKNOWN,
)


def status_frame(system: str) -> str:
    return json.dumps(
        {
            "channel": "status",
            "type": "update",
            "data": [
                {"version": "2.0.10", "system": system, "api_version": "v2", "connection_id": 1}
            ],
        }
    )


def instrument_frame(*pairs: tuple[str, str], snapshot: bool = False) -> str:
    """An instrument message listing ``(symbol, status)`` pairs."""
    return json.dumps(
        {
            "channel": "instrument",
            "type": "snapshot" if snapshot else "update",
            "data": {
                "assets": [],
                "pairs": [
                    {
                        "symbol": symbol,
                        "base": symbol.split("/")[0],
                        "quote": symbol.split("/")[1],
                        "status": status,
                        "qty_precision": 8,
                        "price_precision": 1,
                    }
                    for symbol, status in pairs
                ],
            },
        }
    )


OHLC_FRAME = (
    '{"channel":"ohlc","type":"update","timestamp":"2026-09-25T17:48:26.844359566Z","data":'
    '[{"symbol":"ETH/USD","open":83729.5,"high":83745.2,"low":83729.4,"close":83744.3,'
    '"trades":33,"volume":0.21155628,"vwap":83736.4,"interval_begin":'
    '"2026-09-25T17:48:00.000000000Z","interval":1,"timestamp":"2026-09-25T17:49:00.000000Z"}]}'
)


class Session:
    """A protocol and a tracker that observes every event the protocol emits."""

    def __init__(self, tracker: MarketHealthTracker, config: ClientConfig | None = None) -> None:
        self.tracker = tracker
        self.proto = KrakenProtocol(config or cfg(stale_timeout=10.0))
        self.seen: list[Event] = []

    def run(self, actions: list[Action], now: float) -> list[Action]:
        for action in actions:
            if isinstance(action, Emit):
                self.seen.append(action.event)
                self.tracker.observe(action.event, now)
        return actions

    def receive(self, frame: str, now: float) -> list[Action]:
        return self.run(self.proto.receive_data(frame, now), now)

    def timers(self, until: float) -> None:
        """Fire every deadline up to ``until``, as a driver would."""
        deadline = self.proto.next_deadline()
        while deadline is not None and deadline <= until:
            self.run(self.proto.handle_timer(deadline), deadline)
            deadline = self.proto.next_deadline()

    def open(self, now: float) -> None:
        """Open the connection and get the trade subscription acknowledged."""
        actions = self.run(self.proto.connection_made(now), now)
        (request,) = sent(actions)
        self.receive(ack("trade", "BTC/USD", request["req_id"], snapshot=False), now)

    def status(self, symbol: str, now: float) -> MarketStatus:
        self.timers(now)
        return self.tracker.check_status(symbol, now)


def test_a_session_through_every_status() -> None:
    session = Session(MarketHealthTracker(stale_after=5.0, halted_after=30.0))
    tracker = session.tracker
    session.proto.subscribe("trade", ["BTC/USD"], 0.0)
    session.run(session.proto.connect(0.0), 0.0)
    assert session.status("BTC/USD", 0.0) is UNKNOWN
    session.open(0.0)
    session.receive(status_frame("online"), 0.1)
    assert session.status("BTC/USD", 0.5) is UNKNOWN  # connected, but no data yet

    session.receive(trade("BTC/USD", 1), 1.0)
    assert session.status("BTC/USD", 1.0) is ACTIVE
    assert session.status("BTC/USD", 5.9) is ACTIVE
    assert session.status("BTC/USD", 6.0) is STALE  # 5 s without market data

    # A quiet market: heartbeats every second keep the connection (and the core) alive, so
    # the symbol stays STALE, never HALTED, long past halted_after.
    before = len(session.seen)
    for second in range(2, 41):
        session.receive(HEARTBEAT, float(second))
        session.timers(float(second))
    health = tracker.check("BTC/USD", 40.5)
    assert (health.status, health.connection) == (STALE, "subscribed")
    assert health.since_update == 39.5
    assert health.reason == "no market data for 39.5 s (connection subscribed)"
    assert session.seen[before:] == []  # no state change all along

    # Kraken falls silent, heartbeats too: the core drops the connection after its
    # stale_timeout (10 s after the last heartbeat), which the tracker sees as degraded.
    assert session.status("BTC/USD", 49.9) is STALE
    session.timers(50.0)
    (_,) = [e for e in session.seen if isinstance(e, StateChanged) and e.new == "degraded"]
    health = tracker.check("BTC/USD", 50.0)
    assert (health.status, health.connection) == (STALE, "degraded")
    assert health.reason == "connection degraded: no market data can arrive"
    # The drop is the last time the link was known alive: 30 s later, HALTED.
    # (No timers fired meanwhile: the driver's reconnect is late, say.)
    assert tracker.check_status("BTC/USD", 79.9) is STALE
    health = tracker.check("BTC/USD", 80.0)
    assert health.status is HALTED
    assert health.reason.startswith("nothing heard from Kraken for 30.0 s")
    assert health.reason.endswith("; connection degraded")

    # The driver reconnects; Kraken pushes the status again, trades resume: ACTIVE.
    actions = session.run(session.proto.handle_timer(80.0), 80.0)
    assert any(isinstance(action, OpenConnection) for action in actions)
    assert tracker.check("BTC/USD", 80.0).connection == "connecting"
    assert session.status("BTC/USD", 80.0) is HALTED  # still nothing heard
    session.open(81.0)
    assert session.status("BTC/USD", 81.0) is STALE  # open again, still no data
    session.receive(status_frame("online"), 81.0)
    session.receive(trade("BTC/USD", 2), 82.0)
    assert session.status("BTC/USD", 82.0) is ACTIVE

    # Kraken's word outranks the timers: a pair in cancel_only is HALTED with fresh data.
    session.receive(instrument_frame(("BTC/USD", "cancel_only"), ("ETH/USD", "online")), 82.5)
    session.receive(trade("BTC/USD", 3), 83.0)
    health = tracker.check("BTC/USD", 83.0)
    assert (health.status, health.reason, health.pair_status) == (
        HALTED,
        "pair status is 'cancel_only'",
        "cancel_only",
    )
    assert tracker.check_status("ETH/USD", 83.0) is UNKNOWN  # online, but never any data
    session.receive(instrument_frame(("BTC/USD", "limit_only")), 84.0)
    assert session.status("BTC/USD", 84.0) is ACTIVE  # limit orders still match

    # The system status outranks everything, for every symbol, seen or not.
    session.receive(status_frame("maintenance"), 85.0)
    for symbol in ("BTC/USD", "ETH/USD", "NEVER/SEEN"):
        health = tracker.check(symbol, 85.0)
        assert (health.status, health.reason) == (HALTED, "system status is 'maintenance'")
        assert health.system_status == "maintenance"
    session.receive(status_frame("online"), 86.0)
    assert session.status("BTC/USD", 86.0) is ACTIVE

    # close(): the connection is closed, so no data can arrive.
    session.run(session.proto.close(87.0), 87.0)
    health = tracker.check("BTC/USD", 87.0)
    assert (health.status, health.connection) == (STALE, "closed")
    assert tracker.check_status("BTC/USD", 117.0) is HALTED


def test_without_connection_events_heartbeats_decide() -> None:
    tracker = MarketHealthTracker(stale_after=2.0, halted_after=10.0)
    btc, eth = trades_of(("BTC/USD", 1), ("ETH/USD", 2))
    tracker.observe(btc, 0.0)
    for second in range(1, 21):
        tracker.heartbeat(float(second))
    # No connection state known: the heartbeats are the proof of life.
    assert tracker.check("BTC/USD", 20.0).connection is None
    assert tracker.check_status("BTC/USD", 1.9) is ACTIVE
    assert tracker.check_status("BTC/USD", 20.0) is STALE
    assert tracker.check_status("BTC/USD", 29.9) is STALE
    assert tracker.check_status("BTC/USD", 30.0) is HALTED  # 10 s of silence
    # Another symbol's data is Kraken speaking too.
    tracker.observe(eth, 35.0)
    assert tracker.check_status("BTC/USD", 35.0) is STALE
    assert tracker.check_status("ETH/USD", 35.0) is ACTIVE
    assert tracker.check_status("ETH/USD", 45.0) is HALTED


def trades_of(*entries: tuple[str, int]) -> list[Trade]:
    proto = open_proto()
    events = []
    for symbol, trade_id in entries:
        events += [
            a.event
            for a in proto.receive_data(trade(symbol, trade_id), 0.0)
            if isinstance(a, Emit) and isinstance(a.event, Trade)
        ]
    return events


def emitted(proto: KrakenProtocol, frame: str) -> list[Event]:
    return [a.event for a in proto.receive_data(frame, 0.0) if isinstance(a, Emit)]


def test_every_market_data_event_counts_and_others_are_heard(data_dir: Path) -> None:
    proto = open_proto()
    ticker_event = emitted(proto, ticker("BTC/USD"))[0]
    ohlc_event = emitted(proto, OHLC_FRAME)[0]
    naive = NaiveBook("XRP/USD")
    request = sent(proto.subscribe("book", ["XRP/USD"], 0.0)[1])[0]
    proto.receive_data(ack("book", "XRP/USD", request["req_id"], depth=10, snapshot=True), 0.0)
    book_event = emitted(proto, naive.snapshot())[0]
    l3 = authenticated(private_cfg(precisions={"BTC/USD": Precision(price=1, qty=8)}), level3=True)
    (request,) = sent(l3.subscribe("level3", ["BTC/USD"], 0.0)[1])
    l3.receive_data(ack("level3", "BTC/USD", request["req_id"], depth=10), 0.0)
    snapshot, _ = l3_snapshot(data_dir)
    (l3_event,) = [e for e in emitted(l3, snapshot) if isinstance(e, L3Update)]
    assert (type(ticker_event), type(ohlc_event), type(book_event)) == (Ticker, OHLC, BookUpdate)
    for event in (ticker_event, ohlc_event, book_event, l3_event):
        tracker = MarketHealthTracker()
        tracker.observe(event, 1.0)
        assert tracker.check_status(event.symbol, 1.0) is ACTIVE  # type: ignore[union-attr]
        assert tracker.time_since_update(event.symbol, 3.5) == 2.5  # type: ignore[union-attr]
    # Pong, Subscribed...: Kraken was heard, no symbol's data.
    tracker = MarketHealthTracker(stale_after=1.0, halted_after=5.0)
    tracker.observe(trades_of(("BTC/USD", 1))[0], 0.0)
    tracker.observe(Pong(req_id=1, received_at=4.0), 4.0)
    assert tracker.check_status("BTC/USD", 8.9) is STALE
    assert tracker.check_status("BTC/USD", 9.0) is HALTED
    # Events that say nothing about the market change nothing.
    before = tracker.check("BTC/USD", 10.0)
    (garbled,) = emitted(proto, "not json at all")
    assert isinstance(garbled, ProtocolError)
    tracker.observe(garbled, 10.0)
    assert tracker.check("BTC/USD", 10.0) == before
    for action in proto.close(10.0):
        if isinstance(action, Emit):
            tracker.observe(action.event, 10.0)
    assert tracker.check("BTC/USD", 10.0).connection == "closed"


@pytest.mark.parametrize(
    ("status", "trading"),
    [
        ("online", True),
        ("limit_only", True),
        ("reduce_only", True),
        ("cancel_only", False),
        ("post_only", False),
        ("maintenance", False),
        ("delisted", False),
        ("work_in_progress", False),
        ("something_new", False),
    ],
)
def test_pair_statuses(status: str, trading: bool) -> None:
    proto = open_proto()
    tracker = MarketHealthTracker()
    tracker.observe(trades_of(("BTC/USD", 1))[0], 0.0)
    (instrument,) = emitted(proto, instrument_frame(("BTC/USD", status), snapshot=True))
    assert isinstance(instrument, Instrument)
    tracker.observe(instrument, 0.0)
    assert tracker.check_status("BTC/USD", 1.0) is (ACTIVE if trading else HALTED)
    assert tracker.check("BTC/USD", 1.0).pair_status == status


@pytest.mark.parametrize(
    ("system", "trading"),
    [("online", True), ("maintenance", False), ("cancel_only", False), ("post_only", False)],
)
def test_system_statuses(system: str, trading: bool) -> None:
    proto = open_proto()
    tracker = MarketHealthTracker()
    tracker.observe(trades_of(("BTC/USD", 1))[0], 0.0)
    (event,) = emitted(proto, status_frame(system))
    assert isinstance(event, SystemStatus)
    tracker.observe(event, 0.0)
    assert tracker.check_status("BTC/USD", 1.0) is (ACTIVE if trading else HALTED)


def test_trading_statuses_can_be_chosen() -> None:
    tracker = MarketHealthTracker(trading_statuses=["online"])
    assert tracker.trading_statuses == frozenset({"online"})
    tracker.observe(trades_of(("BTC/USD", 1))[0], 0.0)
    tracker.observe(emitted(open_proto(), instrument_frame(("BTC/USD", "limit_only")))[0], 0.0)
    assert tracker.check_status("BTC/USD", 0.0) is HALTED
    assert frozenset({"online", "limit_only", "reduce_only"}) == TRADING_STATUSES


def test_time_since_update_and_the_answer_fields() -> None:
    tracker = MarketHealthTracker(stale_after=1.5, halted_after=1.5)
    assert (tracker.stale_after, tracker.halted_after) == (1.5, 1.5)
    assert tracker.time_since_update("BTC/USD", 1.0) is None
    tracker.observe(trades_of(("BTC/USD", 1))[0], 2.0)
    tracker.observe(trades_of(("BTC/USD", 2))[0], 1.0)  # an earlier now: the last stays 2.0
    assert tracker.time_since_update("BTC/USD", 3.0) == 1.0
    assert tracker.time_since_update("BTC/USD", 0.0) == 0.0  # clamped
    assert tracker.check("BTC/USD", 2.5) == MarketHealth(
        "BTC/USD", ACTIVE, "market data 0.5 s ago", 2.5, 0.5, None, None, None
    )
    assert tracker.check("NEVER/SEEN", 2.5) == MarketHealth(
        "NEVER/SEEN", UNKNOWN, "no market data of this symbol seen yet", 2.5, None, None, None, None
    )
    tracker.heartbeat(1.0)  # earlier than what was heard: changes nothing
    health = tracker.check("BTC/USD", 3.5)
    assert (health.status, health.reason) == (
        HALTED,
        "nothing heard from Kraken for 1.5 s (no data, no heartbeat)",
    )


def test_the_market_data_events_are_the_cores() -> None:
    assert frozenset(health_module._MARKET_DATA) == MARKET_DATA_EVENTS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stale_after": 0}, "stale_after must be a finite number of seconds > 0"),
        ({"stale_after": -1.0}, "stale_after must be"),
        ({"stale_after": True}, "stale_after must be"),
        ({"halted_after": math.inf}, "halted_after must be a finite"),
        ({"halted_after": "30"}, "halted_after must be"),
        ({"stale_after": 10, "halted_after": 5}, r"halted_after \(5\) must be >= stale_after"),
        (
            {"trading_statuses": "online"},
            r"trading_statuses must be an iterable .* \(not one str\)",
        ),
        ({"trading_statuses": ["online", 1]}, "trading_statuses must be"),
    ],
)
def test_bad_construction_names_the_argument(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        MarketHealthTracker(**kwargs)


def test_bad_calls_name_the_argument() -> None:
    tracker = MarketHealthTracker()
    event = trades_of(("BTC/USD", 1))[0]
    with pytest.raises(LocalProtocolError, match="event must be one of the protocol's events"):
        tracker.observe(Emit(event), 0.0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="now must be a finite number of seconds"):
        tracker.observe(event, math.nan)
    with pytest.raises(LocalProtocolError, match="now must be"):
        tracker.heartbeat(None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="now must be"):
        tracker.check("BTC/USD", math.inf)
    with pytest.raises(LocalProtocolError, match="now must be"):
        tracker.time_since_update("BTC/USD", False)
    tracker.observe(event, 1)  # an int is a number of seconds too
    assert tracker.time_since_update("BTC/USD", 2) == 1


# ----------------------------------------------------------------------------- property

OPEN = {"authenticating", "subscribing", "subscribed", "resyncing"}
STATES = ["connecting", "subscribing", "subscribed", "resyncing", "degraded", "closed"]

observation = st.one_of(
    st.tuples(st.just("trade"), st.sampled_from(["BTC/USD", "ETH/USD"])),
    st.tuples(st.just("heartbeat"), st.none()),
    st.tuples(st.just("state"), st.sampled_from(STATES)),
    st.tuples(st.just("system"), st.sampled_from(["online", "maintenance", "post_only"])),
    st.tuples(st.just("pair"), st.sampled_from(["online", "cancel_only", "reduce_only"])),
    st.tuples(st.just("check"), st.sampled_from(["BTC/USD", "ETH/USD"])),
)


def reference(
    history: list[tuple[float, str, Any]], symbol: str, now: float, stale: float, halted: float
) -> MarketStatus:
    """The rule table, read off the whole history of observations."""
    systems = [value for _, kind, value in history if kind == "system"]
    pairs = [value for _, kind, value in history if kind == "pair"]  # all for BTC/USD
    data = [t for t, kind, value in history if kind == "trade" and value == symbol]
    states = [value for _, kind, value in history if kind == "state"]
    heard = [t for t, kind, _ in history if kind in ("trade", "heartbeat", "system", "pair")]
    previous = None
    for t, kind, value in history:
        if kind == "state":
            if previous in OPEN and value not in OPEN:
                heard.append(t)
            previous = value
    trading = {"online", "limit_only", "reduce_only"}
    if systems and systems[-1] not in trading:
        return HALTED
    if symbol == "BTC/USD" and pairs and pairs[-1] not in trading:
        return HALTED
    if not data:
        return UNKNOWN
    connection = states[-1] if states else None
    silence = 0.0 if connection in OPEN else max(0.0, now - max(heard))
    if silence >= halted:
        return HALTED
    if connection is not None and connection not in OPEN:
        return STALE
    return STALE if max(0.0, now - max(data)) >= stale else ACTIVE


@given(
    script=st.lists(st.tuples(st.floats(-1, 8, allow_nan=False), observation), max_size=30),
    stale=st.sampled_from([1.0, 2.5]),
    halted=st.sampled_from([2.5, 6.0]),
)
def test_the_tracker_agrees_with_the_rules_read_off_the_history(
    script: list[tuple[float, tuple[str, Any]]], stale: float, halted: float
) -> None:
    proto = open_proto()
    made = {("trade", symbol): trades_of((symbol, 1))[0] for symbol in ("BTC/USD", "ETH/USD")}
    tracker = MarketHealthTracker(stale_after=stale, halted_after=halted)
    history: list[tuple[float, str, Any]] = []
    now = 0.0
    connection = "disconnected"
    for step, (kind, value) in script:
        now += step  # a negative step: the clock goes back a little
        if kind == "check":
            assert tracker.check_status(value, now) is reference(history, value, now, stale, halted)
            continue
        if kind == "trade":
            tracker.observe(made[(kind, value)], now)
        elif kind == "heartbeat":
            tracker.heartbeat(now)
        elif kind == "state":
            tracker.observe(StateChanged(connection, value, "scripted", received_at=now), now)
            connection = value
        elif kind == "system":
            tracker.observe(emitted(proto, status_frame(value))[0], now)
        else:
            tracker.observe(emitted(proto, instrument_frame(("BTC/USD", value)))[0], now)
        history.append((now, kind, value))
    for symbol in ("BTC/USD", "ETH/USD"):
        assert tracker.check_status(symbol, now + 3.0) is reference(
            history, symbol, now + 3.0, stale, halted
        )


# ----------------------------------------------------------------------------- edge cases


def test_trading_statuses_may_be_any_iterable_of_strings() -> None:
    """A generator used to be consumed by the check, leaving no trading status at all."""
    tracker = MarketHealthTracker(trading_statuses=(s for s in ("online", "post_only")))
    assert tracker.trading_statuses == frozenset({"online", "post_only"})
    with pytest.raises(LocalProtocolError, match="trading_statuses must be"):
        MarketHealthTracker(trading_statuses=5)  # type: ignore[arg-type]
