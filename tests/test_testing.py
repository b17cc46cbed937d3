"""The test kit (:mod:`kraken_proto.testing`): Kraken in memory on a fake clock.

Determinism (one seed, identical event streams byte for byte; different seeds differ),
faults as the real drivers see them, market control, the capture feed (equal to
``kraken_proto.replay``) and the recording helpers.
"""

from __future__ import annotations

import random
from collections import deque
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from budget import sized
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto import (
    AddOrder,
    BookResync,
    BookUpdate,
    CancelOrder,
    ClientConfig,
    Event,
    Execution,
    GapDetected,
    KrakenProtocol,
    OrderOutcome,
    OrderResponse,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionResult,
    Trade,
)
from kraken_proto.actions import CloseConnection, Send
from kraken_proto.errors import LocalProtocolError, WaitTimeoutError
from kraken_proto.replay import encode_capture_line, replay
from kraken_proto.simulator import DEFAULT_SYMBOLS, Close, FakeExchange, TruncatedFrame
from kraken_proto.simulator.trading import MARKET_HALTED
from kraken_proto.testing import (
    FakeClock,
    ProtocolClient,
    RecordedKraken,
    SimulatedKraken,
    deterministic_config,
    symbol_specs,
)

BTC = "BTC/USD"


def fingerprint(events: list[Event]) -> bytes:
    """An event stream as bytes: every field of every event, in order."""
    return msgspec.json.encode(events)


def book_client(
    network: SimulatedKraken, depth: int = 10, *, trades: bool = False
) -> ProtocolClient:
    client = network.connect(KrakenProtocol(deterministic_config()), start=False)
    client.subscribe("book", [BTC], depth=depth)
    if trades:
        client.subscribe("trade", [BTC])
    client.connect()
    return client


def trader(network: SimulatedKraken) -> ProtocolClient:
    client = network.connect(KrakenProtocol(deterministic_config(), private=True), start=False)
    client.subscribe("executions")
    client.connect()
    network.run_until(lambda: client.of(Subscribed))
    return client


def resting_buy() -> AddOrder:
    """A limit buy far below the simulated market: it rests on the book."""
    return AddOrder(
        order_type="limit",
        side="buy",
        symbol=BTC,
        order_qty=Decimal("0.001"),
        limit_price=Decimal("1000.0"),
    )


def scenario(seed: int) -> list[Event]:
    """Book and trades, an order that fills, a drop and a reconnect: every event."""
    network = SimulatedKraken(seed, symbols=[BTC])
    market = book_client(network, trades=True)
    trading = trader(network)
    trading.submit(
        AddOrder(order_type="market", side="buy", symbol=BTC, order_qty=Decimal("0.001"))
    )
    network.advance(3.0)
    network.drop(market)
    network.advance(3.0)
    return market.events + trading.events


# ---------------------------------------------------------------------- determinism


def test_one_seed_gives_identical_event_streams_and_another_seed_differs() -> None:
    events = scenario(7)
    first = fingerprint(events)
    assert first == fingerprint(scenario(7))
    assert first != fingerprint(scenario(8))
    # A real run, not a few events: the book, trades, a fill and the reconnect are in it.
    kinds = {type(e) for e in events}
    assert {BookUpdate, Trade, Execution, OrderResponse} <= kinds
    assert sum(isinstance(e, Subscribed) and e.channel == "book" for e in events) == 2
    assert any(isinstance(e, Execution) and e.exec_type == "trade" for e in events)


@sized(10, 50)
@given(cuts=st.lists(st.floats(0.0, 0.7), max_size=5))  # at most 3.5 s of 4
def test_moving_the_clock_in_pieces_gives_the_events_of_one_move(cuts: list[float]) -> None:
    def run(pieces: list[float]) -> tuple[bytes, float]:
        network = SimulatedKraken(5, symbols=[BTC])
        client = book_client(network, trades=True)
        for seconds in pieces:
            network.advance(seconds)
        network.advance(4.0 - network.now)
        return fingerprint(client.events), network.now

    events, now = run([4.0])
    assert run(cuts) == (events, now) and events.count(b"checksum") > 50


