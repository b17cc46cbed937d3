"""The fake exchange's authenticated side: tokens, hosts, trading, executions and balances."""

from __future__ import annotations

import itertools
import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from kraken_proto.actions import Send
from kraken_proto.auth import TOKEN_PATH, sign
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    SIM_API_KEY,
    SIM_API_SECRET,
    ExchangeConnection,
    FakeExchange,
    LoseResponse,
    RevokeTokens,
    SequenceGap,
    TokenError,
)
from kraken_proto.simulator.account import DEFAULT_BALANCES
from kraken_proto.simulator.auth import TokenIssuer
from kraken_proto.simulator.exchange import (
    INVALID_SESSION,
    INVALID_TOKEN,
    LEVEL3_ON_OTHER_HOST,
    PRIVATE_ON_PUBLIC_HOST,
    PUBLIC_ON_AUTH_HOST,
)
from kraken_proto.simulator.matching import MAKER_FEE, TAKER_FEE, kraken_id

BTC_ONLY = {"BTC/USD": DEFAULT_SYMBOLS["BTC/USD"]}
TWO = {s: DEFAULT_SYMBOLS[s] for s in ("BTC/USD", "ETH/USD")}
ORDER_ID = re.compile(r"^O[A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{6}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NONCES = itertools.count(1_000_000)
RESPONSE_KEYS = ["method", "req_id", "result", "success", "time_in", "time_out"]
ERROR_KEYS = ["error", "method", "req_id", "success", "time_in", "time_out"]

CENT = Decimal("0.0001")  # USD ledger and fee precision (4 decimals)


def load(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def token_request(
    ex: FakeExchange,
    nonce: int,
    *,
    key: str = SIM_API_KEY,
    secret: str = SIM_API_SECRET,
    body: str | None = None,
    now: float = 0.0,
) -> tuple[int, Any]:
    body = f"nonce={nonce}" if body is None else body
    headers = {"API-Key": key, "API-Sign": sign(TOKEN_PATH, body, nonce, secret)}
    status, answer = ex.handle_token_request(TOKEN_PATH, headers, body.encode(), now)
    return status, json.loads(answer)


class Session:
    """One connection to one host, driven by hand; ``frames`` decodes what it answered."""

    def __init__(self, ex: FakeExchange, host: str = "auth", now: float = 0.0) -> None:
        self.ex = ex
        self.now = now
        self.conn: ExchangeConnection = ex.open_connection(now, host)
        self.status = self._decode(self.conn.connection_made(now))

    @staticmethod
    def _decode(actions: list[Any]) -> list[Any]:
        out = []
        for action in actions:
            assert isinstance(action, Send), action
            out.append(load(action.text))
        return out

    def token(self) -> str:
        status, answer = token_request(self.ex, next(NONCES), now=self.now)
        assert status == 200, answer
        return str(answer["result"]["token"])

    def send(self, method: str, req_id: int | None = None, **params: Any) -> list[Any]:
        message: dict[str, Any] = {"method": method}
        if params:
            message["params"] = params
        if req_id is not None:
            message["req_id"] = req_id
        frames = self._decode(self.conn.receive_data(json.dumps(message, default=str), self.now))
        return [f for f in frames if f.get("channel") != "heartbeat"]

    def at(self, now: float) -> list[Any]:
        """Run every timer up to ``now``; the frames sent."""
        out: list[Any] = []
        while True:
            deadline = self.conn.next_deadline()
            if deadline is None or deadline > now:
                break
            self.now = max(self.now, deadline)
            out += self._decode(self.conn.handle_timer(self.now))
        self.now = now
        return [f for f in out if f.get("channel") != "heartbeat"]


def channel(frames: list[Any], name: str) -> list[Any]:
    return [f for f in frames if f.get("channel") == name]


def responses(frames: list[Any]) -> list[Any]:
    return [f for f in frames if "method" in f]


def reports(frames: list[Any]) -> list[Any]:
    return [entry for f in channel(frames, "executions") for entry in f["data"]]


def authed(ex: FakeExchange | None = None, **subs: bool) -> tuple[Session, str]:
    """An auth session subscribed to executions and balances."""
    session = Session(ex or FakeExchange(seed=3, symbols=TWO))
    token = session.token()
    session.send("subscribe", channel="executions", token=token, **subs)
    session.send("subscribe", channel="balances", token=token)
    return session, token


# --------------------------------------------------------------------------- tokens


def test_token_flow_with_the_exact_json_shapes() -> None:
    ex = FakeExchange(seed=5)
    status, answer = token_request(ex, 1695828436000)
    assert status == 200
    assert list(answer) == ["error", "result"]
    assert answer["error"] == []
    assert answer["result"]["expires"] == 900
    token = answer["result"]["token"]
    assert re.fullmatch(r"[A-Za-z0-9]{43}", token)
    # JSON bodies are signed over the JSON text.
    body = json.dumps({"nonce": 1695828436001})
    status, again = token_request(ex, 1695828436001, body=body)
    assert again["result"]["token"] != token
    # Deterministic from the seed.
    assert token_request(FakeExchange(seed=5), 7)[1]["result"]["token"] == token
    assert token_request(FakeExchange(seed=6), 7)[1]["result"]["token"] != token
    assert ex.tokens.issued == 2
    assert "***" in repr(ex.tokens) and SIM_API_SECRET not in repr(ex.tokens)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": "someone-else"}, "EAPI:Invalid key"),
        ({"secret": "a2V5"}, "EAPI:Invalid signature"),
        ({"body": "other=1"}, "EAPI:Invalid nonce"),
        ({"body": "nonce=abc"}, "EAPI:Invalid nonce"),
        ({"body": '{"nonce": 0}'}, "EAPI:Invalid nonce"),
        ({"body": "{not json"}, "EAPI:Invalid nonce"),
        ({"body": "[1]"}, "EAPI:Invalid nonce"),
    ],
)
def test_token_request_errors(kwargs: dict[str, Any], error: str) -> None:
    status, answer = token_request(FakeExchange(), 12, **kwargs)
    assert (status, answer) == (200, {"error": [error]})


