"""kraken_transports.driver: the IO-free layer every driver shares, fed by hand (no sockets).

A fake IO records what the driver asks for; the protocol is fed the inputs a driver would
give it, so waits, their errors, the rule for calls on a client not started, failures and
token answers are checked here once for all three drivers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from frames import ack, error  # type: ignore[import-not-found]  # tests/frames.py

from kraken_proto import (
    ClientConfig,
    ConnectionState,
    KrakenConnectionError,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
    Subscribed,
    SubscriptionError,
    SubscriptionResult,
)
from kraken_proto.actions import CloseConnection, Emit, FetchToken, Send
from kraken_proto.errors import AuthenticationError, WaitTimeoutError
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_proto.trading import CancelAll, OrderOutcome, OrderResponse
from kraken_transports.base import IN_FLIGHT
from kraken_transports.driver import Driver, Waiter

URL = "wss://ws.kraken.com/v2"
S = ConnectionState


class FakeIO:
    """Records the driver's requests; ``up`` says whether a socket is open to send on."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.closed: list[CloseConnection] = []
        self.tokens: list[FetchToken] = []
        self.batches = 0
        self.up = False

    def open(self, url: str, now: float) -> None:
        self.opened.append(url)

    def send(self, text: str) -> bool:
        if self.up:
            self.sent.append(json.loads(text))
        return self.up

    def close(self, action: CloseConnection, now: float) -> None:
        self.up = False
        self.closed.append(action)

    def fetch_token(self, action: FetchToken) -> None:
        self.tokens.append(action)

    def performed(self) -> None:
        self.batches += 1


def make(**overrides: Any) -> tuple[Driver, FakeIO]:
    options: dict[str, Any] = {
        "reconnect": ReconnectConfig(initial_delay=0.1, jitter=0.0),
        "ping_interval": None,
    }
    private = overrides.pop("private", False)
    if private:
        options.update(api_key=SIM_API_KEY, api_secret=SIM_API_SECRET)
    options.update(overrides)
    driver = Driver(ClientConfig(**options), private=private)
    io = FakeIO()
    driver.io = io
    return driver, io


def up(driver: Driver, io: FakeIO, now: float = 0.0) -> None:
    """Connect and open the socket."""
    driver.connect(now)
    io.up = True
    driver.connected(now)


def answer_all(driver: Driver, io: FakeIO, now: float = 0.0) -> None:
    """Acknowledge every subscribe request sent so far."""
    for request in io.sent:
        params = request["params"]
        for symbol in params.get("symbol", [None]):
            driver.received(ack(params["channel"], symbol, request["req_id"]), now)


def test_subscribe_waits_for_its_result_and_returns_the_acks() -> None:
    driver, io = make()
    seen: list[object] = []
    driver.router.on(None, seen.append)
    up(driver, io)
    waiter = driver.call("subscribe", "ticker", ["BTC/USD", "ETH/USD"], {}, 0.0, wait=True)
    assert waiter is not None and not waiter.done
    assert waiter.what == "no answer to subscribe ticker BTC/USD, ETH/USD"
    answer_all(driver, io)
    assert waiter.done and driver.settled == 1
    acks = waiter.result()
    assert [(type(a), a.symbol) for a in acks] == [
        (Subscribed, "BTC/USD"),
        (Subscribed, "ETH/USD"),
    ]
    results = [e for e in seen if isinstance(e, SubscriptionResult)]
    assert len(results) == 1 and results[0].ok  # delivered to callbacks like every event
    assert driver.call("subscribe", "trade", "BTC/USD", {}, 0.0, wait=False) is None
    assert io.sent[-1]["params"] == {"channel": "trade", "symbol": ["BTC/USD"]}
    assert driver.router.stats().frames_out == 2 and driver.router.stats().frames_in == 2


def test_a_refusal_is_a_subscription_error_with_krakens_text() -> None:
    driver, io = make()
    up(driver, io)
    waiter = driver.call("subscribe", "ticker", ["BTC/USD", "XBT/USD"], {}, 0.0, wait=True)
    assert waiter is not None
    req_id = io.sent[-1]["req_id"]
    driver.received(ack("ticker", "BTC/USD", req_id), 0.0)
    driver.received(error("Currency pair not supported XBT/USD", req_id, "XBT/USD"), 0.0)
    with pytest.raises(SubscriptionError, match="Currency pair not supported") as info:
        waiter.result()
    assert (info.value.channel, info.value.symbol) == ("ticker", "XBT/USD")