def test_a_minute_of_book_and_trades_is_verified_and_matches_the_exchange() -> None:
    network = SimulatedKraken(3, symbols=[BTC])
    client = book_client(network, depth=25, trades=True)
    network.advance(60.0)
    assert network.now == 60.0
    assert len(client.of(BookUpdate)) > 60 * 20 and client.of(Trade)
    assert not client.of(BookResync) and not client.of(ProtocolError)
    book = client.protocol.book(BTC)
    assert book is not None
    bids, asks = network.exchange.markets[BTC].book(25)
    assert [(level.price, level.qty) for level in book.bids()] == [(b.price, b.qty) for b in bids]
    assert [(level.price, level.qty) for level in book.asks()] == [(a.price, a.qty) for a in asks]


# ---------------------------------------------------------------------- faults


def test_a_drop_is_seen_as_1006_and_the_client_reconnects_and_resubscribes() -> None:
    network = SimulatedKraken(1, symbols=[BTC])
    client = book_client(network)
    network.advance(1.0)
    first = client.socket
    network.drop(client)
    assert client.socket is not first  # reconnecting, or connected again
    network.run_until(lambda: len(client.of(Subscribed)) == 2)
    reasons = [e.reason for e in client.of(StateChanged) if e.new == "degraded"]
    assert reasons == ["connection dropped without a close frame (1006)"]
    network.advance(1.0)
    assert client.protocol.book(BTC).is_live  # type: ignore[union-attr]
    assert [s.number for s in network.sockets] == [2]


def test_a_clean_close_reaches_the_client_with_its_code() -> None:
    network = SimulatedKraken(1, symbols=[BTC])
    client = book_client(network)
    network.advance(1.0)
    network.inject(Close(1008, "policy"), client)
    (last,) = [e for e in client.of(StateChanged) if e.new == "closed"]
    assert "1008" in last.reason  # a policy violation is terminal, as with the drivers
    assert not network.sockets


def test_a_stall_makes_the_book_resync_and_a_corrupt_checksum_too() -> None:
    network = SimulatedKraken(2, symbols=[BTC])
    client = book_client(network)
    network.advance(1.0)
    network.stall(2.0)
    network.advance(4.0)
    assert client.of(BookResync)
    resyncs = len(client.of(BookResync))
    network.corrupt_checksum(BTC, client)
    network.advance(2.0)
    assert len(client.of(BookResync)) == resyncs + 1
    assert client.protocol.book(BTC).is_live  # type: ignore[union-attr]


def test_a_sequence_gap_is_detected_and_a_lost_response_is_an_unknown_outcome() -> None:
    network = SimulatedKraken(4, symbols=[BTC])
    client = trader(network)
    network.sequence_gap("executions")
    network.lose_response("add_order", client)
    order = resting_buy()
    req_id = client.submit(order)
    network.advance(client.protocol.config.timeout + 1.0)
    (gap,) = client.of(GapDetected)
    assert gap.received == gap.expected + 1
    (response,) = client.of(OrderResponse)
    assert response.req_id == req_id and response.outcome is OrderOutcome.UNKNOWN
    # The order was placed all the same: the executions stream shows it.
    assert any(e.order_status == "new" for e in client.of(Execution))


def test_a_refused_token_fails_the_connection_and_the_next_one_succeeds() -> None:
    network = SimulatedKraken(4, symbols=[BTC])
    network.exchange.inject_token_error("EGeneral:Temporary lockout")
    client = network.connect(KrakenProtocol(deterministic_config(), private=True))
    network.run_until(lambda: client.protocol.state.value == "subscribed")
    degraded = [e.reason for e in client.of(StateChanged) if e.new == "degraded"]
    assert len(degraded) == 1 and "Temporary lockout" in degraded[0]


def test_a_truncated_frame_is_a_protocol_error_and_the_stream_goes_on() -> None:
    network = SimulatedKraken(5, symbols=[BTC])
    client = book_client(network)
    network.advance(1.0)
    network.inject(TruncatedFrame())
    network.advance(1.0)
    assert client.of(ProtocolError)


# ---------------------------------------------------------------------- the market