def test_token_request_edge_cases() -> None:
    ex = FakeExchange()
    # Nonces must strictly increase per key.
    assert token_request(ex, 10)[1]["error"] == []
    assert token_request(ex, 10)[1] == {"error": ["EAPI:Invalid nonce"]}
    assert token_request(ex, 9)[1] == {"error": ["EAPI:Invalid nonce"]}
    assert token_request(ex, 11)[1]["error"] == []
    # Headers are case-insensitive; a missing signature or a non-UTF-8 body fails.
    headers = {"api-key": SIM_API_KEY, "api-sign": sign(TOKEN_PATH, "nonce=12", 12, SIM_API_SECRET)}
    assert ex.handle_token_request(TOKEN_PATH, headers, b"nonce=12", 0.0)[0] == 200
    status, answer = ex.handle_token_request(TOKEN_PATH, {"API-Key": SIM_API_KEY}, b"nonce=13", 0)
    assert json.loads(answer) == {"error": ["EAPI:Invalid signature"]}
    headers = {"API-Key": SIM_API_KEY, "API-Sign": "é"}
    assert json.loads(ex.handle_token_request(TOKEN_PATH, headers, b"nonce=14", 0)[1]) == {
        "error": ["EAPI:Invalid signature"]
    }
    assert json.loads(ex.handle_token_request(TOKEN_PATH, headers, b"\xff", 0)[1]) == {
        "error": ["EAPI:Invalid nonce"]
    }
    assert json.loads(ex.handle_token_request(TOKEN_PATH, headers, b"nonce=-1", 0)[1]) == {
        "error": ["EAPI:Invalid nonce"]
    }
    # Only the token path is served.
    status, answer = ex.handle_token_request("/0/private/Balance", headers, b"", 0.0)
    assert (status, json.loads(answer)) == (404, {"error": ["EGeneral:Unknown method"]})
    with pytest.raises(ValueError):
        TokenIssuer(seed=0, api_key="k", api_secret="not base64!")


def test_token_error_fault_fails_the_next_requests() -> None:
    ex = FakeExchange()
    ex.inject_token_error("EAPI:Invalid key", count=2)
    assert token_request(ex, 1)[1] == {"error": ["EAPI:Invalid key"]}
    assert token_request(ex, 2)[1] == {"error": ["EAPI:Invalid key"]}
    assert token_request(ex, 3)[1]["error"] == []
    # As a fault through a connection; applying it twice does not add up.
    session = Session(ex)
    session.conn.inject(TokenError("EGeneral:Temporary lockout"), 0.0)
    session.conn.inject(TokenError("EGeneral:Temporary lockout"), 0.0)
    assert token_request(ex, 4)[1] == {"error": ["EGeneral:Temporary lockout"]}
    assert token_request(ex, 5)[1]["error"] == []
    with pytest.raises(ValueError, match="count"):
        TokenError(count=0)
    with pytest.raises(ValueError, match="count"):
        ex.inject_token_error(count=0)


def test_tokens_expire_after_900_s_unless_a_subscription_used_them() -> None:
    ex = FakeExchange(seed=1, symbols=BTC_ONLY, idle_timeout=None)
    first = Session(ex)
    token = first.token()
    first.now = 899.0
    [ack, _] = first.send("subscribe", 1, channel="executions", token=token)
    assert ack["success"] is True
    # Used by a subscription: valid on that connection after 900 s.
    first.now = 1000.0
    [response] = first.send("cancel_all", 2, token=token)
    assert response["result"] == {"count": 0}
    # ... but not on another connection.
    second = Session(ex, now=1000.0)
    [error] = second.send("subscribe", 3, channel="balances", token=token)
    assert error["error"] == INVALID_SESSION
    [error] = second.send("cancel_all", 4, token=token)
    assert error["error"] == INVALID_TOKEN
    # An unused token expires.
    stale = second.token()
    second.now = 1900.0
    [error] = second.send("subscribe", 5, channel="balances", token=stale)
    assert error["error"] == INVALID_SESSION


def test_revoke_tokens_invalidates_every_token() -> None:
    session, token = authed()
    session.conn.inject(RevokeTokens(), session.now)
    [error] = session.send("cancel_all", 1, token=token)
    assert error["error"] == INVALID_TOKEN
    [error] = session.send("unsubscribe", 2, channel="balances", token=token)
    assert error["error"] == INVALID_SESSION
    fresh = session.token()
    [ok] = session.send("cancel_all", 3, token=fresh)
    assert ok["success"] is True
    session.ex.revoke_tokens()
    assert session.send("cancel_all", 4, token=fresh)[0]["error"] == INVALID_TOKEN


def test_invalid_session_frame_is_exact() -> None:
    session = Session(FakeExchange(seed=2))
    [frame] = session.send("subscribe", 7, channel="executions", token="nope")
    assert list(frame) == [
        "channel",
        "error",
        "method",
        "req_id",
        "status",
        "success",
        "time_in",
        "time_out",
    ]
    assert frame["channel"] == "executions"
    assert frame["error"] == "ESession:Invalid session"
    assert (frame["method"], frame["status"], frame["success"]) == ("subscribe", "error", False)
    assert STAMP.match(frame["time_in"]) and STAMP.match(frame["time_out"])
    [frame] = session.send("subscribe", channel="balances")  # no token, no req_id
    assert "req_id" not in frame and frame["channel"] == "balances"
    # A trading request with a bad token: EAPI:Invalid token, the socket stays open.
    [frame] = session.send("add_order", 8, token="nope", order_type="market")
    assert list(frame) == ERROR_KEYS
    assert frame["error"] == "EAPI:Invalid token"
    assert session.send("cancel_all", 9)[0]["error"] == INVALID_TOKEN
    [frame] = session.conn.receive_data('{"method":"cancel_all","params":[]}', 0.0)  # type: ignore[misc]
    assert load(frame.text)["error"] == INVALID_TOKEN  # type: ignore[union-attr]
    assert not session.conn.closed


