"""The surface the three drivers share, checked identically against each (issue 10, item 5).

Every test body runs once per driver (``kind``), through :mod:`clients` (the asyncio client
on a loop thread of its own, called as if it blocked), against the simulator or a loopback
address that refuses or never answers. The same call must give the same result, and raise
the same exception with the same message, in all three. Nothing is asserted on wall-clock
time: waits are on conditions, with generous ceilings.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from clients import KINDS, Client, dispose, open_client, read_until, until
from simthread import RawServer, SimThread, blackhole, closed_port_url

from kraken_proto import (
    ClientConfig,
    ConnectionState,
    KrakenConnectionError,
    LocalProtocolError,
    OrderError,
    Subscribed,
    SubscriptionError,
    SubscriptionResult,
    Unsubscribed,
)
from kraken_proto import ReconnectConfig as Reconnect
from kraken_proto.errors import InvalidRequestError, UnknownOutcomeError, WaitTimeoutError
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_proto.simulator.faults import LoseResponse
from kraken_proto.trading import AddOrder, OrderOutcome, OrderResponse
from kraken_transports import AsyncClient, SocketClient, ThreadedClient, connect
from kraken_transports.base import DEFAULT_TIMEOUT, IN_FLIGHT
from kraken_transports.client import ClientBase, ClientOptions

S = ConnectionState
FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)
CLASSES = {"aio": AsyncClient, "sockets": SocketClient, "threaded": ThreadedClient}
NOT_STARTED = (
    "needs a started client: call start() first (entering a 'with' or 'async with' block does)"
)
REGISTER = ", or pass wait=False to only register it (sent once the client is started)"
ORDER: dict[str, Any] = {
    "order_type": "limit",
    "side": "buy",
    "symbol": "BTC/USD",
    "order_qty": Decimal("1"),
    "limit_price": Decimal("100"),
}
BAD_SYMBOLS = [(123, "int 123"), (b"BTC/USD", "bytes b'BTC/USD'"), ([b"BTC/USD"], "bytes")]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(kind: str) -> Iterator[Callable[..., Client]]:
    """Makes clients of this test's kind; closes them all afterwards."""
    made: list[Client] = []

    def make_client(config: ClientConfig, **options: Any) -> Client:
        client = open_client(kind, config, **options)
        made.append(client)
        return client

    yield make_client
    for client in made:
        dispose(client)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(seed=41) as server:
        yield server


def config(url: str, **overrides: Any) -> ClientConfig:
    values: dict[str, Any] = {"endpoint": url, "reconnect": FAST, "ping_interval": None}
    values.update(overrides)
    return ClientConfig(**values)


def private(sim: SimThread, **overrides: Any) -> ClientConfig:
    server = sim.sim
    values: dict[str, Any] = {
        "auth_endpoint": server.auth_url,
        "rest_url": server.rest_url,
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "request_timeout": 3.0,
    }
    values.update(overrides)
    return config(server.url, **values)


def refused(**overrides: Any) -> tuple[ClientConfig, str]:
    """A configuration whose every endpoint refuses connections, and that URL."""
    url = closed_port_url()
    values: dict[str, Any] = {"auth_endpoint": url, "api_key": SIM_API_KEY}
    values.update(api_secret=SIM_API_SECRET, **overrides)
    return config(url, **values), url


# --------------------------------------------------------------------------- signatures

# Every call of the shared surface, and whether it waits (then its timeout defaults to
# DEFAULT_TIMEOUT).
CALLS = {
    "start": False,
    "close": False,
    "subscribe": True,
    "unsubscribe": True,
    "wait_until": True,
    "submit": True,
    "add_order": True,
    "amend_order": True,
    "edit_order": True,
    "cancel_order": True,
    "cancel_all": True,
    "cancel_all_orders_after": False,  # its own timeout is the switch's; wait_timeout waits
    "batch_add": True,
    "batch_cancel": True,
    "arm_dead_man_switch": False,
    "disarm_dead_man_switch": False,
    "on": False,
    "book": False,
    "book_snapshot": False,
    "l3_book": False,
    "rate_counter": False,
}
QUERIES = [
    "config",
    "protocol",
    "state",
    "subscriptions",
    "stats",
    "pending_requests",
    "running",
    "latency",
]