def test_moving_the_price_sweeps_the_book_and_fills_resting_orders() -> None:
    network = SimulatedKraken(6, symbols=[BTC])
    market = book_client(network, trades=True)
    trading = trader(network)
    best_ask = network.exchange.markets[BTC].best()[1].price
    limit = best_ask + 20
    trading.submit(
        AddOrder(
            order_type="limit",
            side="sell",
            symbol=BTC,
            order_qty=Decimal("0.001"),
            limit_price=limit,
        )
    )
    network.advance(0.5)
    before = len(market.of(Trade))
    network.move_price(BTC, str(limit + 50))
    swept = market.of(Trade)[before:]
    assert swept and all(t.side == "buy" for t in swept[: len(swept)])
    fills = [e for e in trading.of(Execution) if e.exec_type == "trade"]
    assert fills and fills[0].last_price == limit  # filled as maker, at its limit
    book = market.protocol.book(BTC)
    assert book is not None and book.bids(1)[0].price == limit + 50
    assert not market.of(BookResync) and not market.of(ProtocolError)


def test_adding_liquidity_shows_in_the_book() -> None:
    network = SimulatedKraken(6, symbols=[BTC])
    client = book_client(network)
    network.advance(1.0)
    bid = network.exchange.markets[BTC].best()[0]
    network.add_liquidity(BTC, "bid", bid.price, "1.5")
    book = client.protocol.book(BTC)
    assert book is not None and book.bids(1)[0].qty == bid.qty + Decimal("1.5")


def test_a_halted_pair_stops_and_refuses_orders_until_resumed() -> None:
    network = SimulatedKraken(6, symbols=[BTC])
    market = book_client(network)
    trading = trader(network)
    network.run_until(lambda: market.of(BookUpdate))
    network.halt(BTC)
    network.halt(BTC)  # idempotent
    updates = len(market.of(BookUpdate))
    order = AddOrder(order_type="market", side="buy", symbol=BTC, order_qty=Decimal("0.001"))
    trading.submit(order)
    network.advance(5.0)
    assert len(market.of(BookUpdate)) == updates
    (refused,) = trading.of(OrderResponse)
    assert refused.error == MARKET_HALTED
    network.resume(BTC)
    network.resume(BTC)  # a no-op when trading
    network.advance(2.0)
    assert len(market.of(BookUpdate)) > updates
    trading.submit(order)
    network.advance(1.0)
    assert trading.of(OrderResponse)[-1].outcome is OrderOutcome.OK


def test_market_control_checks_its_arguments() -> None:
    network = SimulatedKraken(6, symbols=[BTC])
    bid, ask = network.exchange.markets[BTC].best()
    with pytest.raises(ValueError, match="symbol must be one of"):
        network.halt("ETH/USD")
    with pytest.raises(ValueError, match="multiple of the tick"):
        network.move_price(BTC, "63000.05")
    with pytest.raises(ValueError, match="multiple of the tick"):
        network.move_price(BTC, "-1")
    with pytest.raises(ValueError, match="deepest level"):
        network.move_price(BTC, "10000000.0")
    with pytest.raises(ValueError, match="side must be"):
        network.add_liquidity(BTC, "buy", bid.price, "1")
    with pytest.raises(ValueError, match="crosses"):
        network.add_liquidity(BTC, "bid", ask.price, "1")
    with pytest.raises(ValueError, match="crosses"):
        network.add_liquidity(BTC, "ask", bid.price, "1")
    with pytest.raises(ValueError, match="qty must be positive"):
        network.add_liquidity(BTC, "ask", ask.price, "0.000000001")
    with pytest.raises(ValueError, match="qty must be positive"):
        network.add_liquidity(BTC, "ask", ask.price, "0")
    with pytest.raises(TypeError, match="price must be a Decimal, an int or a str"):
        network.move_price(BTC, 63000.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="price must be a finite decimal number, got 'abc'"):
        network.move_price(BTC, "abc")
    with pytest.raises(ValueError, match="price must be a finite decimal number"):
        network.move_price(BTC, Decimal("NaN"))
    with pytest.raises(ValueError, match="qty must be a finite decimal number, got 'x'"):
        network.add_liquidity(BTC, "ask", ask.price, "x")
    with pytest.raises(ValueError, match="symbol must be one of"):
        network.corrupt_checksum("ETH/USD")
    with pytest.raises(ValueError, match="method must be a trading method"):
        network.lose_response("add")
    network.add_liquidity(BTC, "ask", ask.price, 2)  # an int is exact
    assert network.exchange.markets[BTC].best()[1].qty == ask.qty + 2