# --------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    ("host", "request_", "error"),
    [
        ("public", {"channel": "executions"}, PRIVATE_ON_PUBLIC_HOST),
        ("public", {"channel": "level3", "symbol": ["BTC/USD"]}, PRIVATE_ON_PUBLIC_HOST),
        ("auth", {"channel": "book", "symbol": ["BTC/USD"]}, PUBLIC_ON_AUTH_HOST),
        ("auth", {"channel": "instrument"}, PUBLIC_ON_AUTH_HOST),
        ("auth", {"channel": "level3", "symbol": ["BTC/USD"]}, LEVEL3_ON_OTHER_HOST),
        ("level3", {"channel": "ticker", "symbol": ["BTC/USD"]}, PUBLIC_ON_AUTH_HOST),
        ("level3", {"channel": "balances"}, PRIVATE_ON_PUBLIC_HOST),
        ("auth", {"channel": "status"}, "Symbol(s) not found"),
        ("level3", {"channel": "nope"}, "Subscription name invalid"),
    ],
)
def test_host_separation(host: str, request_: dict[str, Any], error: str) -> None:
    session = Session(FakeExchange(seed=1, symbols=BTC_ONLY), host)
    assert session.status[0]["channel"] == "status"
    [frame] = session.send("subscribe", 3, **request_)
    assert frame["error"] == error
    assert frame["success"] is False and frame["req_id"] == 3
    assert not session.conn.closed


def test_trading_only_on_the_auth_host() -> None:
    ex = FakeExchange(seed=1, symbols=BTC_ONLY)
    for host in ("public", "level3"):
        [frame] = Session(ex, host).send("add_order", 1, order_type="market")
        assert frame["error"] == PRIVATE_ON_PUBLIC_HOST
    with pytest.raises(ValueError, match="host"):
        ex.open_connection(0.0, "beta")


def test_heartbeats_on_the_auth_host_after_a_subscription() -> None:
    session, _ = authed()
    frames = session._decode(session.conn.handle_timer(1.0))
    assert {"channel": "heartbeat"} in frames


# --------------------------------------------------------------------------- subscriptions


def test_executions_and_balances_acks_and_snapshots() -> None:
    ex = FakeExchange(seed=3, symbols=TWO, balances={"USD": Decimal("500.5")})
    session = Session(ex)
    token = session.token()
    ack, snap = session.send("subscribe", 1, channel="executions", token=token)
    assert list(ack) == RESPONSE_KEYS
    assert ack["result"] == {
        "channel": "executions",
        "maxratecount": 125,
        "snap_orders": True,
        "snap_trades": False,
        "snapshot": True,
        "warnings": ["cancel_reason is deprecated, use reason"],
    }
    assert snap == {"channel": "executions", "type": "snapshot", "data": [], "sequence": 1}
    ack, snap = session.send("subscribe", 2, channel="balances", token=token)
    assert ack["result"] == {"channel": "balances", "snapshot": True}
    assert snap["sequence"] == 1 and snap["type"] == "snapshot"
    assert snap["data"][0] == {
        "asset": "USD",
        "asset_class": "currency",
        "balance": Decimal("500.5"),
        "wallets": [{"type": "spot", "id": "main", "balance": Decimal("500.5")}],
    }
    assert [row["asset"] for row in snap["data"]] == ["USD", "BTC", "ETH"]
    assert snap["data"][1]["balance"] == 0
    # Duplicates, unknown unsubscribes, bad options.
    [dup] = session.send("subscribe", 3, channel="balances", token=token)
    assert dup["error"] == "Already subscribed" and "symbol" not in dup
    [bad] = session.send("subscribe", 4, channel="executions", token=token, snap_orders=1)
    assert bad["error"] == "Already subscribed"
    [ok] = session.send("unsubscribe", 5, channel="executions", token=token)
    assert ok["result"] == {"channel": "executions"} and ok["method"] == "unsubscribe"
    [missing] = session.send("unsubscribe", 6, channel="executions", token=token)
    assert missing["error"] == "Subscription Not Found" and missing["method"] == "subscribe"
    [bad] = session.send("subscribe", 7, channel="executions", token=token, snap_orders=1)
    assert bad["error"] == "EGeneral:Invalid arguments"
    # snapshot=false: no balances snapshot; updates start at 1.
    other = Session(ex)
    token = other.token()
    [ack] = other.send("subscribe", 8, channel="balances", token=token, snapshot=False)
    assert ack["result"] == {"channel": "balances", "snapshot": False}
    other.send("subscribe", 9, channel="executions", token=token)
    frames = other.send("add_order", 10, token=token, **market("buy", "0.001"))
    assert [f["sequence"] for f in channel(frames, "balances")][:2] == [1, 2]


def market(side: str, qty: str, symbol: str = "BTC/USD") -> dict[str, Any]:
    return {"order_type": "market", "side": side, "order_qty": Decimal(qty), "symbol": symbol}


def limit(side: str, qty: str, price: Decimal | str, symbol: str = "BTC/USD") -> dict[str, Any]:
    return {
        "order_type": "limit",
        "side": side,
        "order_qty": Decimal(qty),
        "limit_price": Decimal(price),
        "symbol": symbol,
    }


def best(ex: FakeExchange, symbol: str = "BTC/USD") -> tuple[Decimal, Decimal]:
    bid, ask = ex.markets[symbol].best()
    return bid.price, ask.price


# --------------------------------------------------------------------------- matching


