"""The fake exchange, driven with a fake clock: frames, acks, errors, timers and faults."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

import msgspec
import pytest

from kraken_proto.actions import CloseConnection, Send
from kraken_proto.checksum import book_checksum
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    Close,
    CorruptChecksum,
    Drop,
    ExchangeConnection,
    FakeExchange,
    MalformedFrame,
    RateLimit,
    ServerAction,
    SlowSender,
    Stall,
    SymbolSpec,
    TruncatedFrame,
)
from kraken_proto.simulator import frames as frames_module
from kraken_proto.simulator.exchange import (
    DEFAULT_EPOCH,
    IDLE_CLOSE_REASON,
    MESSAGE_BURST,
    PRIVATE_ON_PUBLIC_HOST,
    RATE_LIMIT_CLOSE,
)
from kraken_proto.simulator.faults import MALFORMED_TEXT, RATE_LIMIT_TEXT

TWO = {symbol: DEFAULT_SYMBOLS[symbol] for symbol in ("BTC/USD", "ETH/USD")}
ONE = {"BTC/USD": DEFAULT_SYMBOLS["BTC/USD"]}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
STAMP_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
ACK_KEYS = ["method", "req_id", "result", "success", "time_in", "time_out"]


def exchange(symbols: dict[str, SymbolSpec] | None = None, **kwargs: Any) -> FakeExchange:
    """An exchange whose snapshots follow their acks at once (unless a test asks otherwise)."""
    kwargs.setdefault("snapshot_delay", None)
    return FakeExchange(seed=kwargs.pop("seed", 1), symbols=symbols or TWO, **kwargs)


def texts(actions: Iterable[ServerAction]) -> list[str]:
    out = []
    for action in actions:
        assert isinstance(action, Send), action
        out.append(action.text)
    return out


def load(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


class Client:
    """One connection driven by hand: every action is logged with the time it came at."""

    def __init__(self, ex: FakeExchange, now: float = 0.0) -> None:
        self.ex = ex
        self.now = now
        self.conn: ExchangeConnection = ex.open_connection(now)
        self.log: list[tuple[float, ServerAction]] = []
        self._take(self.conn.connection_made(now))

    def _take(self, actions: list[ServerAction]) -> list[ServerAction]:
        self.log += [(self.now, action) for action in actions]
        return actions

    def send(self, message: Any, now: float | None = None) -> list[Any]:
        """Send a request (a dict, or raw text); the decoded frames that answered."""
        if now is not None:
            self.now = now
        text = message if isinstance(message, (str, bytes)) else json.dumps(message)
        return [load(t) for t in texts(self._take(self.conn.receive_data(text, self.now)))]

    def inject(self, fault: Any, now: float) -> list[ServerAction]:
        self.now = now
        return self._take(self.conn.inject(fault, now))

    def texts_since(self, start: int) -> list[tuple[float, str]]:
        return self.timed_texts(self.log[start:])

    def subscribe(self, channel: str, symbols: list[str] | None = None, **params: Any) -> list[Any]:
        body: dict[str, Any] = {"channel": channel, **params}
        if symbols is not None:
            body["symbol"] = symbols
        return self.send({"method": "subscribe", "params": body})

    def run_until(self, end: float) -> list[tuple[float, ServerAction]]:
        """Call handle_timer at every deadline up to ``end``; the actions with their times."""
        start = len(self.log)
        while True:
            deadline = self.conn.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self._take(self.conn.handle_timer(self.now))
        self.now = end
        return self.log[start:]

    def frames_until(self, end: float) -> list[tuple[float, Any]]:
        return [(t, load(text)) for t, text in self.timed_texts(self.run_until(end))]

    @staticmethod
    def timed_texts(items: list[tuple[float, ServerAction]]) -> list[tuple[float, str]]:
        out = []
        for t, action in items:
            assert isinstance(action, Send), action
            out.append((t, action.text))
        return out


class NaiveBook:
    """A client-side model: apply levels in order, truncate to depth, verify the checksum."""

    def __init__(self, depth: int, price_precision: int, qty_precision: int) -> None:
        self.depth = depth
        self.precisions = (price_precision, qty_precision)
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, entry: dict[str, Any], snapshot: bool) -> bool:
        if snapshot:
            self.bids, self.asks = {}, {}
        for side, levels, best_first in (
            (self.bids, entry["bids"], True),
            (self.asks, entry["asks"], False),
        ):
            for level in levels:
                if level["qty"] == 0:
                    side.pop(level["price"], None)
                else:
                    side[level["price"]] = level["qty"]
            if len(side) > self.depth:
                for price in sorted(side, reverse=best_first)[self.depth :]:
                    del side[price]
        expected = book_checksum(
            sorted(self.asks.items())[:10],
            sorted(self.bids.items(), reverse=True)[:10],
            *self.precisions,
        )
        return bool(expected == entry["checksum"])


def assert_padded(text: str, price_precision: int, qty_precision: int) -> None:
    for name, precision in (("price", price_precision), ("qty", qty_precision)):
        tokens = re.findall(rf'"{name}":([-0-9.eE+]+)', text)
        assert tokens
        for token in tokens:
            assert re.fullmatch(rf"\d+\.\d{{{precision}}}", token), (name, token)


# --------------------------------------------------------------------------- connect


def test_status_first_with_wire_key_order_and_uint64_ids() -> None:
    ex = exchange()
    ids = []
    for index in range(24):
        client = Client(ex, now=float(index))
        assert len(client.log) == 1
        frame = load(texts([client.log[0][1]])[0])
        assert list(frame) == ["channel", "type", "data"]
        assert frame["channel"] == "status" and frame["type"] == "update"
        (status,) = frame["data"]
        assert list(status) == [
            "version",
            "system",
            "api_version",
            "connection_id",
            "upcoming_maintenance",
            "emergency",
        ]
        assert status["upcoming_maintenance"] == status["emergency"] == []
        assert status["version"] == "2.0.10"
        assert status["system"] == "online"
        assert status["api_version"] == "v2"
        assert status["connection_id"] == client.conn.connection_id
        ids.append(status["connection_id"])
    assert all(0 <= i < 2**64 for i in ids)
    assert any(i > 2**63 for i in ids) and any(i < 2**63 for i in ids)
    assert len(set(ids)) == len(ids)
    assert [c.connection_id for c in ex.connections] == ids


def test_no_heartbeat_and_no_wakeups_before_a_subscription() -> None:
    client = Client(exchange())
    assert client.conn.next_deadline() == 60.0  # only the idle close
    assert client.send({"method": "ping", "req_id": 5}, now=10.0)[0]["method"] == "pong"
    assert client.conn.next_deadline() == 70.0
    assert client.run_until(30.0) == []


# --------------------------------------------------------------------------- subscribe


def test_one_alphabetical_ack_per_symbol_then_its_snapshot() -> None:
    client = Client(exchange())
    frames = client.send(
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 25},
            "req_id": 42,
        },
        now=0.5,
    )
    assert [f.get("channel", f.get("method")) for f in frames] == [
        "subscribe",
        "book",
        "subscribe",
        "book",
    ]
    for ack, snap, symbol in ((frames[0], frames[1], "BTC/USD"), (frames[2], frames[3], "ETH/USD")):
        assert list(ack) == ACK_KEYS
        assert ack["req_id"] == 42 and ack["success"] is True
        assert ack["result"] == {
            "channel": "book",
            "depth": 25,
            "snapshot": True,
            "symbol": symbol,
        }
        assert list(ack["result"]) == ["channel", "depth", "snapshot", "symbol"]
        assert STAMP.match(ack["time_in"]) and STAMP.match(ack["time_out"])
        assert ack["time_in"] < ack["time_out"]
        assert ack["time_in"].startswith("2026-08-01T00:00:00.5")
        assert list(snap) == ["channel", "type", "data"]
        assert snap["type"] == "snapshot"
        (entry,) = snap["data"]
        assert list(entry) == ["symbol", "bids", "asks", "checksum", "timestamp"]
        assert entry["symbol"] == symbol
        assert len(entry["bids"]) == len(entry["asks"]) == 25
        assert STAMP.match(entry["timestamp"])
        spec = TWO[symbol]
        book = NaiveBook(25, spec.price_precision, spec.qty_precision)
        assert book.apply(entry, snapshot=True)
    assert frames[0]["time_out"] < frames[2]["time_in"]
    raw = texts(action for _, action in client.log[1:])
    assert_padded(raw[1], 1, 8)
    assert_padded(raw[3], 2, 8)


def test_default_depth_and_req_id_omitted() -> None:
    client = Client(exchange())
    ack, snap = client.subscribe("book", ["BTC/USD"])
    assert list(ack) == ["method", "result", "success", "time_in", "time_out"]
    assert ack["result"]["depth"] == 10
    assert len(snap["data"][0]["bids"]) == 10


@pytest.mark.parametrize("depth", [10, 1000])
def test_every_book_checksum_verifies_on_a_naive_model(depth: int) -> None:
    ex = exchange(symbols={"BTC/USD": TWO["BTC/USD"], "DOGE/USD": DEFAULT_SYMBOLS["DOGE/USD"]})
    client = Client(ex)
    frames = client.subscribe("book", ["BTC/USD", "DOGE/USD"], depth=depth)
    books = {
        symbol: NaiveBook(depth, spec.price_precision, spec.qty_precision)
        for symbol, spec in ex.specs.items()
    }
    updates = 0
    verified = 0
    pending = [(0.0, f) for f in frames if f.get("channel") == "book"]
    while True:
        for _, frame in pending:
            if frame.get("channel") != "book":
                continue
            (entry,) = frame["data"]
            assert len(entry) == 5 and "bids" in entry and "asks" in entry
            verified += books[entry["symbol"]].apply(entry, frame["type"] == "snapshot")
            updates += frame["type"] == "update"
        if updates >= 2000:
            break
        pending = client.frames_until(client.now + 1.0)
    assert verified == updates + 2
    for symbol, book in books.items():
        bids, asks = ex.markets[symbol].book(depth)
        assert sorted(book.bids.items(), reverse=True) == [(lv.price, lv.qty) for lv in bids]
        assert sorted(book.asks.items()) == [(lv.price, lv.qty) for lv in asks]
    for _, action in client.log:
        text = texts([action])[0]
        if '"channel":"book","type"' in text:
            symbol = load(text)["data"][0]["symbol"]
            assert_padded(text, ex.specs[symbol].price_precision, 8)


def test_heartbeats_every_second_whatever_else_flows() -> None:
    client = Client(exchange(), now=0.25)
    client.subscribe("book", ["BTC/USD"], depth=1000)
    client.subscribe("trade", ["BTC/USD", "ETH/USD"])
    items = client.frames_until(12.5)
    beats = [t for t, frame in items if frame == {"channel": "heartbeat"}]
    assert beats == [1.25 + i for i in range(12)]
    assert len(items) - len(beats) > 200  # plenty of market data in between
    raw = texts(action for _, action in client.log)
    assert raw.count('{"channel":"heartbeat"}') == 12


def test_heartbeat_phase_follows_the_connect_time() -> None:
    client = Client(exchange(), now=3.0)
    client.send({"method": "subscribe", "params": {"channel": "instrument"}}, now=5.4)
    beats = [t for t, f in client.frames_until(9.0) if f.get("channel") == "heartbeat"]
    assert beats == [6.0, 7.0, 8.0, 9.0]


def test_ticker_trade_ohlc_and_instrument_channels() -> None:
    ex = exchange()
    client = Client(ex)
    ack, snap = client.subscribe("ticker", ["BTC/USD"])
    assert ack["result"] == {
        "channel": "ticker",
        "event_trigger": "trades",
        "snapshot": True,
        "symbol": "BTC/USD",
    }
    (ticker,) = snap["data"]
    assert list(ticker) == [
        "symbol",
        "bid",
        "bid_qty",
        "ask",
        "ask_qty",
        "last",
        "volume",
        "vwap",
        "low",
        "high",
        "change",
        "change_pct",
        "trades",
        "timestamp",
    ]
    stats = ex.markets["BTC/USD"].ticker()
    assert ticker["bid"] == stats.bid and ticker["volume"] == stats.volume
    assert ticker["trades"] == stats.trades > 0
    (ack,) = client.subscribe("ticker", ["ETH/USD"], event_trigger="bbo", snapshot=False)
    assert ack["result"]["event_trigger"] == "bbo" and ack["result"]["snapshot"] is False
    (ack,) = client.subscribe("trade", ["BTC/USD"])
    assert ack["result"] == {"channel": "trade", "snapshot": False, "symbol": "BTC/USD"}
    ack, snap = client.subscribe("trade", ["ETH/USD"], snapshot=True)
    assert len(snap["data"]) == 50
    assert list(snap["data"][0]) == [
        "symbol",
        "side",
        "price",
        "qty",
        "ord_type",
        "trade_id",
        "timestamp",
    ]
    ids = [t["trade_id"] for t in snap["data"]]
    assert ids == list(range(ids[0], ids[0] + 50))
    ack, snap = client.subscribe("ohlc", ["BTC/USD"], interval=5)
    assert ack["result"] == {
        "channel": "ohlc",
        "interval": 5,
        "snapshot": True,
        "symbol": "BTC/USD",
        "warnings": ["timestamp is deprecated, use interval_begin"],
    }
    assert list(snap) == ["channel", "type", "timestamp", "data"]
    assert STAMP_NS.match(snap["timestamp"])
    candle = snap["data"][-1]
    assert list(candle) == [
        "symbol",
        "open",
        "high",
        "low",
        "close",
        "trades",
        "volume",
        "vwap",
        "interval_begin",
        "interval",
        "timestamp",
    ]
    assert STAMP_NS.match(candle["interval_begin"]) and STAMP.match(candle["timestamp"])
    assert candle["interval_begin"].endswith(":00.000000000Z")
    ack, snap = client.send({"method": "subscribe", "params": {"channel": "instrument"}})
    assert ack["result"] == {
        "channel": "instrument",
        "snapshot": True,
        "warnings": ["tick_size is deprecated, use price_increment"],
    }
    assert snap["type"] == "snapshot" and list(snap["data"]) == ["assets", "pairs"]
    pairs = {p["symbol"]: p for p in snap["data"]["pairs"]}
    assert pairs["BTC/USD"]["price_precision"] == 1
    assert pairs["ETH/USD"]["price_precision"] == 2
    assert pairs["BTC/USD"]["qty_precision"] == 8
    assert pairs["BTC/USD"]["price_increment"] == Decimal("0.1")
    assert pairs["BTC/USD"]["qty_min"] == Decimal("0.00005")
    assert [a["id"] for a in snap["data"]["assets"]] == ["BTC", "USD", "ETH"]
    raw_instrument = texts([client.log[-1][1]])[0]
    assert '"qty_increment":1e-08' in raw_instrument

    items = client.frames_until(20.0)
    channels = [(f["channel"], f.get("type")) for _, f in items]
    assert ("heartbeat", None) in channels
    tickers = [f["data"][0] for _, f in items if f["channel"] == "ticker"]
    trades = [f for _, f in items if f["channel"] == "trade"]
    ohlcs = [f for _, f in items if f["channel"] == "ohlc"]
    assert {t["symbol"] for t in tickers} == {"BTC/USD", "ETH/USD"}
    assert trades and ohlcs
    assert all(f["type"] == "update" for f in trades + ohlcs)
    assert {t["symbol"] for f in trades for t in f["data"]} == {"BTC/USD", "ETH/USD"}
    assert all(len(f["data"]) == 1 and f["data"][0]["interval"] == 5 for f in ohlcs)
    # "trades" tickers come with trades; "bbo" tickers with changes of the best levels.
    btc_tickers = [t for t in tickers if t["symbol"] == "BTC/USD"]
    btc_trade_frames = [f for f in trades if f["data"][0]["symbol"] == "BTC/USD"]
    assert len(btc_tickers) == len(btc_trade_frames)
    assert len([t for t in tickers if t["symbol"] == "ETH/USD"]) > len(btc_tickers)


def test_unsubscribe_echoes_its_parameters_and_stops_the_data() -> None:
    client = Client(exchange())
    client.subscribe("book", ["BTC/USD"], depth=100)
    client.subscribe("ticker", ["BTC/USD"], event_trigger="bbo")
    client.subscribe("trade", ["BTC/USD"])
    client.subscribe("ohlc", ["BTC/USD"], interval=1)
    client.subscribe("ohlc", ["BTC/USD"], interval=60)
    client.send({"method": "subscribe", "params": {"channel": "instrument", "snapshot": False}})
    client.run_until(3.0)

    def unsubscribe(channel: str, **params: Any) -> Any:
        body = {"channel": channel, **params}
        (frame,) = client.send({"method": "unsubscribe", "params": body, "req_id": 9})
        assert list(frame) == ACK_KEYS and frame["method"] == "unsubscribe"
        return frame["result"]

    assert unsubscribe("book", symbol=["BTC/USD"], depth=100) == {
        "channel": "book",
        "depth": 100,
        "symbol": "BTC/USD",
    }
    assert unsubscribe("ticker", symbol=["BTC/USD"]) == {
        "channel": "ticker",
        "event_trigger": "bbo",
        "symbol": "BTC/USD",
    }
    assert unsubscribe("trade", symbol=["BTC/USD"]) == {"channel": "trade", "symbol": "BTC/USD"}
    assert unsubscribe("ohlc", symbol=["BTC/USD"], interval=1) == {
        "channel": "ohlc",
        "interval": 1,
        "symbol": "BTC/USD",
    }
    later = client.frames_until(8.0)  # interval 60 is still subscribed
    assert {f["data"][0]["interval"] for _, f in later if f["channel"] == "ohlc"} == {60}
    assert unsubscribe("ohlc", symbol=["BTC/USD"], interval=60)["interval"] == 60
    assert unsubscribe("instrument") == {"channel": "instrument"}
    rest = client.frames_until(20.0)
    assert {f["channel"] for _, f in rest} == {"heartbeat"}
    assert client.conn.next_deadline() == 21.0  # heartbeats keep going, nothing else


# --------------------------------------------------------------------------- errors


def error_of(frames: list[Any]) -> Any:
    (frame,) = frames
    assert frame["success"] is False and "result" not in frame
    keys = [k for k in ("error", "method", "req_id", "success", "symbol") if k in frame]
    assert list(frame) == [*keys, "time_in", "time_out"]
    return frame


def test_already_subscribed_for_any_second_subscribe() -> None:
    client = Client(exchange())
    client.subscribe("book", ["BTC/USD"], depth=10)
    client.subscribe("ticker", ["BTC/USD"])
    client.subscribe("trade", ["BTC/USD"])
    client.subscribe("ohlc", ["BTC/USD"], interval=15)
    client.send({"method": "subscribe", "params": {"channel": "instrument"}})
    for channel, params in (
        ("book", {"depth": 10}),
        ("book", {"depth": 500}),
        ("ticker", {"event_trigger": "bbo"}),
        ("trade", {}),
        ("ohlc", {"interval": 15}),
    ):
        frame = error_of(
            client.send(
                {
                    "method": "subscribe",
                    "params": {"channel": channel, "symbol": ["BTC/USD"], **params},
                    "req_id": 2,
                }
            )
        )
        assert frame["error"] == "Already subscribed"
        assert frame["method"] == "subscribe" and frame["symbol"] == "BTC/USD"
        assert frame["req_id"] == 2
    frame = error_of(client.send({"method": "subscribe", "params": {"channel": "instrument"}}))
    assert frame["error"] == "Already subscribed" and "symbol" not in frame
    # Another interval of the same symbol is a separate ohlc subscription.
    assert client.subscribe("ohlc", ["BTC/USD"], interval=30)[0]["success"] is True


def test_subscription_not_found_says_method_subscribe() -> None:
    client = Client(exchange())
    client.subscribe("book", ["BTC/USD"], depth=25)
    client.subscribe("ohlc", ["BTC/USD"], interval=1)
    for channel, params in (
        ("book", {"depth": 10}),  # subscribed at another depth
        ("book", {"symbol": ["ETH/USD"]}),
        ("ticker", {}),
        ("trade", {}),
        ("ohlc", {"interval": 5}),
        ("ohlc", {"interval": 1, "symbol": ["ETH/USD"]}),
    ):
        body = {"channel": channel, "symbol": ["BTC/USD"], **params}
        frame = error_of(client.send({"method": "unsubscribe", "params": body, "req_id": 4}))
        assert frame["error"] == "Subscription Not Found"
        assert frame["method"] == "subscribe"
        assert frame["symbol"] == body["symbol"][0]
    body = {"method": "unsubscribe", "params": {"channel": "instrument"}}
    frame = error_of(client.send(body))
    assert frame["error"] == "Subscription Not Found" and "symbol" not in frame


def test_unknown_pair_fails_alone() -> None:
    client = Client(exchange())
    frames = client.send(
        {
            "method": "subscribe",
            "params": {"channel": "ticker", "symbol": ["XBT/USD", "BTC/USD"]},
            "req_id": 3,
        }
    )
    assert len(frames) == 3
    frame = error_of(frames[:1])
    assert frame["error"] == "Currency pair not supported XBT/USD"
    assert frame["symbol"] == "XBT/USD" and frame["method"] == "subscribe"
    assert frames[1]["success"] is True and frames[2]["channel"] == "ticker"
    frame = error_of(
        client.send({"method": "unsubscribe", "params": {"channel": "trade", "symbol": ["X/Y"]}})
    )
    assert frame["error"] == "Currency pair not supported X/Y"
    assert frame["method"] == "unsubscribe"


def sub(method: str = "subscribe", **params: Any) -> dict[str, Any]:
    return {"method": method, "params": params}


BTC = ["BTC/USD"]
NAME_INVALID = "Subscription name invalid"
NO_SYMBOLS = "Symbol(s) not found"
PRIVATE = PRIVATE_ON_PUBLIC_HOST
MALFORMED = "EGeneral:Invalid arguments"
BAD_DEPTH = "Subscription depth not supported"
NO_INTERVAL = "Subscription ohlc requires interval"
BAD_INTERVAL = "Subscription ohlc interval not supported"
BAD_TRIGGER = "EGeneral:Invalid arguments"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (sub(channel="books", symbol=BTC), NAME_INVALID),
        (sub(symbol=BTC), NAME_INVALID),
        ({"method": "subscribe"}, NAME_INVALID),
        (sub(channel="status"), NO_SYMBOLS),
        (sub(channel="book"), NO_SYMBOLS),
        (sub(channel="book", symbol=[]), NO_SYMBOLS),
        (sub(channel="book", symbol="BTC/USD"), MALFORMED),
        (sub(channel="book", symbol=[1]), MALFORMED),
        (sub(channel="executions", token="x"), PRIVATE),
        (sub(channel="balances"), PRIVATE),
        (sub("unsubscribe", channel="level3", symbol=BTC), PRIVATE),
        (sub("add_order", order_type="limit"), PRIVATE),
        ({"method": "cancel_all"}, PRIVATE),
        ({"method": "fly"}, MALFORMED),
        ({"method": "subscribe", "params": []}, MALFORMED),
        (sub(channel="book", symbol=BTC, snapshot=1), MALFORMED),
        (sub(channel="book", symbol=BTC, depth=20), BAD_DEPTH),
        (sub(channel="book", symbol=BTC, depth="10"), BAD_DEPTH),
        (sub(channel="ohlc", symbol=BTC), NO_INTERVAL),
        (sub("unsubscribe", channel="ohlc", symbol=BTC), NO_INTERVAL),
        (sub(channel="ohlc", symbol=BTC, interval=2), BAD_INTERVAL),
        (sub(channel="ohlc", symbol=BTC, interval=True), BAD_INTERVAL),
        (sub(channel="ticker", symbol=BTC, event_trigger="x"), BAD_TRIGGER),
    ],
)
def test_request_errors(request_: dict[str, Any], error: str) -> None:
    client = Client(exchange())
    frame = error_of(client.send({**request_, "req_id": 77}))
    assert frame["error"] == error
    assert frame["method"] == request_["method"]
    assert frame["req_id"] == 77
    assert "symbol" not in frame
    assert client.conn.next_deadline() == 60.0  # no heartbeats: nothing was subscribed


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        "42",
        b"\xff\xfe",
        '{"req_id": 1}',
        '{"method": 7, "req_id": 1}',
        '{"method": "ping", "req_id": "1"}',
        '{"method": "ping", "req_id": true}',
    ],
)
def test_malformed_requests(text: str | bytes) -> None:
    client = Client(exchange())
    frame = error_of(client.send(text))
    assert frame["error"] == MALFORMED
    assert "method" not in frame
    assert frame.get("req_id") in (None, 1)


def test_ping_pong() -> None:
    client = Client(exchange())
    (pong,) = client.send({"method": "ping", "req_id": 101}, now=2.0)
    assert list(pong) == ["method", "req_id", "time_in", "time_out"]
    assert pong["method"] == "pong" and pong["req_id"] == 101
    assert pong["time_in"].startswith("2026-08-01T00:00:02.0000")
    (pong,) = client.send(b'{"method":"ping"}', now=3.0)
    assert list(pong) == ["method", "time_in", "time_out"]


# --------------------------------------------------------------------------- timers


def test_idle_close_after_a_minute_without_client_messages() -> None:
    client = Client(exchange(ONE))
    client.send({"method": "ping"}, now=30.0)
    items = client.run_until(100.0)
    assert items == [(90.0, CloseConnection(1000, IDLE_CLOSE_REASON))]
    assert client.conn.closed and client.conn.next_deadline() is None
    assert client.conn.handle_timer(101.0) == []
    assert client.conn.receive_data('{"method":"ping"}', 101.0) == []
    assert client.conn.inject(Drop(), 101.0) == []
    assert client.conn.connection_made(101.0) == []
    assert client.conn not in client.ex.connections


@pytest.mark.parametrize(
    "request_",
    [
        {"channel": "book", "symbol": ["BTC/USD"]},
        {"channel": "instrument"},
    ],
)
def test_a_subscribed_connection_is_never_idle(request_: dict[str, Any]) -> None:
    # Kraken kept a subscribed socket that only sent WebSocket pings for a whole 600 s
    # capture: the idle close is for connections with nothing subscribed.
    client = Client(exchange(ONE, heartbeat_interval=30.0))
    client.send({"method": "subscribe", "params": request_}, now=1.0)
    items = client.run_until(600.0)
    assert all(isinstance(action, Send) for _, action in items)
    assert not client.conn.closed
    # Unsubscribed, it is closed a minute after its last message.
    unsubscribe = {"method": "unsubscribe", "params": request_}
    if request_["channel"] == "book":
        unsubscribe["params"] = {**request_, "depth": 10}
    assert client.send(unsubscribe, now=600.0)[-1]["success"] is True
    tail = client.run_until(700.0)
    assert tail[-1] == (660.0, CloseConnection(1000, IDLE_CLOSE_REASON))


def test_idle_timeout_can_be_disabled_and_configured() -> None:
    client = Client(exchange(idle_timeout=None, heartbeat_interval=0.5))
    assert client.conn.next_deadline() is None
    client.send({"method": "subscribe", "params": {"channel": "instrument"}}, now=0.1)
    beats = [t for t, f in client.frames_until(2.0) if f["channel"] == "heartbeat"]
    assert beats == [0.5, 1.0, 1.5, 2.0]


def test_connection_lost_forgets_the_session() -> None:
    ex = exchange()
    client = Client(ex)
    client.subscribe("book", ["BTC/USD"])
    assert client.conn.connection_lost(1.0) == []
    assert client.conn.closed and ex.connections == []
    assert client.conn.connection_lost(2.0) == []
    assert client.conn.next_deadline() is None


def test_markets_skip_time_nobody_watched() -> None:
    ex = exchange(max_catchup=1.0, idle_timeout=None)
    client = Client(ex)
    assert 0.0 < ex.next_step_time() < 2.0
    before = ex.markets["BTC/USD"].recent_trades()
    client.now = 3600.0
    client.subscribe("trade", ["BTC/USD"])
    # At most one second of events was simulated for the hour that passed.
    assert 3600.0 < ex.next_step_time() < 3602.0
    traded = [t for t in ex.markets["BTC/USD"].recent_trades() if t not in before]
    assert all(t.time >= DEFAULT_EPOCH + 3599.0 for t in traded)
    assert FakeExchange(symbols=ONE).next_step_time() == math.inf  # not started yet
    assert FakeExchange(symbols={}).origin is None
    empty = FakeExchange(symbols={}, origin=5.0)
    assert empty.origin == 5.0 and empty.next_step_time() == math.inf
    empty.advance(10.0)  # no markets: nothing to do
    assert empty.wall_time(10.0) == DEFAULT_EPOCH + 5.0


def test_wall_clock_is_epoch_plus_time_since_the_first_now() -> None:
    ex = exchange(epoch=1_800_000_000.0)
    client = Client(ex, now=5000.0)
    (pong,) = client.send({"method": "ping"}, now=5001.5)
    assert pong["time_in"].startswith("2027-01-15T08:00:01.5")
    assert ex.wall_time(5001.5) == 1_800_000_001.5


def test_two_connections_share_the_market_and_its_frames() -> None:
    ex = exchange()
    a, b = Client(ex), Client(ex, now=0.01)
    a.subscribe("book", ["BTC/USD"], depth=10)
    b.subscribe("book", ["BTC/USD"], depth=10)
    b.subscribe("book", ["ETH/USD"], depth=25)
    a_frames = [text for _, text in a.timed_texts(a.run_until(5.0))]
    b_frames = [text for _, text in b.timed_texts(b.run_until(5.0))]
    a_books = [t for t in a_frames if '"channel":"book"' in t]
    b_books = [t for t in b_frames if '"channel":"book"' in t and '"BTC/USD"' in t]
    assert a_books == b_books and len(a_books) > 50
    assert any('"ETH/USD"' in t for t in b_frames)


def test_frames_are_rendered_once_per_step_for_all_connections() -> None:
    ex = exchange(ONE)
    a, b = Client(ex), Client(ex)
    for client, depth in ((a, 10), (b, 25)):
        (ack,) = client.subscribe("book", ["BTC/USD"], depth=depth, snapshot=False)
        assert ack["result"]["snapshot"] is False
        client.subscribe("ticker", ["BTC/USD"])
        client.subscribe("trade", ["BTC/USD"])
        (ack,) = client.subscribe("ohlc", ["BTC/USD"], interval=1, snapshot=False)
        assert ack["result"]["snapshot"] is False
        client.send({"method": "subscribe", "params": {"channel": "instrument"}})
    assert texts([a.log[-1][1]]) == texts([b.log[-1][1]])  # the instrument snapshot
    a_items = [text for _, text in a.timed_texts(a.run_until(3.0))]
    b_items = [text for _, text in b.timed_texts(b.run_until(3.0))]
    shared = [t for t in a_items if '"channel":"book"' not in t]
    assert shared == [t for t in b_items if '"channel":"book"' not in t]
    assert any('"channel":"ohlc"' in t for t in shared)
    a_sums = [load(t)["data"][0]["checksum"] for t in a_items if '"channel":"book"' in t]
    b_sums = [load(t)["data"][0]["checksum"] for t in b_items if '"channel":"book"' in t]
    assert set(a_sums) <= set(b_sums)  # same top 10, same checksum at both depths


def test_same_seed_and_inputs_give_the_same_frames() -> None:
    def session(seed: int) -> list[str]:
        client = Client(FakeExchange(seed=seed, symbols=TWO), now=1.0)
        client.subscribe("book", ["BTC/USD", "ETH/USD"], depth=100)
        client.subscribe("ticker", ["ETH/USD"], event_trigger="bbo")
        client.subscribe("trade", ["BTC/USD"], snapshot=True)
        client.run_until(4.0)
        client.send({"method": "ping", "req_id": 1}, now=4.2)
        client.subscribe("ohlc", ["ETH/USD"], interval=1)
        client.run_until(8.0)
        return texts(action for _, action in client.log)

    first, second, other = session(3), session(3), session(4)
    assert first == second
    assert len(first) > 300
    assert first != other


# --------------------------------------------------------------------------- faults


def twins(**kwargs: Any) -> tuple[Client, Client]:
    """Two identical sessions on identical exchanges, to compare with and without a fault."""
    pair = []
    for _ in range(2):
        client = Client(FakeExchange(seed=5, symbols=ONE, **kwargs))
        client.subscribe("book", ["BTC/USD"])
        client.subscribe("trade", ["BTC/USD"])
        pair.append(client)
    return pair[0], pair[1]


def test_drop_and_close_faults() -> None:
    for fault, expected in (
        (Drop(), Drop()),
        (Close(), CloseConnection(1001, "")),
        (Close(1008, "policy"), CloseConnection(1008, "policy")),
        (Close(1006), Drop()),
    ):
        client = Client(exchange())
        client.subscribe("book", ["BTC/USD"])
        client.run_until(1.0)
        actions = client.conn.inject(fault, 1.2)
        assert actions[-1] == expected
        assert all(isinstance(a, Send) for a in actions[:-1])  # what was due before
        assert client.conn.closed and client.conn.next_deadline() is None
        assert client.run_until(5.0) == []


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match=r"1000\.\.4999"):
        Close(999)
    with pytest.raises(ValueError, match=r"Stall\.duration"):
        Stall(-1.0)
    with pytest.raises(ValueError, match=r"SlowSender\.delay"):
        SlowSender(-0.1)
    with pytest.raises(ValueError, match=r"SlowSender\.duration"):
        SlowSender(0.1, -1.0)


def test_stall_sends_nothing_ignores_requests_then_resumes() -> None:
    client = Client(exchange())
    client.subscribe("book", ["BTC/USD"])
    client.subscribe("ticker", ["BTC/USD"])
    client.run_until(2.0)
    assert texts(client.inject(Stall(3.0), 2.0)) == []
    assert client.send({"method": "ping"}, now=2.5) == []
    assert client.send({"method": "subscribe", "params": {"channel": "instrument"}}) == []
    assert client.run_until(4.99) == []
    resumed = client.frames_until(7.0)
    assert resumed and resumed[0][0] == 5.0
    assert [t for t, f in resumed if f["channel"] == "heartbeat"] == [5.0, 6.0, 7.0]
    assert client.send({"method": "ping"}, now=7.1)[-1]["method"] == "pong"
    # The updates missed during the stall are not replayed: the next checksum fails.
    spec = TWO["BTC/USD"]
    book = NaiveBook(10, spec.price_precision, spec.qty_precision)
    results = []
    for _, action in client.log:
        frame = load(texts([action])[0])
        if frame.get("channel") == "book":
            results.append(book.apply(frame["data"][0], frame["type"] == "snapshot"))
    assert False in results


def test_stall_for_good_and_the_idle_timer() -> None:
    client = Client(exchange(ONE))
    client.subscribe("book", ["BTC/USD"])
    client.run_until(1.0)
    client.inject(Stall(), 1.0)
    assert client.run_until(100.0) == []  # no idle close either
    assert 100.0 < cast(float, client.conn.next_deadline()) < 102.0
    assert not client.conn.closed
    # A stall that outlasts the idle timeout closes the connection when it ends.
    client = Client(exchange())
    client.inject(Stall(100.0), 10.0)
    items = client.run_until(200.0)
    assert items == [(110.0, CloseConnection(1000, IDLE_CLOSE_REASON))]


def test_corrupt_checksum_hits_the_next_book_message_only() -> None:
    plain, faulty = twins()
    start = len(plain.log)
    faulty.inject(CorruptChecksum("BTC/USD"), 0.0)
    faulty.inject(CorruptChecksum("ETH/USD"), 0.0)  # not subscribed: nothing happens
    plain.run_until(3.0)
    faulty.run_until(3.0)
    a, b = plain.texts_since(start), faulty.texts_since(start)
    differing = [(x, y) for (_, x), (_, y) in zip(a, b, strict=True) if x != y]
    assert len(a) == len(b) > 60 and len(differing) == 1
    good, bad = (load(text)["data"][0] for text in differing[0])
    assert good["checksum"] != bad["checksum"]
    assert {**good, "checksum": 0} == {**bad, "checksum": 0}
    assert differing[0][0] == next(x for _, x in a if '"channel":"book"' in x)
    # Armed before a subscribe, it corrupts the snapshot.
    client = Client(exchange())
    client.inject(CorruptChecksum("ETH/USD"), 0.0)
    _, snap = client.subscribe("book", ["ETH/USD"])
    assert not NaiveBook(10, 2, 8).apply(snap["data"][0], snapshot=True)


def test_malformed_truncated_and_rate_limit_frames() -> None:
    client = Client(exchange())
    assert texts(client.inject(MalformedFrame(), 0.1)) == [MALFORMED_TEXT]
    assert texts(client.inject(MalformedFrame("{"), 0.1)) == ["{"]
    assert texts(client.inject(RateLimit(), 0.2)) == ['{"Error":"Exceeded msg rate"}']
    assert RATE_LIMIT_TEXT == '{"Error":"Exceeded msg rate"}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(MALFORMED_TEXT)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(MALFORMED_TEXT)

    plain, faulty = twins()
    start = len(plain.log)
    plain.run_until(0.5)
    faulty.inject(TruncatedFrame(), 0.5)
    plain.run_until(2.0)
    faulty.run_until(2.0)
    a, b = plain.texts_since(start), faulty.texts_since(start)
    assert len(a) == len(b) > 20
    cut = next(i for i, (t, _) in enumerate(a) if t > 0.5)
    a_texts, b_texts = [text for _, text in a], [text for _, text in b]
    assert a_texts[:cut] == b_texts[:cut]
    assert b_texts[cut] == a_texts[cut][: len(a_texts[cut]) // 2]
    assert a_texts[cut + 1 :] == b_texts[cut + 1 :]
    with pytest.raises(json.JSONDecodeError):
        json.loads(b_texts[cut])


def test_slow_sender_delays_every_frame_in_order() -> None:
    plain, faulty = twins()
    start = len(plain.log)
    faulty.inject(SlowSender(0.5, duration=2.0), 0.0)
    for client in (plain, faulty):
        client.send({"method": "ping", "req_id": 1}, now=0.01)
        client.run_until(6.0)
    a, b = plain.texts_since(start), faulty.texts_since(start)
    assert [text for _, text in a] == [text for _, text in b]
    assert load(a[0][1])["method"] == "pong"
    assert (a[0][0], b[0][0]) == (0.01, 0.51)
    delays = [round(tb - ta, 6) for (ta, _), (tb, _) in zip(a, b, strict=True)]
    assert max(delays) == 0.5 and delays[0] == 0.5
    for (ta, _), (tb, _), delay in zip(a, b, delays, strict=True):
        if ta < 2.0:
            assert delay == 0.5  # held back
        elif ta < 2.5:
            assert ta <= tb <= 2.5  # queued behind the held-back frames
        else:
            assert delay == 0.0  # the slow period is over
    # Without a duration it lasts for good; held-back frames are lost on a drop.
    client = Client(exchange())
    client.inject(SlowSender(1.0), 0.0)
    assert client.send({"method": "ping"}, now=0.5) == []
    assert client.run_until(1.49) == []
    assert len(client.run_until(1.5)) == 1
    client.send({"method": "ping"}, now=2.0)
    assert client.inject(Drop(), 2.2) == [Drop()]


def test_scheduled_faults() -> None:
    ex = exchange()
    first = Client(ex)
    ex.schedule(Drop(), after=5.0)  # every connection, 5 s after it opened
    second = Client(ex, now=2.0)
    assert first.run_until(10.0) == [(5.0, Drop())]
    assert second.run_until(10.0) == [(7.0, Drop())]

    ex = exchange()
    early = Client(ex)
    ex.schedule(Close(1008), at=20.0)  # every connection open at 20 s
    middle = Client(ex, now=10.0)
    late = Client(ex, now=21.0)
    assert early.run_until(30.0) == [(20.0, CloseConnection(1008, ""))]
    assert middle.run_until(30.0) == [(20.0, CloseConnection(1008, ""))]
    assert late.run_until(30.0) == []

    ex.schedule(RateLimit(), at=35.0, connection=late.conn)
    other = Client(ex, now=31.0)
    ex.schedule(Close(), after=4.0, connection=other.conn)
    assert late.run_until(40.0) == [(35.0, Send(RATE_LIMIT_TEXT))]
    assert other.run_until(40.0) == [(35.0, CloseConnection(1001, ""))]
    late.conn.schedule(Drop(), at=41.0)
    late.conn.connection_lost(40.5)
    late.conn.schedule(Drop(), at=42.0)  # finished: ignored
    assert late.conn.next_deadline() is None
    for bad in ({}, {"at": 1.0, "after": 1.0}):
        with pytest.raises(ValueError, match="exactly one"):
            ex.schedule(Drop(), **bad)  # type: ignore[arg-type]


def test_a_scheduled_drop_cuts_the_stream_at_its_time() -> None:
    client = Client(exchange())
    client.subscribe("book", ["BTC/USD"])
    client.conn.schedule(Drop(), at=2.02)
    # Called late, the frames due before 2.02 still go out, nothing after.
    actions = client.conn.handle_timer(3.0)
    assert actions[-1] == Drop()
    stamps = [load(t)["data"][0]["timestamp"] for t in texts(actions[:-1]) if "book" in t]
    assert "2026-08-01T00:00:01.5" < stamps[-1] <= "2026-08-01T00:00:02.020000Z"


# --------------------------------------------------------------------------- configuration


def test_exchange_validation_and_defaults() -> None:
    for kwargs, name in (
        ({"tick_rate": 0}, "tick_rate"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"max_catchup": 0}, "max_catchup"),
        ({"snapshot_delay": 0}, "snapshot_delay"),
        ({"message_rate": 0}, "message_rate"),
        ({"message_burst": 0}, "message_burst"),
    ):
        with pytest.raises(ValueError, match=name):
            FakeExchange(**kwargs)  # type: ignore[arg-type]
    ex = FakeExchange()
    assert list(ex.markets) == [
        "BTC/USD",
        "ETH/USD",
        "XRP/USD",
        "SOL/USD",
        "ADA/USD",
        "DOGE/USD",
        "LTC/USD",
        "DOT/USD",
    ]
    precisions = {s: (m.price_precision, m.qty_precision) for s, m in ex.markets.items()}
    assert precisions == {
        "BTC/USD": (1, 8),
        "ETH/USD": (2, 8),
        "XRP/USD": (5, 8),
        "SOL/USD": (2, 8),
        "ADA/USD": (6, 8),
        "DOGE/USD": (7, 8),
        "LTC/USD": (2, 8),
        "DOT/USD": (4, 8),
    }
    spec = SymbolSpec(2, 4, Decimal("10.00"), tick=Decimal("0.05"), qty_min=Decimal("0.5"))
    assert spec.price_increment() == Decimal("0.05")
    assert spec.minimum_qty() == Decimal("0.5")
    assert SymbolSpec(1, 2, Decimal("63000")).minimum_qty() == Decimal("0.01")
    assert DEFAULT_SYMBOLS["DOGE/USD"].minimum_qty() == Decimal("10")
    custom = FakeExchange(symbols={"PEPE/EUR": spec})
    assert custom.markets["PEPE/EUR"].tick == Decimal("0.05")
    client = Client(custom)
    _, snap = client.send({"method": "subscribe", "params": {"channel": "instrument"}})
    assert snap["data"]["assets"][1]["id"] == "EUR"
    assert snap["data"]["pairs"][0]["price_increment"] == Decimal("0.05")


# --------------------------------------------------------------------------- snapshot timing


def test_a_book_snapshot_comes_after_kraken_like_delays() -> None:
    # Kraken's snapshots came 13-466 ms after their acks (median 153 ms); a heartbeat
    # may come in between, and no update of that symbol comes before its snapshot.
    ex = exchange(snapshot_delay=0.15)
    delays = []
    for index in range(40):
        client = Client(ex, now=10.0 * index)
        start = 10.0 * index + 0.1 * (index % 10)
        (ack,) = client.send(
            {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}},
            now=start,
        )
        assert ack["success"] is True
        items = client.frames_until(start + 1.0)
        books = [(t, f) for t, f in items if f["channel"] == "book"]
        assert books[0][1]["type"] == "snapshot"
        assert all(f["type"] == "update" for _, f in books[1:])
        snapshot_at = books[0][0]
        delays.append(snapshot_at - start)
        stamp = books[0][1]["data"][0]["timestamp"]
        assert stamp == frames_module.rfc3339(ex.wall_time(snapshot_at))
        spec = TWO["BTC/USD"]
        book = NaiveBook(10, spec.price_precision, spec.qty_precision)
        assert all(book.apply(f["data"][0], f["type"] == "snapshot") for _, f in books)
        if any(f["channel"] == "heartbeat" for t, f in items if t < snapshot_at):
            delays.append(-1.0)  # marks: a heartbeat came in between
        client.conn.connection_lost(client.now)
    waits = [d for d in delays if d >= 0]
    assert all(0.015 <= d <= 0.45 for d in waits)
    assert 0.08 < sorted(waits)[len(waits) // 2] < 0.25
    assert -1.0 in delays


def test_unsubscribing_before_the_snapshot_cancels_it() -> None:
    ex = exchange(snapshot_delay=0.15)
    client = Client(ex)
    client.subscribe("book", ["BTC/USD", "ETH/USD"])
    (ack,) = client.send(
        {
            "method": "unsubscribe",
            "params": {"channel": "book", "symbol": ["ETH/USD"], "depth": 10},
        },
        now=0.001,
    )
    assert ack["success"] is True
    books = [f for _, f in client.frames_until(2.0) if f["channel"] == "book"]
    assert {f["data"][0]["symbol"] for f in books} == {"BTC/USD"}
    assert books[0]["type"] == "snapshot"
    # Subscribed again before the first snapshot was due: only the second one comes.
    client.subscribe("book", ["ETH/USD"], depth=25)
    client.send(
        {
            "method": "unsubscribe",
            "params": {"channel": "book", "symbol": ["ETH/USD"], "depth": 25},
        }
    )
    client.subscribe("book", ["ETH/USD"])
    eth = [f for _, f in client.frames_until(4.0) if f["channel"] == "book"]
    eth = [f for f in eth if f["data"][0]["symbol"] == "ETH/USD"]
    assert [f["type"] for f in eth].count("snapshot") == 1 and eth[0]["type"] == "snapshot"
    assert len(eth[0]["data"][0]["bids"]) == 10
    # A connection closed while waiting gets nothing.
    other = Client(ex, now=4.0)
    other.subscribe("book", ["BTC/USD"])
    other.conn.connection_lost(4.01)
    assert other.run_until(5.0) == []


def test_snapshot_data_waits_for_it_on_every_depth_and_level3_too() -> None:
    ex = exchange(ONE, snapshot_delay=0.3)
    client = Client(ex)
    client.subscribe("book", ["BTC/USD"], depth=1000)
    client.subscribe("ticker", ["BTC/USD"])  # ticker snapshots are not delayed
    items = client.frames_until(3.0)
    books = [(t, f) for t, f in items if f["channel"] == "book"]
    assert books[0][1]["type"] == "snapshot" and 0.03 <= books[0][0] <= 0.9
    assert len(books[0][1]["data"][0]["asks"]) == 1000
    book = NaiveBook(1000, 1, 8)
    assert all(book.apply(f["data"][0], f["type"] == "snapshot") for _, f in books)


def test_snapshot_timing_is_reproducible() -> None:
    def run() -> list[tuple[float, str]]:
        client = Client(exchange(snapshot_delay=0.15))
        client.subscribe("book", ["BTC/USD", "ETH/USD"], depth=25)
        return client.timed_texts(client.run_until(3.0))

    assert run() == run()


# --------------------------------------------------------------------------- message rate


def test_a_flood_gets_exceeded_msg_rate_and_the_socket_is_closed() -> None:
    ex = exchange(message_rate=10.0, message_burst=20)
    client = Client(ex)
    for index in range(20):  # the burst
        (pong,) = client.send({"method": "ping", "req_id": index})
        assert pong["method"] == "pong"
    actions = client.conn.receive_data('{"method":"ping","req_id":20}', 0.0)
    assert actions == [
        Send(RATE_LIMIT_TEXT),
        CloseConnection(RATE_LIMIT_CLOSE, "Exceeded msg rate"),
    ]
    assert client.conn.closed and client.conn.next_deadline() is None
    # Paced at the rate, a client is never cut off.
    client = Client(ex)
    for index in range(200):
        frames = client.send({"method": "ping", "req_id": index}, now=0.1 * index)
        assert frames[-1]["method"] == "pong"
    assert not client.conn.closed


def test_the_default_budget_and_switching_it_off() -> None:
    # Kraken answered neither 300 pings nor 200 subscribes in one burst.
    client = Client(exchange())
    answered = 0
    for index in range(300):
        actions = client.conn.receive_data(f'{{"method":"ping","req_id":{index}}}', 1.0)
        if client.conn.closed:
            assert actions[-2:] == [
                Send(RATE_LIMIT_TEXT),
                CloseConnection(1008, "Exceeded msg rate"),
            ]
            break
        answered += 1
    assert answered == MESSAGE_BURST
    client = Client(exchange(message_rate=None))
    for index in range(300):
        client.send({"method": "ping", "req_id": index}, now=1.0)
    assert not client.conn.closed


# --------------------------------------------------------------------------- clock


def test_wall_clock_from_an_origin_given_at_construction() -> None:
    # A server passes the current time: epoch stands for its clock's origin.
    ex = FakeExchange(symbols=ONE, epoch=1_800_000_000.25, origin=500.0, snapshot_delay=None)
    assert ex.origin == 500.0
    client = Client(ex, now=530.0)
    (pong,) = client.send({"method": "ping"}, now=531.0)
    assert pong["time_in"].startswith("2027-01-15T08:00:31.25")
    _, snap = client.subscribe("book", ["BTC/USD"])
    assert snap["data"][0]["timestamp"].startswith("2027-01-15T08:00:31.25")
    # Market events have their own microsecond times: not on a 50 ms grid.
    stamps = [
        f["data"][0]["timestamp"] for _, f in client.frames_until(541.0) if f["channel"] == "book"
    ]
    assert len(stamps) > 50
    assert sum(stamp.endswith(("00000Z", "50000Z")) for stamp in stamps) < 3


def test_ohlc_and_level3_stamps_carry_nine_digits() -> None:
    client = Client(exchange(ONE))
    client.subscribe("ohlc", ["BTC/USD"], interval=1, snapshot=False)
    stamps = [f["timestamp"] for _, f in client.frames_until(30.0) if f["channel"] == "ohlc"]
    assert len(stamps) > 5 and all(STAMP_NS.match(s) for s in stamps)
    assert sum(s.endswith("000Z") for s in stamps) < 3


def test_nanosecond_stamps_round_into_the_next_second() -> None:
    assert frames_module.rfc3339_ns(1_785_542_400.0) == "2026-08-01T00:00:00.000000000Z"
    assert frames_module.rfc3339_ns(0.9999999996) == "1970-01-01T00:00:01.000000000Z"
    assert frames_module.rfc3339_ns(1_785_542_400.25) == "2026-08-01T00:00:00.250000000Z"