def test_a_sweep_down_and_a_price_inside_the_spread() -> None:
    eth = "ETH/USD"
    network = SimulatedKraken(6, symbols=[eth])
    client = network.connect(KrakenProtocol(deterministic_config()), start=False)
    client.subscribe("trade", [eth])
    client.connect()
    network.advance(1.0)
    market = network.exchange.markets[eth]
    bid = market.best()[0]
    network.move_price(eth, str(bid.price - 3))
    trades = client.of(Trade)
    assert trades and trades[-1].side == "sell"
    target = bid.price - 3
    assert market.best()[1].price == target  # makers rest at the new price

    def spread() -> Decimal:
        bid, ask = market.best()
        return ask.price - bid.price

    network.run_until(lambda: spread() > Decimal("0.01"))  # ETH/USD's loose book: room inside
    trades = client.of(Trade)
    inside = market.best()[0].price + Decimal("0.01")
    network.move_price(eth, str(inside))  # a new best ask inside the spread, no trade
    assert market.best()[1].price == inside and client.of(Trade) == trades


def test_a_halt_before_the_exchange_ever_ran_and_an_empty_exchange() -> None:
    exchange = FakeExchange(seed=1, symbols={BTC: DEFAULT_SYMBOLS[BTC]})
    exchange.halt(BTC, 0.0)
    assert exchange.next_step_time() == float("inf")
    exchange.advance(10.0)
    assert exchange.markets[BTC].time == exchange.epoch  # never stepped
    empty = FakeExchange(seed=1, symbols={})
    empty.advance(1.0)
    empty.advance(2.0)
    assert empty.origin == 1.0


def test_edit_order_is_refused_on_a_halted_pair() -> None:
    network = SimulatedKraken(6, symbols=[BTC])
    client = trader(network)
    order = resting_buy()
    client.submit(order)
    network.advance(0.5)
    (placed,) = client.of(OrderResponse)
    network.halt(BTC)
    socket = client.socket
    assert socket is not None
    token = client.requests("add_order")[0]["params"]["token"]
    socket.send(
        msgspec.json.encode(
            {
                "method": "edit_order",
                "params": {
                    "order_id": placed.result.order_id,  # type: ignore[union-attr]
                    "symbol": BTC,
                    "order_qty": 0.002,
                    "token": token,
                },
                "req_id": 99,
            }
        ).decode()
    )
    network.settle()
    assert MARKET_HALTED in client.frames[-1].text
    order_id = placed.result.order_id  # type: ignore[union-attr]
    cancel = client.submit(CancelOrder(order_id=(order_id,)))
    network.advance(0.5)
    assert [r.outcome for r in client.of(OrderResponse) if r.req_id == cancel] == [OrderOutcome.OK]


# ---------------------------------------------------------------------- the loop


def test_the_clock_and_run_until() -> None:
    clock = FakeClock(5.0)
    assert clock() == 5.0
    network = SimulatedKraken(1, symbols=[BTC], start=10.0)
    assert network.now == 10.0 and network.next_deadline() is None
    assert network.step(11.0) is False and network.now == 11.0
    network.advance(2.0)  # nothing connected: the clock just moves
    assert network.now == 13.0
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        network.advance(-1.0)
    assert network.run_until(lambda: True) == 0.0
    client = book_client(network)
    took = network.run_until(
        lambda: client.protocol.book(BTC) is not None and client.of(BookUpdate)
    )
    assert 0 < took < 5
    with pytest.raises(WaitTimeoutError, match=r"within 0\.5 s of fake time"):
        network.run_until(lambda: False, timeout=0.5)
    quiet = SimulatedKraken(1, symbols=[BTC])
    moments = iter([False, True])
    assert quiet.run_until(lambda: next(moments), timeout=1.0) == 1.0  # true at the end
    assert network.wall_time() == network.exchange.wall_time(network.now)