def test_market_order_walks_levels_with_partial_fills_and_balances_add_up() -> None:
    session, token = authed()
    ex = session.ex
    _, asks = ex.markets["BTC/USD"].book(10)
    half = (asks[2].qty / 2).quantize(Decimal("0.00000001"))
    qty = asks[0].qty + asks[1].qty + half
    frames = session.send("add_order", 11, token=token, **market("buy", str(qty)))
    response = frames[0]
    assert list(response) == RESPONSE_KEYS
    assert response["method"] == "add_order" and response["req_id"] == 11
    order_id = response["result"]["order_id"]
    assert response["result"] == {"order_id": order_id}
    assert ORDER_ID.match(order_id)
    execs = reports(frames)
    assert [e["exec_type"] for e in execs] == [
        "pending_new",
        "new",
        "trade",
        "trade",
        "trade",
        "filled",
    ]
    assert execs[0]["order_status"] == "pending_new" and execs[0]["order_qty"] == qty
    trades = execs[2:5]
    assert [t["last_price"] for t in trades] == [a.price for a in asks[:3]]
    assert [t["last_qty"] for t in trades] == [asks[0].qty, asks[1].qty, half]
    assert all(t["liquidity_ind"] == "t" for t in trades)
    cum = Decimal(0)
    cost = Decimal(0)
    for trade in trades:
        cum += trade["last_qty"]
        cost += trade["last_qty"] * trade["last_price"]
        assert trade["cum_qty"] == cum and trade["cum_cost"] == cost
        assert trade["cost"] == trade["last_qty"] * trade["last_price"]
        # Fees are charged at USD's 4 decimals, rounded half up, as in Kraken's example.
        fee = (trade["cost"] * TAKER_FEE).quantize(CENT, rounding=ROUND_HALF_UP)
        assert trade["fees"] == [{"asset": "USD", "qty": fee}]
    assert execs[-1]["order_status"] == "filled" and execs[-1]["cum_qty"] == qty
    # Sequences: +1 per message, after the snapshot's 1.
    assert [f["sequence"] for f in channel(frames, "executions")] == [2, 3, 4, 5, 6, 7]
    ledger = [e for f in channel(frames, "balances") for e in f["data"]]
    assert [f["sequence"] for f in channel(frames, "balances")] == list(range(2, 8))
    assert len(ledger) == 6
    balances = dict(DEFAULT_BALANCES)
    for trade, (base, quote) in zip(
        trades, zip(ledger[::2], ledger[1::2], strict=True), strict=True
    ):
        assert base["ref_id"] == quote["ref_id"] == trade["exec_id"]
        assert (base["asset"], quote["asset"]) == ("BTC", "USD")
        assert base["amount"] == trade["last_qty"] and base["fee"] == 0
        # The USD ledger keeps 4 decimals: the cost rounded half up.
        cost_usd = trade["cost"].quantize(CENT, rounding=ROUND_HALF_UP)
        assert quote["amount"] == -cost_usd and quote["fee"] == trade["fees"][0]["qty"]
        for entry in (base, quote):
            balances[entry["asset"]] += entry["amount"] - entry["fee"]
            assert entry["balance"] == balances[entry["asset"]]
            assert entry["type"] == "trade" and entry["wallet_type"] == "spot"
    assert ex.account.balances["BTC"] == Decimal(10) + qty
    assert ex.account.balances["USD"] == balances["USD"]
    # The public market is untouched; the taken liquidity looks thinner to the next order.
    assert ex.markets["BTC/USD"].book(10)[1][0] == asks[0]
    frames = session.send("add_order", 12, token=token, **market("buy", str(half / 2)))
    assert reports(frames)[2]["last_price"] == asks[2].price


def test_limit_order_rests_then_fills_when_the_market_crosses() -> None:
    session, token = authed()
    ex = session.ex
    _, ask = best(ex)
    price = ask - Decimal("0.1")
    frames = session.send(
        "add_order", 1, token=token, cl_ord_id="my-1", **limit("buy", "0.01", price)
    )
    assert frames[0]["result"] == {"cl_ord_id": "my-1", "order_id": frames[0]["result"]["order_id"]}
    assert [e["exec_type"] for e in reports(frames)] == ["pending_new", "new"]
    assert reports(frames)[1]["cl_ord_id"] == "my-1"
    order_id = frames[0]["result"]["order_id"]
    assert list(ex.engine.orders) == [order_id]
    # A second subscriber's snapshot lists the open order.
    other = Session(ex, now=session.now)
    _, snap = other.send("subscribe", channel="executions", token=other.token())
    assert [o["order_id"] for o in snap["data"]] == [order_id]
    assert snap["data"][0]["order_status"] == "new" and snap["data"][0]["limit_price"] == price
    seen: list[Any] = []
    end = 0.0
    while not any(e["exec_type"] == "filled" for e in seen) and end < 120:
        end += 1.0
        seen += reports(session.at(end))
    assert seen[-1]["exec_type"] == "filled", "the market never crossed the order"
    trades = [e for e in seen if e["exec_type"] == "trade"]
    assert trades and all(t["liquidity_ind"] == "m" for t in trades)
    assert all(t["last_price"] == price and t["order_id"] == order_id for t in trades)
    for trade in trades:
        fee = (trade["cost"] * MAKER_FEE).quantize(CENT, rounding=ROUND_HALF_UP)
        assert trade["fees"][0]["qty"] == fee
    assert sum(t["last_qty"] for t in trades) == Decimal("0.01")
    assert order_id not in ex.engine.orders


def test_post_only_that_would_take_is_cancelled() -> None:
    session, token = authed()
    _, ask = best(session.ex)
    frames = session.send("add_order", 1, token=token, post_only=True, **limit("buy", "0.01", ask))
    assert frames[0]["success"] is True
    execs = reports(frames)
    assert [e["exec_type"] for e in execs] == ["pending_new", "canceled"]
    assert execs[1]["reason"] == "Post only order" and execs[1]["order_status"] == "canceled"
    bid, _ = best(session.ex)
    frames = session.send("add_order", 2, token=token, post_only=True, **limit("buy", "0.01", bid))
    assert [e["exec_type"] for e in reports(frames)] == ["pending_new", "new"]