def shape(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_the_same_arguments_and_defaults_everywhere() -> None:
    for name in CALLS:
        shapes = {kind: shape(getattr(cls, name)) for kind, cls in CLASSES.items()}
        assert shapes["aio"] == shapes["sockets"] == shapes["threaded"], name
    for name in QUERIES:
        assert all(isinstance(getattr(cls, name), property) for cls in CLASSES.values()), name
    for cls in CLASSES.values():
        for name in (name for name, waits in CALLS.items() if waits):
            assert inspect.signature(getattr(cls, name)).parameters["timeout"].default == (
                DEFAULT_TIMEOUT
            )
        after = inspect.signature(cls.cancel_all_orders_after).parameters
        assert after["wait_timeout"].default == DEFAULT_TIMEOUT
        assert inspect.signature(cls.subscribe).parameters["wait"].default is True
        assert inspect.signature(cls.close).parameters["timeout"].default == 1.0
    # The constructor: ClientBase's, taken by each (the socket client adds its clock).
    options = shape(ClientBase.__init__)[1:]
    assert [name for name, _, _ in options] == ["config", *ClientOptions.__annotations__]
    assert AsyncClient.__init__ is ThreadedClient.__init__ is ClientBase.__init__
    assert [name for name, _, _ in shape(SocketClient.__init__)] == [
        "self",
        "config",
        "clock",
        "options",
    ]
    assert [name for name, _, _ in shape(connect)] == ["config", "options"]
    # Reading events: the blocking ones end after idle_timeout; async iteration has none.
    assert shape(SocketClient.events) == shape(ThreadedClient.events)
    assert inspect.signature(ThreadedClient.events).parameters["idle_timeout"].default is None
    assert "timeout" not in inspect.signature(AsyncClient.events).parameters


# --------------------------------------------------------------------------- subscribing


def test_subscribe_waits_for_its_answer_by_default(
    make: Callable[..., Client], sim: SimThread
) -> None:
    client = make(config(sim.url))
    results: list[SubscriptionResult] = []
    client.on(SubscriptionResult, results.append)
    client.start()
    acks = client.subscribe("ticker", iter(["BTC/USD", "ETH/USD"]))  # any iterable, read once
    assert [(type(a), a.channel, a.symbol) for a in acks] == [
        (Subscribed, "ticker", "BTC/USD"),
        (Subscribed, "ticker", "ETH/USD"),
    ]
    until(client, lambda: bool(results))
    assert results[0].ok and list(results[0].answers) == acks
    client.wait_until("subscribed", timeout=5)
    assert client.state is S.SUBSCRIBED
    assert [i.symbol for i in client.subscriptions.active] == ["BTC/USD", "ETH/USD"]
    with pytest.raises(LocalProtocolError, match="already subscribed"):
        client.subscribe("ticker", "BTC/USD")
    assert client.subscribe("trade", "BTC/USD", wait=False) == []
    until(client, lambda: len(results) == 2)


def test_subscribe_while_connecting_waits_for_the_connection_then_the_answer(
    make: Callable[..., Client], sim: SimThread
) -> None:
    client = make(config(sim.url))
    client.start()  # returns at once in every driver: the connection is still coming up
    acks = client.subscribe("book", ["BTC/USD"], depth=10, timeout=10)
    assert [(a.channel, a.symbol, a.result["depth"]) for a in acks] == [("book", "BTC/USD", 10)]
    until(client, lambda: bool(getattr(client.book("BTC/USD"), "is_live", False)))
    bids, asks = client.book_snapshot("BTC/USD", 3)
    assert len(bids) == len(asks) == 3 and bids[0].price < asks[0].price


def test_a_refusal_raises_krakens_text(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(config(sim.url))
    client.start()
    with pytest.raises(SubscriptionError, match="Currency pair not supported XBT/USD") as info:
        client.subscribe("ticker", ["BTC/USD", "XBT/USD"], timeout=10)
    assert (info.value.channel, info.value.symbol, info.value.error) == (
        "ticker",
        "XBT/USD",
        "Currency pair not supported XBT/USD",
    )
    assert [i.symbol for i in client.subscriptions.failed] == ["XBT/USD"]
    until(client, lambda: [i.symbol for i in client.subscriptions.active] == ["BTC/USD"])


def test_unsubscribe_waits_for_its_answer(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(config(sim.url))
    client.start()
    client.subscribe("book", ["BTC/USD", "ETH/USD"], timeout=10)
    acks = client.unsubscribe("book", ["BTC/USD", "ETH/USD"], timeout=10)
    assert [(type(a), a.symbol) for a in acks] == [
        (Unsubscribed, "BTC/USD"),
        (Unsubscribed, "ETH/USD"),
    ]
    assert client.book("BTC/USD") is None and client.subscriptions.active == ()
    with pytest.raises(LocalProtocolError, match="not subscribed to book BTC/USD"):
        client.unsubscribe("book", "BTC/USD")


def test_the_core_ack_timeout_fails_the_wait(make: Callable[..., Client]) -> None:
    def silent(conn: Any) -> None:  # accepts the WebSocket, answers nothing
        conn.handshake()
        conn.hold(5)

    with RawServer(silent) as server:
        client = make(config(server.url, ack_timeout=0.3))
        client.start()
        with pytest.raises(SubscriptionError, match=r"no acknowledgement within 0\.3 s"):
            client.subscribe("ticker", "BTC/USD", timeout=10)


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(("symbols", "shown"), BAD_SYMBOLS)
def test_bad_symbols_are_refused_first(
    make: Callable[..., Client], symbols: Any, shown: str
) -> None:
    client = make(refused()[0])
    types = re.escape("symbols must be a str or an iterable of str (like 'BTC/USD' or [")
    for call in (client.subscribe, client.unsubscribe):
        for wait in (False, True):  # arguments are checked first, started or not
            with pytest.raises(LocalProtocolError, match=types) as info:
                call("ticker", symbols, wait=wait)
            assert shown in str(info.value)
    assert client.subscriptions.pending == ()


def test_other_bad_arguments(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(config(sim.url))
    client.start()
    with pytest.raises(LocalProtocolError, match="book depth"):
        client.subscribe("book", "BTC/USD", depth=7)
    with pytest.raises(LocalProtocolError, match="ohlc needs interval"):
        client.subscribe("ohlc", "BTC/USD", wait=False)
    refusal = r"state must be a ConnectionState or one of its values \('disconnected', .*\), not "
    with pytest.raises(LocalProtocolError, match=refusal + "'Subscribed'"):
        client.wait_until("Subscribed")
    with pytest.raises(LocalProtocolError, match=refusal + "3"):
        client.wait_until(3)
    with pytest.raises(LocalProtocolError, match=r"^trading needs a private client: create it"):
        client.cancel_all()

    async def coroutine(event: object) -> None:  # pragma: no cover - refused
        pass

    with pytest.raises(TypeError, match="an async one would never be awaited"):
        client.on(None, coroutine)
    assert client.subscriptions.pending == ()


# --------------------------------------------------------------------------- not started, closed


def test_calls_before_start_follow_one_rule(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(private(sim), private=True)
    for method in ("subscribe", "unsubscribe"):
        with pytest.raises(LocalProtocolError) as info:
            getattr(client, method)("executions")
        assert str(info.value) == f"{method}(wait=True) {NOT_STARTED}{REGISTER}"
    assert client.subscriptions.pending == ()  # refused before anything was registered
    with pytest.raises(LocalProtocolError) as info:
        client.wait_until("subscribed")
    assert str(info.value) == f"wait_until('subscribed') {NOT_STARTED}"
    with pytest.raises(LocalProtocolError) as info:
        client.add_order(**ORDER)
    assert str(info.value) == f"add_order {NOT_STARTED}"
    with pytest.raises(LocalProtocolError) as info:
        next(client.events())
    assert str(info.value) == f"events() {NOT_STARTED}"
    client.wait_until("disconnected")  # already there: returns at once
    assert client.subscribe("executions", wait=False) == []  # registered, sent once started
    assert client.subscribe("balances", wait=False) == []
    assert client.unsubscribe("balances", wait=False) == []  # forgotten at once
    client.arm_dead_man_switch(60)
    client.start()
    client.wait_until("subscribed", timeout=10)
    assert [i.channel for i in client.subscriptions.active] == ["executions"]
    until(client, lambda: client.protocol.dead_man_switch is not None)


def test_a_closed_client_refuses_waits_and_starts_again(
    make: Callable[..., Client], sim: SimThread
) -> None:
    client = make(config(sim.url))
    client.start()
    client.subscribe("ticker", "BTC/USD", timeout=10)
    client.close()
    assert client.state is S.CLOSED and not client.running
    closed = "refused: the client is closed (closed by the client)"
    for call, what in (
        (lambda: client.subscribe("trade", "ETH/USD"), "subscribe(wait=True)"),
        (lambda: client.wait_until("subscribed"), "wait_until('subscribed')"),
    ):
        with pytest.raises(KrakenConnectionError) as info:
            call()
        assert str(info.value) == f"{what} {closed}" and info.value.terminal
    assert client.subscribe("trade", "ETH/USD", wait=False) == []  # registered for a restart
    client.start()  # resubscribes what was subscribed when it closed, and what was added
    acks = client.subscribe("ohlc", "ETH/USD", interval=5, timeout=10)  # at once: issue 9
    assert [(a.channel, a.symbol) for a in acks] == [("ohlc", "ETH/USD")]
    with pytest.raises(LocalProtocolError, match="already subscribed"):
        client.subscribe("ticker", "BTC/USD")  # kept from the first run
    until(client, lambda: len(client.subscriptions.active) == 3)
    assert sorted((i.channel, i.symbol) for i in client.subscriptions.active) == [
        ("ohlc", "ETH/USD"),
        ("ticker", "BTC/USD"),
        ("trade", "ETH/USD"),
    ]
    assert client.stats.reconnects == 0


def test_a_callback_only_client_has_no_events(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(config(sim.url), buffer_events=False)
    seen: list[object] = []
    client.on(None, seen.append)
    client.start()
    client.subscribe("ticker", "BTC/USD", timeout=10)
    with pytest.raises(LocalProtocolError) as info:
        next(client.events())
    assert str(info.value) == (
        "this client was created with buffer_events=False: events go to callbacks only "
        "(register them with on())"
    )
    until(client, lambda: any(type(e).__name__ == "Ticker" for e in seen))
    assert client.stats.received == 0 and client.stats.queued == 0


# --------------------------------------------------------------------------- timeouts


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="kraken_transports"):
        yield caplog


def expect_named_failure(error: BaseException, url: str, what: str) -> None:
    """The error says what was waited for, that it timed out, and the failure behind it."""
    assert isinstance(error, WaitTimeoutError) and isinstance(error, TimeoutError)
    failure = rf"connection refused to {re.escape(url)} after \d+ attempts"
    pattern = (
        rf"{re.escape(what)} within 0\.3 s; the connection is '(degraded|connecting)'; "
        rf"last connection failure: {failure}"
    )
    assert re.fullmatch(pattern, str(error)), str(error)
    assert re.fullmatch(failure, error.last_failure)
    assert error.state in ("degraded", "connecting")


def test_waits_time_out_naming_the_connection_failure(
    make: Callable[..., Client], warnings_logged: pytest.LogCaptureFixture
) -> None:
    cfg, url = refused()
    client = make(cfg, private=True)
    client.start()
    client.wait_until("degraded", timeout=10)
    with pytest.raises(TimeoutError) as subscribing:
        client.subscribe("executions", timeout=0.3)
    with pytest.raises(TimeoutError) as waiting:
        client.wait_until(S.SUBSCRIBED, timeout=0.3)
    with pytest.raises(TimeoutError) as trading:
        client.add_order(timeout=0.3, **ORDER)
    expect_named_failure(subscribing.value, url, "no answer to subscribe executions")
    expect_named_failure(waiting.value, url, "the connection did not become 'subscribed'")
    expect_named_failure(
        trading.value, url, "add_order not sent: the connection did not become 'subscribed'"
    )
    assert [i.channel for i in client.subscriptions.pending] == ["executions"]  # still asked
    acks = client.unsubscribe("executions")  # while disconnected: forgotten, answered at once
    assert [(type(a), a.channel, a.req_id) for a in acks] == [(Unsubscribed, "executions", None)]
    warnings = [
        r.getMessage()
        for r in warnings_logged.records
        if r.name == "kraken_transports.connection" and r.levelno == logging.WARNING
    ]
    assert f"connection refused to {url} (attempt 1); reconnecting in 0.05 s" in warnings


def test_a_wait_times_out_while_connecting_and_the_request_stays(
    make: Callable[..., Client],
) -> None:
    with blackhole() as hole:
        client = make(config(hole))
        client.start()
        with pytest.raises(WaitTimeoutError) as info:
            client.subscribe("ticker", "BTC/USD", timeout=0.2)
        assert str(info.value) == (
            "no answer to subscribe ticker BTC/USD within 0.2 s; the connection is 'connecting'"
        )
        assert [i.symbol for i in client.subscriptions.pending] == ["BTC/USD"]


def test_giving_up_fails_the_waits_with_the_last_failure(
    make: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, url = refused(reconnect=Reconnect(max_attempts=1, initial_delay=0.05, jitter=0.0))
    client = make(cfg)
    client.start()
    with (
        caplog.at_level(logging.ERROR, logger="kraken_transports"),
        pytest.raises(KrakenConnectionError) as info,
    ):
        client.subscribe("ticker", "BTC/USD")
    assert str(info.value) == (
        "the client closed before Kraken answered subscribe ticker BTC/USD "
        f"(connection refused to {url} after 2 attempts)"
    )
    assert info.value.terminal
    (giving_up,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert giving_up.startswith(f"giving up on {url}: ")


# --------------------------------------------------------------------------- latency

LATENCY_OFF = "latency tracking is off: create the client with ClientConfig(latency=True)"


def test_latency_is_off_by_default(make: Callable[..., Client]) -> None:
    client = make(refused()[0])
    assert client.config.latency is False
    with pytest.raises(LocalProtocolError) as info:
        _ = client.latency
    assert str(info.value) == LATENCY_OFF


def test_latency_is_tracked_per_channel_when_enabled(
    make: Callable[..., Client], sim: SimThread
) -> None:
    client = make(config(sim.url, latency=True, ping_interval=1.0))
    client.start()
    client.subscribe("book", "BTC/USD", depth=10, timeout=10)
    client.subscribe("trade", "BTC/USD", timeout=10)

    def measured() -> bool:  # both channels, both directions, and a pong's clock offset
        report = client.latency
        channels = report.channels
        return (
            report.clock is not None
            and report.clock.source == "pong"
            and all(
                name in channels
                and channels[name].exchange.count > 0
                and channels[name].delivery.count > 0
                for name in ("book", "trade")
            )
        )

    read_until(client, measured)
    report = client.latency
    assert set(report.channels) <= {"book", "trade", "status"}
    clock = report.clock
    assert clock is not None and clock.bound is not None and clock.rtt is not None
    assert 0 <= clock.bound <= clock.rtt / 2
    for name in ("book", "trade"):
        delivery = report.channels[name].delivery
        assert delivery.negative == 0  # one monotonic clock
        assert delivery.p50 is not None and delivery.max is not None
        assert 0 <= delivery.p50 <= delivery.max


def test_latency_of_a_callback_only_client(make: Callable[..., Client], sim: SimThread) -> None:
    client = make(config(sim.url, latency=True), buffer_events=False)
    client.on(None, lambda event: None)
    client.start()
    client.subscribe("trade", "BTC/USD", timeout=10)

    def delivered() -> bool:
        channel = client.latency.channels.get("trade")
        return channel is not None and channel.delivery.count > 0

    until(client, delivered, timeout=30)
    assert client.latency.channels["trade"].exchange.count > 0  # the wall clock's offset


# --------------------------------------------------------------------------- trading


def test_trading_on_the_private_simulator(make: Callable[..., Client]) -> None:
    # A 1 s request timeout (not 3 s): the test waits it out twice, and the 0.2 s wait
    # timeout below still ends well before it; answers on loopback take milliseconds.
    with SimThread(seed=42) as sim:
        trade(make(private(sim, request_timeout=1.0), private=True), sim)


def trade(client: Client, sim: SimThread) -> None:
    responses: list[OrderResponse] = []
    client.on(OrderResponse, responses.append)
    client.start()
    bids, _ = sim.call(lambda: sim.sim.exchange.markets["BTC/USD"].book(1))
    rest = bids[0].price - Decimal(500)
    order = {**ORDER, "order_qty": Decimal("0.01"), "limit_price": rest}
    placed = client.add_order(**order)  # made while connecting: waits for the connection
    assert placed.order_id.startswith("O")
    amended = client.amend_order(order_id=placed.order_id, order_qty=Decimal("0.02"))
    assert amended.order_id == placed.order_id
    assert [c.order_id for c in client.cancel_order(order_id=placed.order_id)] == [placed.order_id]
    fields = {k: v for k, v in order.items() if k != "symbol"}
    batch = client.batch_add("BTC/USD", [{**fields, "limit_price": rest - i} for i in range(2)])
    ids = [row.order_id or "" for row in batch.orders]
    assert client.batch_cancel(ids).count == 2
    assert client.cancel_all().count == 0
    with pytest.raises(OrderError) as refusal:
        client.add_order(**{**order, "order_qty": Decimal("0.00000001")})
    assert refusal.value.error == "EOrder:Order minimum not met"
    with pytest.raises(InvalidRequestError):  # refused before anything is sent
        client.add_order(order_type="limit", side="buy", symbol="BTC/USD")
    until(client, lambda: len(responses) == 7)
    assert client.pending_requests == 0
    sim.inject(LoseResponse("add_order"))
    with pytest.raises(WaitTimeoutError) as info:
        client.submit(AddOrder(**order), timeout=0.2)
    assert re.fullmatch(
        rf"no answer to add_order \(req_id \d+\) within 0\.2 s; the connection is "
        rf"'subscribed'; {IN_FLIGHT}",
        str(info.value),
    )
    until(client, lambda: len(responses) == 8)  # the core settles it: request_timeout
    assert responses[-1].outcome is OrderOutcome.UNKNOWN
    sim.inject(LoseResponse("add_order"))
    with pytest.raises(UnknownOutcomeError):
        client.add_order(**order)
    client.close()
    with pytest.raises(KrakenConnectionError) as closed:
        client.cancel_all()
    assert str(closed.value) == "cancel_all refused: the client is closed (closed by the client)"