def test_close_before_the_socket_opened_and_recording_helpers() -> None:
    network = SimulatedKraken(1, symbols=[BTC])
    proto = KrakenProtocol(deterministic_config())
    client = network.connect(proto, start=False)
    client._perform(proto.connect(network.now))  # the socket's connect is in flight
    socket = client.socket
    assert socket is not None
    client.perform(proto.close(network.now))
    assert not socket.open and not network.sockets and not network.exchange.connections
    assert socket.send("x") is False
    socket.close()  # idempotent
    client._perform([Send("lost"), CloseConnection(1000, "")])  # no socket: nothing to do
    other = book_client(network)
    network.advance(2.0)
    subscribe = other.requests("subscribe")
    assert [r["params"]["channel"] for r in subscribe] == ["book"]
    assert len(other.requests()) == len(subscribe)
    capture = other.capture()
    assert capture[0] == encode_capture_line(0.0, "out", other.frames[0].text)
    first_update = other.of(BookUpdate)[1].received_at
    then = other.book_at(BTC, first_update)
    now = other.protocol.book(BTC)
    assert then is not None and now is not None and then.bids() != now.bids()
    assert other.book_at(BTC, -1.0) is None
    other.close()
    assert other.protocol.state.value == "closed" and other.socket is None


def test_options_and_symbols() -> None:
    assert symbol_specs(None) is None
    specs = {BTC: DEFAULT_SYMBOLS[BTC]}
    assert symbol_specs(specs) is specs
    assert list(symbol_specs(BTC) or {}) == [BTC]
    assert list(symbol_specs([BTC, "ETH/USD"]) or {}) == [BTC, "ETH/USD"]
    with pytest.raises(ValueError, match="symbols must name pairs"):
        symbol_specs(["BTC/EUR"])
    with pytest.raises(ValueError, match="symbols must name pairs"):
        symbol_specs([])
    exchange = FakeExchange(seed=1)
    assert SimulatedKraken(exchange=exchange).exchange is exchange
    with pytest.raises(ValueError, match="either exchange="):
        SimulatedKraken(exchange=exchange, tick_rate=5.0)
    assert SimulatedKraken(symbols=[BTC], message_rate=10.0).exchange.message_rate == 10.0
    config = deterministic_config(depth_headroom=3)
    assert config.ping_interval is None and config.depth_headroom == 3


def test_bad_times_are_refused_rather_than_hanging() -> None:
    network = SimulatedKraken(1, symbols=[BTC])
    book_client(network)  # the market runs forever: an endless move would never return
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="seconds must be >= 0 and finite"):
            network.advance(bad)
        with pytest.raises(ValueError, match="timeout must be >= 0 and finite"):
            network.run_until(lambda: False, timeout=bad)
    for wrong in ("1", None, True):
        with pytest.raises(TypeError, match="seconds must be a number"):
            network.advance(wrong)  # type: ignore[arg-type]
    assert network.now == 0.0


class Impatient(ProtocolClient):
    """A client whose code moves the clock while a frame is being delivered."""

    def message(self, text: str, now: float) -> None:
        super().message(text, now)
        self.network.advance(1.0)


def test_moving_the_clock_inside_a_delivery_is_refused() -> None:
    network = SimulatedKraken(1, symbols=[BTC])
    client = Impatient(network, KrakenProtocol(deterministic_config()))
    network.add(client)
    with pytest.raises(LocalProtocolError, match="cannot run inside a callback"):
        client.connect()  # the greeting arrives, and the client tries to move time
    times = [f.t for f in client.frames]
    assert times == sorted(times) and network.now == 0.0 and network.busy == 0


# ---------------------------------------------------------------------- captures

CAPTURES = Path(__file__).resolve().parent / "data" / "kraken-v2-real"


@pytest.mark.parametrize("name", ["btcusd_l2", "ethusd_sample"])
def test_a_capture_played_in_memory_equals_kraken_proto_replay(name: str) -> None:
    path = CAPTURES / f"{name}.jsonl"
    network = RecordedKraken(path)
    config = ClientConfig(ping_interval=None, rng=random.Random(0))
    client = network.connect(KrakenProtocol(config, replay=True))
    network.finish()
    expected = replay(path)
    assert fingerprint(client.events) == fingerprint(expected.events)
    assert network.position == len(network.lines)