def test_ioc_limit_cancels_the_rest_and_validate_places_nothing() -> None:
    session, token = authed()
    ex = session.ex
    _, asks = ex.markets["BTC/USD"].book(10)
    qty = asks[0].qty + Decimal("0.5")
    frames = session.send(
        "add_order", 1, token=token, time_in_force="ioc", **limit("buy", str(qty), asks[0].price)
    )
    execs = reports(frames)
    assert [e["exec_type"] for e in execs] == ["pending_new", "new", "trade", "canceled"]
    assert execs[-1]["cum_qty"] == asks[0].qty
    assert execs[0]["time_in_force"] == "IOC"
    assert not ex.engine.orders
    frames = session.send("add_order", 2, token=token, validate=True, **limit("buy", "1", "100.0"))
    assert frames == [frames[0]] and frames[0]["result"] == {"order_id": ""}
    assert not ex.engine.orders


def test_gtd_orders_expire() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    expire = "2026-08-01T00:00:03Z"
    frames = session.send(
        "add_order",
        1,
        token=token,
        time_in_force="gtd",
        expire_time=expire,
        **limit("buy", "0.01", bid - 100),
    )
    assert frames[0]["success"] is True
    expired = [e for e in reports(session.at(4.0)) if e["exec_type"] == "expired"]
    assert expired[0]["order_status"] == "expired"
    assert expired[0]["timestamp"] == "2026-08-01T00:00:03.000000Z"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"order_type": "stop-loss", "side": "buy", "order_qty": 1, "symbol": "BTC/USD"},
            "EGeneral:Invalid arguments",
        ),
        ({**market("buy", "1"), "leverage": 2}, "Unsupported field: 'leverage'"),
        ({**market("buy", "1"), "triggers": {}}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "margin": True}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "post_only": True}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "symbol": "XBT/USD"}, "EQuery:Unknown asset pair"),
        ({**market("buy", "1"), "symbol": 5}, "EGeneral:Invalid arguments"),
        (
            {"order_type": "market", "side": "buy", "symbol": "BTC/USD"},
            "EGeneral:Invalid arguments",
        ),
        (market("buy", "0.000000001"), "EGeneral:Invalid arguments"),
        (market("buy", "-1"), "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "order_qty": True}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "order_qty": "x"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "order_qty": "NaN"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "order_qty": [1]}, "EGeneral:Invalid arguments"),
        (market("buy", "0.000001"), "EOrder:Order minimum not met"),
        (market("buy", "1000"), "EOrder:Insufficient funds"),
        (market("sell", "11"), "EOrder:Insufficient funds"),
        (limit("buy", "100", "63000.0"), "EOrder:Insufficient funds"),
        ({**limit("buy", "1", "1.0"), "limit_price": 0}, "EOrder:Invalid price"),
        (limit("buy", "1", "1.05"), "EOrder:Tick size check failed"),
        (limit("buy", "0.0001", "1000.0"), "EOrder:Cost minimum not met"),
        ({**market("buy", "1"), "order_type": "limit"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "time_in_force": "fok"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "time_in_force": ["gtc"]}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "time_in_force": "gtd"}, "EGeneral:Invalid arguments"),
        (
            {**market("buy", "1"), "time_in_force": "gtd", "expire_time": "soon"},
            "EGeneral:Invalid arguments",
        ),
        (
            {**market("buy", "1"), "time_in_force": "gtd", "expire_time": "2026-08-01T00:00:00"},
            "EGeneral:Invalid arguments",
        ),
        (
            {**market("buy", "1"), "time_in_force": "gtd", "expire_time": "2020-01-01T00:00:00Z"},
            "EGeneral:Invalid arguments",
        ),
        (
            {**market("buy", "1"), "cl_ord_id": "a", "order_userref": 1},
            "EGeneral:Invalid arguments",
        ),
        ({**market("buy", "1"), "cl_ord_id": "x" * 37}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "order_userref": "1"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "validate": "yes"}, "EGeneral:Invalid arguments"),
        ({**market("buy", "1"), "limit_price_type": "pct"}, "EGeneral:Invalid arguments"),
    ],
)
def test_add_order_errors(params: dict[str, Any], error: str) -> None:
    session, token = authed()
    [frame] = session.send("add_order", 42, token=token, **params)
    assert list(frame) == ERROR_KEYS
    assert (frame["error"], frame["method"], frame["req_id"]) == (error, "add_order", 42)
    assert not session.ex.engine.orders


def test_numbers_as_strings_and_order_userref() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    params = {**limit("buy", "0.01", bid - 50), "order_qty": "0.01", "order_userref": 7}
    frames = session.send("add_order", 1, token=token, **params)
    assert frames[0]["result"]["order_userref"] == 7
    assert reports(frames)[0]["order_qty"] == Decimal("0.01000000")
    assert reports(frames)[1]["order_userref"] == 7


# --------------------------------------------------------------------------- cancels


def place(session: Session, token: str, **extra: Any) -> str:
    bid, _ = best(session.ex)
    frames = session.send("add_order", 99, token=token, **limit("buy", "0.01", bid - 100), **extra)
    return str(frames[0]["result"]["order_id"])


def test_cancel_order_answers_once_per_cancelled_order() -> None:
    session, token = authed()
    a = place(session, token, order_userref=5)
    b = place(session, token, order_userref=5)
    c = place(session, token, cl_ord_id="c-1")
    d = place(session, token)
    frames = session.send(
        "cancel_order",
        3,
        token=token,
        order_id=[d, "OUNKNO-WNXXX-XXXXXX"],
        cl_ord_id=["c-1"],
        order_userref=[5],
    )
    answers = responses(frames)
    assert [a_["req_id"] for a_ in answers] == [3] * 5
    assert [a_.get("result") for a_ in answers] == [
        {"order_id": d},
        None,
        {"cl_ord_id": "c-1"},
        {"order_id": a},
        {"order_id": b},
    ]
    assert answers[1]["error"] == "EOrder:Invalid order" and list(answers[1]) == ERROR_KEYS
    cancels = [e for e in reports(frames) if e["exec_type"] == "canceled"]
    assert [e["order_id"] for e in cancels] == [d, c, a, b]
    assert all(e["reason"] == "User requested" for e in cancels)
    assert not session.ex.engine.orders
    for params in ({}, {"order_id": "x"}, {"order_id": [1]}, {"order_userref": ["1"]}):
        assert session.send("cancel_order", 4, token=token, **params)[0]["error"] == (
            "EGeneral:Invalid arguments"
        )