def test_a_call_made_while_connecting_is_answered_on_the_connection() -> None:
    driver, io = make()
    driver.connect(0.0)
    waiter = driver.call("subscribe", "ticker", "BTC/USD", {}, 0.0, wait=True)
    assert waiter is not None and io.sent == []
    io.up = True
    driver.connected(0.1)
    answer_all(driver, io)
    assert [a.symbol for a in waiter.result()] == ["BTC/USD"]


def test_the_rule_for_calls_on_a_client_not_started() -> None:
    driver, io = make()
    with pytest.raises(LocalProtocolError, match="symbols must be a str"):
        driver.call("subscribe", "ticker", 123, {}, 0.0, wait=True)  # type: ignore[arg-type]
    for call in (
        lambda: driver.call("subscribe", "ticker", "BTC/USD", {}, 0.0, wait=True),
        lambda: driver.wait_state("subscribed"),
    ):
        with pytest.raises(LocalProtocolError, match="needs a started client: call start"):
            call()
    assert driver.proto.subscriptions.pending == ()  # nothing registered
    assert driver.call("subscribe", "ticker", "BTC/USD", {}, 0.0, wait=False) is None
    assert [i.symbol for i in driver.proto.subscriptions.pending] == ["BTC/USD"]
    assert driver.wait_state("disconnected") is None  # already there
    driver.close(0.0)
    with pytest.raises(KrakenConnectionError, match=r"refused: the client is closed \(closed"):
        driver.call("subscribe", "trade", "BTC/USD", {}, 0.0, wait=True)
    assert io.opened == []


def test_closing_settles_every_wait_with_the_cause() -> None:
    driver, _ = make(private=True)
    driver.connect(0.0)
    call = driver.call("subscribe", "executions", None, {}, 0.0, wait=True)
    state = driver.wait_state("subscribed")
    closing = driver.wait_state(S.CLOSED)
    order = driver.submit(CancelAll(), 0.0)
    assert call and state and closing and not order.done
    assert order.what == "cancel_all not sent: the connection did not become 'subscribed'"
    driver.close(1.0)
    assert closing.done and closing.result() is None
    for waiter, message in (
        (call, "the client closed before Kraken answered subscribe executions"),
        (state, "the client closed before becoming 'subscribed'"),
        (order, "cancel_all not sent: the client is closed"),
    ):
        with pytest.raises(KrakenConnectionError, match="closed") as info:
            waiter.result()
        assert str(info.value) == f"{message} (closed by the client)"
        assert info.value.terminal


def test_a_trading_request_waits_for_the_token_then_for_its_answer() -> None:
    driver, io = make(private=True, request_timeout=2.0)
    up(driver, io)
    waiter = driver.submit(CancelAll(), 0.0)
    assert io.sent == [] and len(io.tokens) == 1
    driver.token_answered(io.tokens[0], "WS-TOKEN-0123456789abcdef", 0.1)
    (request,) = [r for r in io.sent if r["method"] == "cancel_all"]
    assert waiter.what == f"no answer to cancel_all (req_id {request['req_id']})"
    assert waiter.note == IN_FLIGHT
    error = driver.timed_out(waiter.what, 0.5, waiter.note)
    assert str(error).endswith(f"within 0.5 s; the connection is 'subscribed'; {IN_FLIGHT}")
    driver.timer(2.2)  # the core settles it: no answer within request_timeout
    response = waiter.result()
    assert isinstance(response, OrderResponse) and response.outcome is OrderOutcome.UNKNOWN


def test_trading_needs_a_private_client() -> None:
    driver, _ = make()
    with pytest.raises(LocalProtocolError, match="trading needs a private client"):
        driver.submit(CancelAll(), 0.0)


def test_a_token_for_a_connection_that_is_gone_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver, io = make(private=True)
    up(driver, io)
    stale = io.tokens[0]
    driver.lost(0.1, ConnectionResetError("reset"))
    driver.timer(0.3)  # the reconnect
    io.up = True
    driver.connected(0.3)
    with caplog.at_level(logging.DEBUG, logger="kraken_transports.driver"):
        driver.token_answered(stale, "WS-TOKEN-0123456789abcdef", 0.4)
    assert driver.proto.state is S.AUTHENTICATING
    assert "token result dropped" in caplog.text
    driver.token_answered(io.tokens[1], AuthenticationError("EAPI:Invalid key", terminal=True), 0.5)
    assert driver.proto.state is S.CLOSED


