"""The fake exchange's level3 host: order-by-order books checked by a naive client model."""

from __future__ import annotations

import itertools
import json
import re
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kraken_proto.actions import Send
from kraken_proto.auth import TOKEN_PATH, sign
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    SIM_API_KEY,
    SIM_API_SECRET,
    CorruptChecksum,
    FakeExchange,
)

NONCES = itertools.count(1)
STAMP_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def load(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def T(value: Decimal, precision: int) -> str:
    """The checksum digits of ``value`` at ``precision``, written independently."""
    text = f"{value:.{precision}f}"
    return text.replace(".", "").lstrip("0")


def naive_checksum(
    asks: list[tuple[Decimal, list[tuple[str, Decimal]]]],
    bids: list[tuple[Decimal, list[tuple[str, Decimal]]]],
    price_precision: int,
    qty_precision: int,
) -> int:
    """Top 10 price levels per side, every order in queue order, asks then bids."""
    text = ""
    for levels in (asks[:10], bids[:10]):
        for price, orders in levels:
            for _, qty in orders:
                text += T(price, price_precision) + T(qty, qty_precision)
    return zlib.crc32(text.encode())


class NaiveL3:
    """A client's level3 book: apply events in order, truncate to depth, verify."""

    def __init__(self, depth: int, price_precision: int, qty_precision: int) -> None:
        self.depth = depth
        self.precisions = (price_precision, qty_precision)
        self.sides: dict[str, dict[Decimal, list[list[Any]]]] = {"bids": {}, "asks": {}}

    def ordered(self, side: str) -> list[tuple[Decimal, list[tuple[str, Decimal]]]]:
        book = self.sides[side]
        prices = sorted(book, reverse=side == "bids")
        return [(p, [(o[0], o[1]) for o in book[p]]) for p in prices]

    def apply(self, entry: dict[str, Any], snapshot: bool) -> bool:
        if snapshot:
            self.sides = {"bids": {}, "asks": {}}
        for side in ("bids", "asks"):
            book = self.sides[side]
            for order in entry[side]:
                price = order["limit_price"]
                event = order.get("event", "add")
                queue = book.setdefault(price, [])
                if event == "add":
                    assert order["order_id"] not in [o[0] for o in queue]
                    queue.append([order["order_id"], order["order_qty"]])
                elif event == "modify":
                    [target] = [o for o in queue if o[0] == order["order_id"]]
                    target[1] = order["order_qty"]
                else:
                    assert event == "delete"
                    assert order["order_qty"] > 0  # a delete carries the last quantity
                    queue[:] = [o for o in queue if o[0] != order["order_id"]]
                if not queue:
                    del book[price]
            for price in sorted(book, reverse=side == "bids")[self.depth :]:
                del book[price]
        expected = naive_checksum(self.ordered("asks"), self.ordered("bids"), *self.precisions)
        return bool(expected == entry["checksum"])


def test_the_naive_checker_reproduces_the_documented_vector(data_dir: Path) -> None:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    vector = next(v for v in vectors if v["kind"] == "l3_v2")
    data = vector["input"]

    def levels(rows: list[dict[str, str]], reverse: bool) -> list[Any]:
        book: dict[Decimal, list[tuple[str, Decimal]]] = {}
        for row in rows:
            book.setdefault(Decimal(row["limit_price"]), []).append(
                (row["order_id"], Decimal(row["order_qty"]))
            )
        return [(p, book[p]) for p in sorted(book, reverse=reverse)]

    assert (
        naive_checksum(levels(data["asks"], False), levels(data["bids"], True), 1, 8)
        == vector["expected"]
    )


def token_for(ex: FakeExchange) -> str:
    nonce = next(NONCES)
    body = f"nonce={nonce}"
    headers = {"API-Key": SIM_API_KEY, "API-Sign": sign(TOKEN_PATH, body, nonce, SIM_API_SECRET)}
    return str(
        json.loads(ex.handle_token_request(TOKEN_PATH, headers, body.encode(), 0.0)[1])["result"][
            "token"
        ]
    )


class L3Client:
    def __init__(self, ex: FakeExchange, now: float = 0.0) -> None:
        self.ex = ex
        self.now = now
        self.conn = ex.open_connection(now, "level3")
        self.conn.connection_made(now)

    def send(self, message: dict[str, Any]) -> list[Any]:
        return [
            load(a.text)
            for a in self.conn.receive_data(json.dumps(message), self.now)
            if isinstance(a, Send)
        ]

    def run(self, end: float) -> list[Any]:
        out: list[Any] = []
        while True:
            deadline = self.conn.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = deadline
            for action in self.conn.handle_timer(deadline):
                assert isinstance(action, Send)
                out.append(load(action.text))
        return out


def subscribe(token: str, symbols: list[str], **params: Any) -> dict[str, Any]:
    return {
        "method": "subscribe",
        "params": {"channel": "level3", "symbol": symbols, "token": token, **params},
        "req_id": 1,
    }


@pytest.mark.parametrize(
    ("symbol", "depth", "duration"),
    [("BTC/USD", 10, 30.0), ("ETH/USD", 100, 30.0), ("XRP/USD", 1000, 6.0)],
)
def test_every_level3_checksum_verifies_over_a_long_run(
    symbol: str, depth: int, duration: float
) -> None:
    spec = DEFAULT_SYMBOLS[symbol]
    ex = FakeExchange(seed=11, symbols={symbol: spec}, idle_timeout=None, snapshot_delay=None)
    client = L3Client(ex)
    ack, snapshot = client.send(subscribe(token_for(ex), [symbol], depth=depth))
    assert list(ack) == ["method", "req_id", "result", "success", "time_in", "time_out"]
    assert ack["result"] == {
        "channel": "level3",
        "depth": depth,
        "snapshot": True,
        "symbol": symbol,
    }
    assert snapshot["type"] == "snapshot"
    entry = snapshot["data"][0]
    assert list(entry) == ["symbol", "bids", "asks", "checksum", "timestamp"]
    assert STAMP_NS.match(entry["timestamp"]) and STAMP_NS.match(entry["bids"][0]["timestamp"])
    assert list(entry["bids"][0]) == ["order_id", "limit_price", "order_qty", "timestamp"]
    book = NaiveL3(depth, spec.price_precision, spec.qty_precision)
    assert book.apply(entry, snapshot=True)
    assert len({o["limit_price"] for o in entry["asks"]}) == depth
    updates = 0
    events: set[str] = set()
    for frame in client.run(duration):
        if frame.get("channel") != "level3":
            continue
        updates += 1
        data = frame["data"][0]
        events |= {o["event"] for side in ("bids", "asks") for o in data[side]}
        assert book.apply(data, snapshot=False), f"checksum mismatch at update {updates}"
    assert updates > duration * 15
    assert events == {"add", "modify", "delete"}
    # The client's book equals a fresh snapshot of the same depth.
    other = L3Client(ex, client.now)
    _, fresh = other.send(subscribe(token_for(ex), [symbol], depth=depth))
    snap = NaiveL3(depth, spec.price_precision, spec.qty_precision)
    assert snap.apply(fresh["data"][0], snapshot=True)
    assert snap.ordered("bids") == book.ordered("bids")
    assert snap.ordered("asks") == book.ordered("asks")


def test_level3_numbers_are_padded_and_errors() -> None:
    ex = FakeExchange(seed=2, symbols={"BTC/USD": DEFAULT_SYMBOLS["BTC/USD"]}, snapshot_delay=None)
    client = L3Client(ex)
    token = token_for(ex)
    [error] = client.send(subscribe("bad", ["BTC/USD"]))
    assert error["error"] == "ESession:Invalid session" and error["channel"] == "level3"
    [error] = client.send(subscribe(token, ["BTC/USD"], depth=25))
    assert error["error"] == "Subscription depth not supported"
    [error] = client.send(subscribe(token, []))
    assert error["error"] == "Symbol(s) not found"
    [error] = client.send(subscribe(token, "BTC/USD"))  # type: ignore[arg-type]
    assert error["error"] == "EGeneral:Invalid arguments"
    [error] = client.send(subscribe(token, ["BTC/USD"], snapshot="yes"))
    assert error["error"] == "EGeneral:Invalid arguments"
    [error] = client.send(subscribe(token, ["XBT/USD"]))
    assert error["error"] == "Currency pair not supported XBT/USD" and error["symbol"] == "XBT/USD"
    actions = client.conn.receive_data(json.dumps(subscribe(token, ["BTC/USD"])), 0.0)
    text = actions[1].text  # type: ignore[union-attr]
    for token_text in re.findall(r'"limit_price":([0-9.]+)', text):
        assert re.fullmatch(r"\d+\.\d", token_text)
    for token_text in re.findall(r'"order_qty":([0-9.]+)', text):
        assert re.fullmatch(r"\d+\.\d{8}", token_text)
    [error] = client.send(subscribe(token, ["BTC/USD"]))
    assert error["error"] == "Already subscribed"
    unsubscribe = {
        "method": "unsubscribe",
        "params": {"channel": "level3", "symbol": ["BTC/USD"], "token": token, "depth": 100},
    }
    [error] = client.send(unsubscribe)
    assert error["error"] == "Subscription Not Found" and error["method"] == "subscribe"
    unsubscribe["params"]["depth"] = 10
    [ok] = client.send(unsubscribe)
    assert ok["result"] == {"channel": "level3", "depth": 10, "symbol": "BTC/USD"}
    assert not [f for f in client.run(3.0) if f.get("channel") == "level3"]
    # snapshot=false: only updates.
    frames = client.send(subscribe(token, ["BTC/USD"], snapshot=False))
    assert len(frames) == 1 and frames[0]["result"]["snapshot"] is False


def test_corrupt_checksum_hits_the_next_level3_message() -> None:
    spec = DEFAULT_SYMBOLS["BTC/USD"]
    ex = FakeExchange(seed=2, symbols={"BTC/USD": spec}, snapshot_delay=None)
    client = L3Client(ex)
    _, snapshot = client.send(subscribe(token_for(ex), ["BTC/USD"]))
    book = NaiveL3(10, 1, 8)
    assert book.apply(snapshot["data"][0], snapshot=True)
    twin = L3Client(ex)  # the same frames, rendered once for both
    twin.send(subscribe(token_for(ex), ["BTC/USD"]))
    client.conn.inject(CorruptChecksum("BTC/USD"), 0.0)
    results = [
        book.apply(f["data"][0], snapshot=False)
        for f in client.run(2.0)
        if f.get("channel") == "level3"
    ]
    assert results[0] is False and all(results[1:])
    twin_frames = [f for f in twin.run(2.0) if f.get("channel") == "level3"]
    assert len(twin_frames) == len(results)