def test_a_capture_answers_the_clients_own_requests() -> None:
    lines = (CAPTURES / "btcusd_l2.jsonl").read_text().splitlines()
    network = RecordedKraken(lines)
    client = network.connect(KrakenProtocol(deterministic_config(), replay=True), start=False)
    call = client.subscribe("book", [BTC], depth=10)
    client.connect()
    network.run_until(lambda: client.of(Subscribed))
    (ack,) = client.of(Subscribed)
    (result,) = client.of(SubscriptionResult)
    assert result.req_id == call and result.ok and network.now == pytest.approx(0.157151)
    assert ack.req_id == client.requests("subscribe")[0]["req_id"]  # the answer to its request
    socket = client.socket
    assert socket is not None
    for text in (
        "not json",
        "[1]",
        '{"method":"ping","req_id":5}',
        '{"method":"subscribe","params":[],"req_id":6}',
        '{"method":"subscribe","params":{"channel":"executions"},"req_id":7}',
    ):
        socket.send(text)
    network.settle()
    network.finish()
    assert not client.of(ProtocolError)
    # The unsolicited executions request stays unanswered: the capture never acks it.
    assert network._asked[socket][("subscribe", "executions", None)] == deque([7])


def test_frames_due_while_disconnected_are_lost_and_an_empty_capture() -> None:
    lines = (CAPTURES / "btcusd_l2.jsonl").read_text().splitlines()
    network = RecordedKraken(lines)
    network.advance(1.0)  # nobody connected: the first second is lost
    client = network.connect(
        KrakenProtocol(deterministic_config(), private=True, replay=True)
    )  # a private protocol gets the replay token
    network.finish()
    assert network.position == len(network.lines)
    assert client.protocol.book(BTC) is not None  # adopted from the later snapshot
    client.close()
    empty = RecordedKraken([])
    assert empty.now == 0.0 and empty.next_deadline() is None
    with pytest.raises(LocalProtocolError, match="replay mode"):
        empty.connect(KrakenProtocol(deterministic_config()))
    empty.finish()
    assert empty.now == 0.0


def test_a_capture_passes_other_answers_through_unchanged() -> None:
    lines = [
        encode_capture_line(1.0, "in", '{"method":"pong","req_id":1,"time_in":"x","time_out":"y"}'),
        encode_capture_line(
            1.5,
            "in",
            '{"error":"Currency pair not supported","method":"subscribe","success":false}',
        ),
    ]
    network = RecordedKraken(lines)
    assert network.wall_time() == network.now == 1.0
    client = network.connect(KrakenProtocol(deterministic_config(), replay=True), start=False)
    client.subscribe("ticker", [BTC])
    client.connect()
    network.finish()
    received = [f.text for f in client.frames if f.dir == "in"]
    assert received == [msgspec.json.decode(line)["text"] for line in lines]


def test_a_malformed_frame_in_a_capture_is_a_protocol_error_as_in_replay() -> None:
    lines = [
        encode_capture_line(1.0, "in", '{"method":"subscribe","result":{"channel":"book"'),
        encode_capture_line(1.1, "in", '[{"method":"subscribe"}]'),
        encode_capture_line(1.2, "in", '{"method":"subscribe","result":[]}'),
        encode_capture_line(2.0, "in", '{"channel":"heartbeat"}'),
    ]
    network = RecordedKraken(lines)
    client = network.connect(KrakenProtocol(deterministic_config(), replay=True), start=False)
    client.subscribe("book", [BTC], depth=10)  # the network now reads acks for this client
    client.connect()
    network.finish()
    errors = client.of(ProtocolError)
    assert errors == replay(lines).of_type(ProtocolError) and len(errors) == 2


def test_every_connected_client_receives_the_capture_with_its_own_answers() -> None:
    path = CAPTURES / "btcusd_l2.jsonl"
    network = RecordedKraken(path)
    market = network.connect(KrakenProtocol(deterministic_config(), replay=True), start=False)
    asked = market.subscribe("book", [BTC], depth=10)
    market.connect()
    other = network.connect(KrakenProtocol(deterministic_config(), replay=True), start=False)
    other.subscribe("ticker", [BTC])  # never acknowledged by this capture
    theirs = other.subscribe("book", [BTC], depth=10)
    other.connect()
    network.finish()
    expected = replay(path).of_type(BookUpdate)
    assert market.of(BookUpdate) == other.of(BookUpdate) == expected
    assert [r.req_id for r in market.of(SubscriptionResult)] == [asked]
    assert [r.req_id for r in other.of(SubscriptionResult) if r.ok] == [theirs] != [asked]
