"""Helpers for the tests of KrakenProtocol and its parts: configurations, protocols in a
given state, frames and the actions' Sends, events and state changes."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from frames import NaiveBook, ack, ticker

from kraken_proto import (
    Action,
    BookUpdate,
    ClientConfig,
    ConnectionState,
    Emit,
    KrakenProtocol,
    Precision,
    ReconnectConfig,
    Send,
    StateChanged,
)
from kraken_proto.events import L3Order, L3Update
from kraken_proto.trading import AddOrder

E = TypeVar("E")


S = ConnectionState


def cfg(**overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "ping_interval": None,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(7),
    }
    base.update(overrides)
    return ClientConfig(**base)


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def events(actions: list[Action], kind: type[E]) -> list[E]:
    return [a.event for a in actions if isinstance(a, Emit) and isinstance(a.event, kind)]


def states(actions: list[Action]) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events(actions, StateChanged)]


def open_proto(config: ClientConfig | None = None, now: float = 0.0) -> KrakenProtocol:
    proto = KrakenProtocol(config or cfg())
    proto.connect(now)
    proto.connection_made(now)
    return proto


def subscribed_book(
    symbols: tuple[str, ...] = ("BTC/USD",), config: ClientConfig | None = None
) -> tuple[KrakenProtocol, dict[str, NaiveBook]]:
    """A protocol with live, verified books for ``symbols`` (depth 10)."""
    proto = KrakenProtocol(config or cfg())
    proto.subscribe("book", list(symbols), 0.0)
    proto.connect(0.0)
    request = sent(proto.connection_made(0.0))[0]
    books = {}
    for symbol in symbols:
        proto.receive_data(ack("book", symbol, request["req_id"], depth=10, snapshot=True), 0.1)
        books[symbol] = NaiveBook(symbol)
        actions = proto.receive_data(books[symbol].snapshot(), 0.2)
        assert events(actions, BookUpdate)[0].snapshot
    assert proto.state is S.SUBSCRIBED
    return proto, books


def drive(proto: KrakenProtocol, until: float) -> list[Action]:
    """Fire every timer up to ``until`` as a driver would; return the actions, in order."""
    actions: list[Action] = []
    deadline = proto.next_deadline()
    while deadline is not None and deadline <= until:
        actions += proto.handle_timer(deadline)
        deadline = proto.next_deadline()
    return actions


def pings(actions: list[Action]) -> list[int]:
    return [r["req_id"] for r in sent(actions) if r["method"] == "ping"]


def private_config(**overrides: Any) -> ClientConfig:
    return cfg(api_key="KEY123", api_secret="c2VjcmV0c2VjcmV0", **overrides)


def ticker_entry(symbol: str = "BTC/USD") -> str:
    """One good ticker entry followed by a comma, to splice into a frame's data."""
    frame = ticker(symbol)
    return frame[frame.index("[") + 1 : frame.rindex("]")] + ","


TOKEN = "WS-TOKEN-0123456789abcdef"


KEY = "KEY123"


SECRET = "c2VjcmV0c2VjcmV0"


TIMES = {"time_in": "2026-08-01T02:53:53.184174Z", "time_out": "2026-08-01T02:53:53.184216Z"}


def private_cfg(**overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "ping_interval": None,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(7),
        "api_key": KEY,
        "api_secret": SECRET,
    }
    base.update(overrides)
    return ClientConfig(**base)


def authenticated(
    config: ClientConfig | None = None,
    *,
    level3: bool = False,
    now: float = 0.0,
    replay: bool = False,
) -> KrakenProtocol:
    proto = KrakenProtocol(
        config or private_cfg(), private=not level3, level3=level3, replay=replay
    )
    proto.connect(now)
    proto.connection_made(now)
    proto.token_received(TOKEN, now)
    return proto


def response(method: str, req_id: int | None, result: Any = None, err: str | None = None) -> str:
    frame: dict[str, Any] = {"method": method}
    if req_id is not None:
        frame["req_id"] = req_id
    if err is None:
        frame["result"] = result
        frame["success"] = True
    else:
        frame["error"] = err
        frame["success"] = False
    frame.update(TIMES)
    return json.dumps(frame)


def executions_frame(sequence: int, *reports: dict[str, Any], snapshot: bool = False) -> str:
    kind = "snapshot" if snapshot else "update"
    return json.dumps(
        {"channel": "executions", "type": kind, "data": list(reports), "sequence": sequence}
    )


def order(**fields: Any) -> AddOrder:
    base: dict[str, Any] = {
        "order_type": "limit",
        "side": "buy",
        "order_qty": Decimal("0.5"),
        "symbol": "BTC/USD",
        "limit_price": Decimal("60000.0"),
    }
    base.update(fields)
    return AddOrder(**base)


def subscribe_executions(proto: KrakenProtocol, now: float = 0.0) -> int:
    call, actions = proto.subscribe("executions", None, now)
    (request,) = sent(actions)
    assert request["req_id"] == call  # sent at once: the call's req_id
    assert request["params"] == {"channel": "executions", "token": TOKEN}
    proto.receive_data(ack("executions", None, request["req_id"]), now)
    return int(request["req_id"])


def l3_snapshot(data_dir: Path) -> tuple[str, int]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (vector,) = [v for v in vectors if v["id"] == "l3_v2_doc_guide_btcusd"]
    entry = {"symbol": "BTC/USD", "checksum": vector["expected"], **vector["input"]}
    for side in ("bids", "asks"):
        entry[side] = [
            {**o, "limit_price": float(o["limit_price"]), "order_qty": float(o["order_qty"])}
            for o in entry[side]
        ]
    text = json.dumps({"channel": "level3", "type": "snapshot", "data": [entry]})
    return text, int(vector["expected"])


def level3_proto(data_dir: Path, **config: Any) -> tuple[KrakenProtocol, str, int]:
    # The snapshot goes through floats, which drop the padding: precision restores it.
    config.setdefault("precisions", {"BTC/USD": Precision(price=1, qty=8)})
    proto = authenticated(private_cfg(**config), level3=True)
    (request,) = sent(proto.subscribe("level3", ["BTC/USD"], 0.0)[1])
    proto.receive_data(ack("level3", "BTC/USD", request["req_id"], depth=10), 0.0)
    snapshot, checksum = l3_snapshot(data_dir)
    proto.receive_data(snapshot, 0.1)
    return proto, snapshot, checksum


def l3_update(checksum: int, *bids: dict[str, Any]) -> str:
    entry = {"symbol": "BTC/USD", "checksum": checksum, "bids": list(bids), "asks": []}
    return json.dumps({"channel": "level3", "type": "update", "data": [entry]})


def l3_sides(snapshot: str) -> tuple[tuple[L3Order, ...], tuple[L3Order, ...]]:
    entry = json.loads(snapshot)["data"][0]
    frame = msgspec.json.decode(json.dumps(entry), type=L3Update)
    return frame.bids, frame.asks