def test_expired_waits_are_forgotten_and_name_the_last_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver, io = make()
    driver.connect(0.0)
    with caplog.at_level(logging.WARNING, logger="kraken_transports.connection"):
        driver.lost(0.01, ConnectionRefusedError(111, "Connection refused"))
        driver.timer(0.2)  # reconnecting
        driver.timer(10.5)  # no connection within 10 s
    assert [r.getMessage() for r in caplog.records] == [
        f"connection refused to {URL} (attempt 1); reconnecting in 0.10 s",
        f"connection to {URL} failed: no connection within 10 s (attempt 2); "
        "reconnecting in 0.20 s",
    ]
    waiter: Waiter[Any] | None = driver.wait_state("subscribed")
    assert waiter is not None
    error = driver.expired(waiter, 3)
    assert isinstance(error, WaitTimeoutError) and isinstance(error, TimeoutError)
    assert str(error) == (
        "the connection did not become 'subscribed' within 3 s; the connection is "
        f"'degraded'; last connection failure: connection to {URL} failed: no connection "
        "within 10 s after 2 attempts"
    )
    assert error.state == "degraded"
    driver.timer(11.0)
    io.up = True
    driver.connected(11.0)
    assert not waiter.done  # forgotten: nothing settles it any more
    assert driver.describe_failure() == ""  # subscribed: the failures are over


def test_giving_up_is_logged_at_error_and_fails_the_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver, _ = make(reconnect=ReconnectConfig(max_attempts=0))
    driver.connect(0.0)
    waiter = driver.call("subscribe", "ticker", "BTC/USD", {}, 0.0, wait=True)
    assert waiter is not None
    with caplog.at_level(logging.WARNING, logger="kraken_transports.connection"):
        driver.lost(0.1, ConnectionRefusedError(111, "Connection refused"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            f"giving up on {URL}: connection lost: ConnectionRefusedError: "
            "[Errno 111] Connection refused; gave up after 0 reconnect attempts",
        )
    ]
    with pytest.raises(KrakenConnectionError) as info:
        waiter.result()
    assert str(info.value) == (
        "the client closed before Kraken answered subscribe ticker BTC/USD "
        f"(connection refused to {URL} after 1 attempt)"
    )
    driver.connect(1.0)  # a fresh start forgets the failures
    assert driver.describe_failure() == ""


def test_reconnects_frames_hook_and_faults_are_counted() -> None:
    frames: list[tuple[str, str | bytes]] = []

    def hook(direction: str, text: str | bytes, now: float) -> None:
        frames.append((direction, text))
        raise RuntimeError("a broken hook is logged, never raised")

    driver, io = make()
    driver.frame_hook = hook
    up(driver, io)
    driver.call("subscribe", "ticker", "BTC/USD", {}, 0.0, wait=False)
    driver.received(b'{"channel":"heartbeat"}', 0.1)
    driver.lost(0.2, None)
    driver.timer(0.4)
    changes: list[StateChanged] = []
    driver.router.on(StateChanged, changes.append)
    assert driver.router.stats().reconnects == 1
    assert [direction for direction, _ in frames] == ["out", "in"]
    driver.discarded("message too large", "x" * 10, 0.5)
    stats = driver.router.stats()
    assert (stats.frames_in, stats.frames_out) == (2, 1)
    assert io.batches > 0


def test_a_message_performs_its_actions_in_order_around_callbacks_and_the_lock() -> None:
    # Driver.received inlines perform(): events and other actions of one message still go
    # in order, each event to its callbacks (between release and reacquire) then the buffer,
    # and the IO hears ``performed`` once per message.
    driver, io = make()
    up(driver, io)
    log: list[str] = []
    router = driver.router
    router.release = lambda: log.append("release")
    router.reacquire = lambda: log.append("acquire")
    router.on(None, lambda e: log.append(f"callback {type(e).__name__}"))
    first = StateChanged("subscribed", "subscribed", "one")
    second = StateChanged("subscribed", "subscribed", "two")
    actions = [Emit(first), Send('{"method":"ping","req_id":99}'), Emit(second)]
    driver.proto.receive_data = lambda payload, now: actions  # type: ignore[method-assign]
    io.sent.clear()
    batches = io.batches
    original_send = io.send

    def send(text: str) -> bool:
        log.append("send")
        return original_send(text)

    io.send = send  # type: ignore[method-assign]
    while router.buffer.pop(0.0) is not None:
        pass
    driver.received("ignored", 1.0)
    assert log == [
        "release",
        "callback StateChanged",
        "acquire",
        "send",
        "release",
        "callback StateChanged",
        "acquire",
    ]
    assert io.sent == [{"method": "ping", "req_id": 99}]
    assert io.batches == batches + 1
    assert [router.buffer.pop(0.0), router.buffer.pop(0.0)] == [first, second]
    assert router.stats().frames_in == 1
