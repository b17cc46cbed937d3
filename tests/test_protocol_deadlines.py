"""The timer contract (docs/own-driver.md, "The timer contract"), over random input sequences.

(a) A ``receive_data`` whose actions are one or more ``Emit``\\ s of ``MARKET_DATA_EVENTS``
    leaves ``next_deadline()`` no earlier than it was.
(b) After ``handle_timer(now)``, ``next_deadline()`` is ``None`` or later than ``now``.
(c) Only the inputs the contract lists can move ``next_deadline()`` earlier.

The machine drives public and private protocols (every gap policy) with book, trade,
ticker and ohlc frames (checksum mismatches included), acks and refusals, pongs, private
frames with gaps, trading requests and their answers, timers and drops, under configurations
whose timeouts range from tiny to ordinary and clocks that read from 0 to 2**40 seconds.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from typing import Any

from budget import sized
from frames import HEARTBEAT, NaiveBook, ack, error, ticker, trade
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kraken_proto import (
    MARKET_DATA_EVENTS,
    Action,
    AddOrder,
    ClientConfig,
    ConnectionState,
    Emit,
    GapPolicy,
    KrakenProtocol,
    LocalProtocolError,
    ReconnectConfig,
    Send,
)
from kraken_proto.errors import TradingRateLimitError

SYMBOLS = ("BTC/USD", "ETH/USD")
TIMES = {"time_in": "2026-08-01T02:53:53.184174Z", "time_out": "2026-08-01T02:53:53.184216Z"}
OHLC_FRAME = (
    '{"channel":"ohlc","type":"update","data":[{"symbol":"BTC/USD","open":100.0,"high":101.0,'
    '"low":99.0,"close":100.5,"trades":3,"volume":1.5,"vwap":100.2,"interval_begin":'
    '"2026-09-25T17:48:00.000000000Z","interval":1,"timestamp":"2026-09-25T17:49:00.000000Z"}]}'
)
# Durations from tiny (a deadline that rounds back to "now" on a large clock) to ordinary.
TINY = 1e-12


def earliest(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline


def is_market_data(actions: list[Action]) -> bool:
    return bool(actions) and all(
        type(action) is Emit and type(action.event) in MARKET_DATA_EVENTS for action in actions
    )


def executions(sequence: int, *, snapshot: bool = False) -> str:
    report = {"exec_type": "new", "order_id": f"O{sequence}", "symbol": "BTC/USD"}
    kind = "snapshot" if snapshot else "update"
    return json.dumps(
        {"channel": "executions", "type": kind, "data": [report], "sequence": sequence}
    )


class TimerContract(RuleBasedStateMachine):
    """Random inputs; the contract is checked around every one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = KrakenProtocol(ClientConfig())
        self.now = 0.0
        self.private = False
        self.requests: list[tuple[int, str, str, list[str]]] = []
        self.pings: list[int] = []
        self.orders: list[int] = []
        self.books = {symbol: NaiveBook(symbol) for symbol in SYMBOLS}
        self.sequence = 0
        self.market_calls = 0

    @initialize(
        private=st.booleans(),
        policy=st.sampled_from(list(GapPolicy)),
        clock=st.sampled_from([0.0, 1e6, 2.0**40]),
        short=st.sampled_from([TINY, 0.05, 2.0]),
        delay=st.sampled_from([TINY, 0.1]),
        jitter=st.sampled_from([0.0, 1.0]),
        rate=st.sampled_from([1.0, 1000.0]),
        ping=st.sampled_from([None, 1.0]),
        silence=st.sampled_from([None, TINY, 1.0]),
        ready=st.booleans(),
    )
    def start(
        self,
        private: bool,
        policy: GapPolicy,
        clock: float,
        short: float,
        delay: float,
        jitter: float,
        rate: float,
        ping: float | None,
        silence: float | None,
        ready: bool,
    ) -> None:
        config = ClientConfig(
            api_key="key",
            api_secret="c2VjcmV0",
            timeout=max(short, 0.5),
            ack_timeout=short,
            stale_timeout=3.0,
            request_timeout=short,
            gap_buffer_timeout=short,
            gap_policy=policy,
            silent_subscription_timeout=silence,
            ping_interval=ping,
            max_requests_per_second=rate,
            request_burst=5,
            reconnect=ReconnectConfig(initial_delay=delay, max_delay=1.0, jitter=jitter),
            rng=random.Random(5),
        )
        self.private = private
        self.proto = KrakenProtocol(config, private=private)
        self.now = clock
        channels = [("executions", None), ("balances", None)] if private else []
        if not private:
            channels = [("book", list(SYMBOLS)), ("trade", ["BTC/USD"]), ("ticker", ["BTC/USD"])]
            channels.append(("ohlc", ["BTC/USD"]))
        for channel, symbols in channels:
            params = {"interval": 1} if channel == "ohlc" else {}
            self.feed(self.proto.subscribe, channel, symbols, self.now, **params)
        self.feed(self.proto.connect, self.now)
        self.feed(self.proto.connection_made, self.now)
        if private:
            self.feed(self.proto.token_received, "token", self.now)
        if ready:  # every subscription acknowledged, every book and stream snapshotted
            for req_id, _method, channel, symbols in list(self.requests):
                for symbol in symbols:
                    extra = {"depth": 10} if channel == "book" else {}
                    self.receive(ack(channel, symbol, req_id, **extra))
            if private:
                self.sequence = 1
                self.receive(executions(1, snapshot=True))
            for symbol in () if private else SYMBOLS:
                self.receive(self.books[symbol].snapshot(levels=3))

    # -- plumbing

    def feed(self, call: Any, *args: Any, **kwargs: Any) -> list[Action]:
        """One input; the contract is checked around it."""
        before = earliest(self.proto.next_deadline())
        try:
            returned = call(*args, **kwargs)
        except (LocalProtocolError, TradingRateLimitError):
            assert earliest(self.proto.next_deadline()) == before
            return []
        actions: list[Action] = returned[1] if isinstance(returned, tuple) else returned
        after = earliest(self.proto.next_deadline())
        if call == self.proto.receive_data and is_market_data(actions):
            self.market_calls += 1
            event(f"market-only call, deadline {'set' if before < math.inf else 'none'}")
            assert after >= before, (before, after, actions)  # (a)
        if call == self.proto.handle_timer:
            assert after > self.now, (self.now, after)  # (b)
        if call == self.proto.close:
            assert after == math.inf  # (c): close only clears deadlines
        self.observe(actions)
        return actions

    def observe(self, actions: list[Action]) -> None:
        for action in actions:
            if not isinstance(action, Send):
                continue
            message = json.loads(action.text)
            method = message["method"]
            if method in ("subscribe", "unsubscribe"):
                params = message["params"]
                symbols = params.get("symbol", [None])
                self.requests.append((message["req_id"], method, params["channel"], symbols))
            elif method == "ping":
                self.pings.append(message["req_id"])
            else:
                self.orders.append(message["req_id"])

    def receive(self, frame: str) -> None:
        self.feed(self.proto.receive_data, frame, self.now)

    # -- time

    @rule(dt=st.sampled_from([0.0, TINY, 0.01, 0.3, 1.0, 4.0]))
    def timer(self, dt: float) -> None:
        self.now += dt
        self.feed(self.proto.handle_timer, self.now)

    @rule()
    def timer_at_the_deadline(self) -> None:
        deadline = self.proto.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)
        self.feed(self.proto.handle_timer, self.now)

    @rule(dt=st.sampled_from([0.0, 0.01, 0.5]))
    def wait(self, dt: float) -> None:
        self.now += dt

    # -- the connection

    @rule(code=st.sampled_from([None, 1006]))
    def drop(self, code: int | None) -> None:
        self.feed(self.proto.connection_lost, self.now, close_code=code)

    @rule()
    def reconnect(self) -> None:
        if self.proto.state is ConnectionState.CLOSED:
            self.feed(self.proto.connect, self.now)
        elif self.proto.state is ConnectionState.CONNECTING:
            self.feed(self.proto.connection_made, self.now)
        elif self.proto.state is ConnectionState.AUTHENTICATING:
            self.feed(self.proto.token_received, "token", self.now)

    @rule()
    def close(self) -> None:
        self.feed(self.proto.close, self.now)

    # -- Kraken's answers

    @rule(data=st.data(), success=st.booleans())
    def answer(self, data: st.DataObject, success: bool) -> None:
        if not self.requests:
            return
        req_id, method, channel, symbols = data.draw(st.sampled_from(self.requests))
        symbol = data.draw(st.sampled_from(symbols))
        extra: dict[str, Any] = {"depth": 10} if channel == "book" else {}
        if channel == "ohlc":
            extra = {"interval": 1}
        if success:
            self.receive(ack(channel, symbol, req_id, method=method, **extra))
        else:
            self.receive(error("EGeneral:Invalid arguments", req_id, symbol, method=method))

    @rule(data=st.data())
    def pong(self, data: st.DataObject) -> None:
        req_id = data.draw(st.sampled_from(self.pings)) if self.pings else None
        frame = {"method": "pong", "req_id": req_id, **TIMES}
        self.receive(json.dumps(frame))

    @rule()
    def heartbeat(self) -> None:
        self.receive(HEARTBEAT)

    # -- market data

    @precondition(lambda self: not self.private)
    @rule(symbol=st.sampled_from(SYMBOLS), good=st.booleans(), snapshot=st.booleans())
    def book(self, symbol: str, good: bool, snapshot: bool) -> None:
        model = self.books[symbol]
        if snapshot:
            model = NaiveBook(symbol)
            if good:
                self.books[symbol] = model
            frame = model.snapshot(levels=3)
        elif good:
            price = f"{random.Random(self.sequence).randint(95, 98)}.0"
            frame = model.frame([(price, "0.5")], [])
        else:
            frame = NaiveBook(symbol).frame([("97.0", "1")], [], checksum=7)
        if snapshot and not good:
            frame = NaiveBook(symbol).frame([("97.0", "1")], [], snapshot=True, checksum=7)
        self.sequence += 1
        self.receive(frame)

    @precondition(lambda self: not self.private)
    @rule(kind=st.sampled_from(["trade", "ticker", "ohlc"]))
    def market(self, kind: str) -> None:
        self.sequence += 1
        if kind == "trade":
            self.receive(trade("BTC/USD", self.sequence))
        elif kind == "ticker":
            self.receive(ticker("BTC/USD"))
        else:
            self.receive(OHLC_FRAME)

    # -- private streams and trading

    @precondition(lambda self: self.private)
    @rule(step=st.sampled_from([0, 1, 1, 2, 3]), snapshot=st.booleans())
    def execution(self, step: int, snapshot: bool) -> None:
        self.sequence = 1 if snapshot else self.sequence + step
        self.receive(executions(self.sequence, snapshot=snapshot))

    @precondition(lambda self: self.private)
    @rule(userref=st.booleans())
    def submit(self, userref: bool) -> None:
        order = AddOrder(
            order_type="limit",
            side="buy",
            order_qty=Decimal("0.5"),
            symbol="BTC/USD",
            limit_price=Decimal("60000.0"),
        )
        self.feed(self.proto.submit, order, self.now)

    @precondition(lambda self: self.private)
    @rule(data=st.data(), success=st.booleans())
    def order_answer(self, data: st.DataObject, success: bool) -> None:
        if not self.orders:
            return
        req_id = data.draw(st.sampled_from(self.orders))
        frame: dict[str, Any] = {"method": "add_order", "req_id": req_id, **TIMES}
        if success:
            frame.update(result={"order_id": f"O-{req_id}"}, success=True)
        else:
            frame.update(error="EOrder:Insufficient funds", success=False)
        self.receive(json.dumps(frame))

    @precondition(lambda self: self.private)
    @rule(armed=st.booleans())
    def dead_man(self, armed: bool) -> None:
        if armed:
            self.feed(self.proto.arm_dead_man_switch, 60, self.now, interval=0.5)
        else:
            self.feed(self.proto.disarm_dead_man_switch, self.now)

    @invariant()
    def queries_move_nothing(self) -> None:
        before = self.proto.next_deadline()
        self.proto.subscriptions  # noqa: B018 - a query, read for its (absent) effect
        self.proto.book("BTC/USD")
        self.proto.rate_counter("BTC/USD", self.now)
        assert self.proto.next_deadline() == before


TestTimerContract = TimerContract.TestCase
TestTimerContract.settings = sized(60, 250, stateful_step_count=60)


def test_market_data_events_are_the_five_market_events() -> None:
    names = sorted(kind.__name__ for kind in MARKET_DATA_EVENTS)
    assert names == ["BookUpdate", "L3Update", "OHLC", "Ticker", "Trade"]