def test_cancel_all_and_batch_cancel() -> None:
    session, token = authed()
    for _ in range(3):
        place(session, token)
    [response, *rest] = session.send("cancel_all", 1, token=token)
    assert response["result"] == {"count": 3}
    assert len(reports(rest)) == 3
    assert session.send("cancel_all", 2, token=token, foo=1)[0]["error"] == (
        "Unsupported field: 'foo'"
    )
    a = place(session, token, order_userref=9)
    b = place(session, token, cl_ord_id="b")
    c = place(session, token)
    frames = session.send("batch_cancel", 3, token=token, orders=["9", c], cl_ord_id=["b"])
    assert frames[0]["result"] == {"count": 3}
    assert {e["order_id"] for e in reports(frames)} == {a, b, c}
    assert session.send("batch_cancel", 4, token=token, orders=["x"])[0]["error"] == (
        "EGeneral:Invalid arguments"
    )
    assert session.send("batch_cancel", 5, token=token, orders=["x", "y"])[0]["result"] == {
        "count": 0
    }


def test_dead_mans_switch_fires_at_its_time() -> None:
    session, token = authed()
    ids = [place(session, token), place(session, token)]
    [response] = session.send("cancel_all_orders_after", 1, token=token, timeout=10)
    assert response["result"] == {
        "currentTime": "2026-08-01T00:00:00Z",
        "triggerTime": "2026-08-01T00:00:10Z",
    }
    assert session.conn.next_deadline() is not None
    assert not reports(session.at(9.9))
    frames = session.at(10.5)
    cancels = [e for e in reports(frames) if e["exec_type"] == "canceled"]
    assert [e["order_id"] for e in cancels] == ids
    assert all(e["reason"] == "CancelAllOrdersAfter Timeout" for e in cancels)
    assert all(e["timestamp"] == "2026-08-01T00:00:10.000000Z" for e in cancels)
    assert session.ex.engine.dead_man_at is None
    # Re-armed then disarmed: nothing fires.
    place(session, token)
    session.send("cancel_all_orders_after", 2, token=token, timeout=5)
    [off] = session.send("cancel_all_orders_after", 3, token=token, timeout=0)
    assert off["result"]["triggerTime"] == "0"
    assert not reports(session.at(30.0))
    for bad in (-1, 86400, "60", True):
        assert (
            session.send("cancel_all_orders_after", 4, token=token, timeout=bad)[0]["error"]
            == "EGeneral:Invalid arguments"
        )


# --------------------------------------------------------------------------- amend / edit


def test_amend_order_in_place() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    order_id = place(session, token, cl_ord_id="am")
    frames = session.send(
        "amend_order",
        1,
        token=token,
        cl_ord_id="am",
        order_qty=Decimal("0.02"),
        limit_price=bid - 200,
    )
    result = frames[0]["result"]
    assert list(result) == ["amend_id", "cl_ord_id"] and result["cl_ord_id"] == "am"
    assert re.match(r"^T[A-Z2-7]{5}-", result["amend_id"])
    [amended] = reports(frames)
    assert amended["exec_type"] == "amended" and amended["order_id"] == order_id
    assert amended["order_qty"] == Decimal("0.02") and amended["limit_price"] == bid - 200
    order = session.ex.engine.orders[order_id]
    assert order.order_qty == Decimal("0.02") and order.limit_price == bid - 200
    frames = session.send("amend_order", 2, token=token, order_id=order_id, order_qty=1)
    assert frames[0]["result"]["order_id"] == order_id
    # A price that crosses takes liquidity at once.
    _, ask = best(session.ex)
    frames = session.send(
        "amend_order",
        3,
        token=token,
        order_id=order_id,
        order_qty=Decimal("0.001"),
        limit_price=ask,
    )
    assert [e["exec_type"] for e in reports(frames)] == ["amended", "trade", "filled"]
    # post_only amend that would take is rejected; errors.
    other = place(session, token)
    _, ask = best(session.ex)
    assert (
        session.send(
            "amend_order",
            4,
            token=token,
            order_id=other,
            order_qty=1,
            limit_price=ask,
            post_only=True,
        )[0]["error"]
        == "EOrder:Post only order"
    )
    for params, error in (
        ({"order_id": "OXXXXX-XXXXX-XXXXXX", "order_qty": 1}, "EOrder:Invalid order"),
        ({"order_qty": 1}, "EGeneral:Invalid arguments"),
        ({"order_id": other, "cl_ord_id": "x", "order_qty": 1}, "EGeneral:Invalid arguments"),
        ({"order_id": 5, "order_qty": 1}, "EGeneral:Invalid arguments"),
        ({"order_id": other}, "EGeneral:Invalid arguments"),
        ({"order_id": other, "order_qty": 1, "display_qty": 1}, "EGeneral:Invalid arguments"),
        ({"order_id": other, "order_qty": 1000}, "EOrder:Insufficient funds"),
        ({"order_id": other, "order_qty": 1, "bogus": 1}, "Unsupported field: 'bogus'"),
    ):
        assert session.send("amend_order", 5, token=token, **params)[0]["error"] == error
    assert (
        session.send(
            "amend_order",
            6,
            token=token,
            order_id=other,
            order_qty=1,
            post_only=True,
            limit_price=bid - 300,
        )[0]["success"]
        is True
    )


def test_amend_below_the_filled_quantity_cancels_the_rest() -> None:
    session, token = authed()
    ex = session.ex
    _, asks = ex.markets["BTC/USD"].book(10)
    qty = asks[0].qty + Decimal("0.01")
    frames = session.send("add_order", 1, token=token, **limit("buy", str(qty), asks[0].price))
    order_id = frames[0]["result"]["order_id"]
    assert ex.engine.orders[order_id].cum_qty == asks[0].qty
    frames = session.send("amend_order", 2, token=token, order_id=order_id, order_qty=asks[0].qty)
    assert [e["exec_type"] for e in reports(frames)] == ["amended", "canceled"]
    assert order_id not in ex.engine.orders


def test_market_orders_cannot_be_amended_with_a_price() -> None:
    session, token = authed()
    ex = session.ex
    bid, _ = best(ex)
    order_id = place(session, token)
    ex.engine.orders[order_id].order_type = "market"  # a resting market order (not possible live)
    assert (
        session.send(
            "amend_order", 1, token=token, order_id=order_id, order_qty=1, limit_price=bid
        )[0]["error"]
        == "EGeneral:Invalid arguments"
    )
    assert (
        session.send(
            "edit_order", 2, token=token, order_id=order_id, symbol="BTC/USD", limit_price=bid
        )[0]["error"]
        == "EGeneral:Invalid arguments"
    )


def test_edit_order_replaces_the_order() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    old = place(session, token, order_userref=3)
    frames = session.send(
        "edit_order",
        1,
        token=token,
        order_id=old,
        symbol="BTC/USD",
        order_qty=Decimal("0.02"),
        limit_price=bid - 150,
    )
    result = frames[0]["result"]
    assert list(result) == ["order_id", "original_order_id"] and result["original_order_id"] == old
    new = result["order_id"]
    assert new != old and ORDER_ID.match(new)
    execs = reports(frames)
    assert [(e["exec_type"], e["order_id"]) for e in execs] == [
        ("canceled", old),
        ("pending_new", new),
        ("new", new),
    ]
    assert execs[0]["reason"] == "Order replaced" and execs[1]["order_userref"] == 3
    frames = session.send(
        "edit_order", 2, token=token, order_id=new, symbol="BTC/USD", validate=True, order_userref=4
    )
    assert frames[0]["result"] == {"order_id": "", "original_order_id": new}
    for params, error in (
        ({"order_id": new, "symbol": "ETH/USD"}, "EGeneral:Invalid arguments"),
        ({"order_id": new, "symbol": "BTC/USD", "cl_ord_id": "x"}, "EGeneral:Invalid arguments"),
        ({"symbol": "BTC/USD"}, "EGeneral:Invalid arguments"),
        ({"order_id": "OXXXXX-XXXXX-XXXXXX", "symbol": "BTC/USD"}, "EOrder:Invalid order"),
        (
            {"order_id": new, "symbol": "BTC/USD", "order_userref": "1"},
            "EGeneral:Invalid arguments",
        ),
        ({"order_id": new, "symbol": "BTC/USD", "order_qty": 1000}, "EOrder:Insufficient funds"),
        ({"order_id": new, "symbol": "BTC/USD", "reduce_only": 1}, "EGeneral:Invalid arguments"),
    ):
        assert session.send("edit_order", 3, token=token, **params)[0]["error"] == error
    # A new quantity at or below the filled one is rejected.
    _, asks = session.ex.markets["BTC/USD"].book(10)
    frames = session.send(
        "add_order", 4, token=token, **limit("buy", str(asks[0].qty + 1), asks[0].price)
    )
    filled = frames[0]["result"]["order_id"]
    assert (
        session.send(
            "edit_order",
            5,
            token=token,
            order_id=filled,
            symbol="BTC/USD",
            order_qty=asks[0].qty,
            post_only=True,
        )[0]["error"]
        == "EGeneral:Invalid arguments"
    )


def test_batch_add() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    orders = [
        {
            "order_type": "limit",
            "side": "buy",
            "order_qty": Decimal("0.01"),
            "limit_price": bid - 100,
            "order_userref": 1,
        },
        {
            "order_type": "limit",
            "side": "buy",
            "order_qty": Decimal("5000"),
            "limit_price": bid - 100,
            "order_userref": 2,
        },
        {
            "order_type": "limit",
            "side": "sell",
            "order_qty": Decimal("0.01"),
            "limit_price": bid + 500,
            "cl_ord_id": "s",
        },
    ]
    frames = session.send("batch_add", 1, token=token, symbol="BTC/USD", orders=orders)
    result = frames[0]["result"]
    assert isinstance(result, list) and len(result) == 3
    assert result[0]["order_userref"] == 1 and ORDER_ID.match(result[0]["order_id"])
    assert result[1] == {"error": "EOrder:Insufficient funds", "order_userref": 2}
    assert result[2]["cl_ord_id"] == "s"
    assert len(session.ex.engine.orders) == 2
    frames = session.send(
        "batch_add", 2, token=token, symbol="BTC/USD", orders=orders[:1] * 2, validate=True
    )
    assert [r["order_id"] for r in frames[0]["result"]] == ["", ""]
    for params in (
        {"orders": orders[:1]},
        {"orders": orders[:1] * 16},
        {"orders": [*orders[:1], {**orders[0], "symbol": "BTC/USD"}]},
        {"orders": [*orders[:1], {**orders[0], "side": "up"}]},
        {"orders": [*orders[:1], 5]},
    ):
        [frame] = session.send("batch_add", 3, token=token, symbol="BTC/USD", **params)
        assert frame["error"] == "EGeneral:Invalid arguments"
    assert len(session.ex.engine.orders) == 2


# --------------------------------------------------------------------------- executions options


def test_order_status_false_sends_only_open_and_close_transitions() -> None:
    session, token = authed(order_status=False)
    frames = session.send("add_order", 1, token=token, **market("buy", "0.001"))
    execs = reports(frames)
    assert execs[0]["exec_type"] == "new"
    assert "pending_new" not in [e["exec_type"] for e in execs]
    assert execs[-1]["exec_type"] == "filled"
    sequences = [f["sequence"] for f in channel(frames, "executions")]
    assert sequences == list(range(2, 2 + len(sequences)))


def test_snap_trades_and_unsubscribed_channels_get_nothing() -> None:
    session, token = authed()
    session.send("add_order", 1, token=token, **market("buy", "0.001"))
    other = Session(session.ex, now=session.now)
    token2 = other.token()
    _, snap = other.send(
        "subscribe", channel="executions", token=token2, snap_trades=True, snap_orders=False
    )
    assert snap["data"] and all(e["exec_type"] == "trade" for e in snap["data"])
    session.send("unsubscribe", channel="balances", token=token)
    frames = session.send("add_order", 2, token=token, **market("buy", "0.001"))
    assert not channel(frames, "balances") and reports(frames)


# --------------------------------------------------------------------------- faults


def test_sequence_gap_skips_one_number() -> None:
    session, token = authed()
    session.conn.inject(SequenceGap("balances"), session.now)
    session.conn.inject(SequenceGap(), session.now)
    frames = session.send("add_order", 1, token=token, **market("buy", "0.001"))
    seqs = [f["sequence"] for f in channel(frames, "executions")]
    assert seqs[:3] == [3, 4, 5]
    assert [f["sequence"] for f in channel(frames, "balances")][:2] == [3, 4]
    with pytest.raises(ValueError, match="channel"):
        SequenceGap("book")


def test_lose_response_drops_the_response_but_not_the_effect() -> None:
    session, token = authed()
    session.conn.inject(LoseResponse("cancel_all"), session.now)
    frames = session.send("add_order", 1, token=token, **market("buy", "0.001"))
    assert responses(frames)[0]["method"] == "add_order"
    session.conn.inject(LoseResponse(), session.now)
    frames = session.send("add_order", 2, token=token, **market("buy", "0.001"))
    assert not responses(frames) and reports(frames)[-1]["exec_type"] == "filled"
    place(session, token)
    frames = session.send("cancel_all", 3, token=token)
    assert not responses(frames) and reports(frames)[0]["exec_type"] == "canceled"
    assert responses(session.send("cancel_all", 4, token=token))[0]["result"] == {"count": 0}


def test_kraken_ids_are_deterministic() -> None:
    assert kraken_id(random.Random(1), "O") == kraken_id(random.Random(1), "O")
    first, _ = authed(FakeExchange(seed=9, symbols=TWO))
    second, _ = authed(FakeExchange(seed=9, symbols=TWO))
    token1, token2 = first.token(), second.token()
    a = first.send("add_order", 1, token=token1, **market("buy", "0.001"))
    b = second.send("add_order", 1, token=token2, **market("buy", "0.001"))
    assert a == b


def test_messages_queued_for_later_are_dropped_by_an_unsubscribe() -> None:
    ex = FakeExchange(seed=3, symbols=TWO, idle_timeout=None)
    behind, token = authed(ex)
    ahead = Session(ex, now=5.0)
    token2 = ahead.token()
    ahead.send("add_order", 1, token=token2, **market("buy", "0.001"))
    # ``behind`` (at 0.0) holds the reports, due at 5.0; unsubscribing drops the executions.
    [ok] = behind.send("unsubscribe", 2, channel="executions", token=token)
    assert ok["success"] is True
    later = behind.at(6.0)
    assert not channel(later, "executions")
    assert len(channel(later, "balances")) >= 2


def test_a_timer_between_market_steps() -> None:
    session, token = authed()
    bid, _ = best(session.ex)
    frames = session.send(
        "add_order",
        1,
        token=token,
        time_in_force="gtd",
        expire_time="2026-08-01T00:00:03.33Z",
        **limit("buy", "0.01", bid - 100),
    )
    assert frames[0]["success"] is True
    expired = [e for e in reports(session.at(4.0)) if e["exec_type"] == "expired"]
    assert expired[0]["timestamp"] == "2026-08-01T00:00:03.330000Z"


def test_private_numbers_are_written_as_kraken_documents_them() -> None:
    # Kraken's examples: "cost":132.9995, "avg_price":26599.9, "fee_usd_equiv":0.3458,
    # "cum_cost":0.0, "balance":80595.4943 (USD at 4 decimals).
    ex = FakeExchange(seed=3, symbols=TWO, balances={"USD": Decimal(1_000_000)})
    session = Session(ex)
    token = session.token()
    raw = [a.text for a in session.conn.receive_data(subscribe_text("balances", token), 0.0)]  # type: ignore[union-attr]
    assert '"balance":1000000.0,' in raw[1] and '"balance":0.0,' in raw[1]
    session.send("subscribe", channel="executions", token=token)
    order = {"method": "add_order", "params": {"token": token, **market("buy", "0.0002")}}
    text = json.dumps(order, default=str)
    raw = [a.text for a in session.conn.receive_data(text, 0.0)]  # type: ignore[union-attr]
    trade = next(t for t in raw if '"exec_type":"trade"' in t)
    for name in ("cost", "avg_price", "fee_usd_equiv", "last_price", "cum_cost"):
        token_text = re.search(rf'"{name}":([0-9.e+-]+)', trade)
        assert token_text is not None
        assert re.fullmatch(r"\d+\.\d*[1-9]|\d+\.0", token_text.group(1)), (name, token_text)
    assert re.search(r'"last_qty":0\.0002[,}]', trade)
    ledger = [t for t in raw if '"channel":"balances"' in t]
    usd = next(load(t)["data"][0] for t in ledger if '"asset":"USD"' in t)
    assert usd["balance"] == usd["balance"].quantize(CENT)
    assert usd["fee"] == usd["fee"].quantize(CENT) > 0


def subscribe_text(channel_name: str, token: str) -> str:
    return json.dumps({"method": "subscribe", "params": {"channel": channel_name, "token": token}})
