"""Every wait of every driver: one default timeout, errors that name the cause, checked
arguments (issue 9, item 8), and the ``idle_timeout`` name (item 9). Loopback only."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from simthread import SimThread, closed_port_url

from kraken_proto import ClientConfig, ConnectionState, KrakenConnectionError, LocalProtocolError
from kraken_proto import ReconnectConfig as Reconnect
from kraken_proto.errors import WaitTimeoutError
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_transports import AsyncClient, SocketClient, ThreadedClient, connect
from kraken_transports.base import DEFAULT_TIMEOUT

T = TypeVar("T")
FAST = Reconnect(initial_delay=0.05, jitter=0.0)
ORDER: dict[str, Any] = {
    "order_type": "limit",
    "side": "buy",
    "symbol": "BTC/USD",
    "order_qty": Decimal("1"),
    "limit_price": Decimal("100"),
}
BAD_SYMBOLS = [(123, "int 123"), (b"BTC/USD", "bytes b'BTC/USD'"), ([b"BTC/USD"], "bytes")]


def refused(**overrides: Any) -> tuple[ClientConfig, str]:
    """A configuration whose every endpoint refuses connections, and that URL."""
    url = closed_port_url()
    options: dict[str, Any] = {
        "endpoint": url,
        "auth_endpoint": url,
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "reconnect": FAST,
        "ping_interval": None,
    }
    options.update(overrides)
    return ClientConfig(**options), url


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(bounded())


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


@pytest.fixture(autouse=True)
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.WARNING, logger="kraken_transports"):
        yield


def connection_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kraken_transports.connection" and r.levelno == logging.WARNING
    ]


# --------------------------------------------------------------------------- one default


WAITS = [
    "subscribe",
    "unsubscribe",
    "wait_until",
    "submit",
    "add_order",
    "amend_order",
    "edit_order",
    "cancel_order",
    "cancel_all",
    "batch_add",
    "batch_cancel",
]


@pytest.mark.parametrize("cls", [AsyncClient, SocketClient, ThreadedClient])
def test_every_wait_has_the_same_default_timeout(cls: type) -> None:
    defaults = {name: inspect.signature(getattr(cls, name)).parameters for name in WAITS}
    assert {name: params["timeout"].default for name, params in defaults.items()} == {
        name: DEFAULT_TIMEOUT for name in WAITS
    }
    after = inspect.signature(cls.cancel_all_orders_after).parameters
    assert after["wait_timeout"].default == DEFAULT_TIMEOUT
    assert inspect.signature(cls.subscribe).parameters["wait"].default is True
    events = inspect.signature(cls.events).parameters
    assert "timeout" not in events
    if cls is not AsyncClient:  # the async iterator has no timeout at all
        assert events["idle_timeout"].default is None


# --------------------------------------------------------------------------- unreachable


def test_aio_subscribe_to_an_unreachable_endpoint_names_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, url = refused()

    async def main() -> tuple[BaseException, BaseException]:
        async with connect(config) as client:
            await client.wait_until("degraded", timeout=5)
            with pytest.raises(TimeoutError) as subscribing:
                await client.subscribe("ticker", ["BTC/USD", "ETH/USD"], timeout=0.3)
            with pytest.raises(TimeoutError) as waiting:
                await client.wait_until(ConnectionState.SUBSCRIBED, timeout=0.3)
        return subscribing.value, waiting.value

    subscribing, waiting = run(main())
    expect_named_failure(subscribing, url, "no answer to subscribe ticker BTC/USD, ETH/USD")
    expect_named_failure(waiting, url, "the connection did not become 'subscribed'")
    assert f"connection refused to {url} (attempt 1); reconnecting in 0.05 s" in (
        connection_warnings(caplog)
    )


@pytest.mark.parametrize("cls", [SocketClient, ThreadedClient])
def test_blocking_subscribe_to_an_unreachable_endpoint_names_the_failure(
    cls: type[SocketClient] | type[ThreadedClient], caplog: pytest.LogCaptureFixture
) -> None:
    config, url = refused()
    with cls(config) as client:
        client.wait_until("degraded", timeout=5)
        with pytest.raises(TimeoutError) as subscribing:
            client.subscribe("ticker", ["BTC/USD", "ETH/USD"], timeout=0.3)
        with pytest.raises(TimeoutError) as waiting:
            client.wait_until(ConnectionState.SUBSCRIBED, timeout=0.3)
    expect_named_failure(subscribing.value, url, "no answer to subscribe ticker BTC/USD, ETH/USD")
    expect_named_failure(waiting.value, url, "the connection did not become 'subscribed'")
    assert f"connection refused to {url} (attempt 1); reconnecting in 0.05 s" in (
        connection_warnings(caplog)
    )


def test_trading_on_an_unreachable_endpoint_names_the_failure() -> None:
    config, url = refused()
    what = "add_order not sent: the connection did not become 'subscribed'"

    async def aio() -> BaseException:
        async with connect(config, private=True) as client:
            await client.wait_until("degraded", timeout=5)
            with pytest.raises(TimeoutError) as info:
                await client.add_order(timeout=0.3, **ORDER)
        return info.value

    expect_named_failure(run(aio()), url, what)
    for cls in (SocketClient, ThreadedClient):
        with cls(config, private=True) as client:
            client.wait_until("degraded", timeout=5)
            with pytest.raises(TimeoutError) as info:
                client.add_order(timeout=0.3, **ORDER)
        expect_named_failure(info.value, url, what)


def test_giving_up_fails_the_waits_with_the_last_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, url = refused(reconnect=Reconnect(max_attempts=1, initial_delay=0.05, jitter=0.0))
    expected = (
        rf"the client closed before Kraken answered subscribe ticker BTC/USD "
        rf"\(connection refused to {re.escape(url)} after 2 attempts\)"
    )

    async def aio() -> None:
        async with connect(config) as client:
            with pytest.raises(KrakenConnectionError, match=expected) as info:
                await client.subscribe("ticker", "BTC/USD")
            assert info.value.terminal

    run(aio())
    for cls in (SocketClient, ThreadedClient):
        with cls(config) as client, pytest.raises(KrakenConnectionError, match=expected):
            client.subscribe("ticker", "BTC/USD")
    giving_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(giving_up) == 3
    assert all(r.getMessage().startswith(f"giving up on {url}: ") for r in giving_up)


# --------------------------------------------------------------------------- arguments


def test_wait_until_takes_the_state_as_its_value_and_refuses_the_rest(sim: SimThread) -> None:
    config = ClientConfig(endpoint=sim.url, reconnect=FAST, ping_interval=None)
    refusal = r"state must be a ConnectionState or one of its values \('disconnected', .*\), not "

    async def aio() -> None:
        async with connect(config) as client:
            await client.wait_until("subscribed", timeout=5)
            assert client.state is ConnectionState.SUBSCRIBED
            with pytest.raises(LocalProtocolError, match=refusal + "'Subscribed'"):
                await client.wait_until("Subscribed")
            with pytest.raises(LocalProtocolError, match=refusal + "3"):
                await client.wait_until(3)  # type: ignore[arg-type]

    run(aio())
    for cls in (SocketClient, ThreadedClient):
        with cls(config) as client:
            client.wait_until("subscribed", timeout=5)
            assert client.state is ConnectionState.SUBSCRIBED
            with pytest.raises(LocalProtocolError, match=refusal + "'Subscribed'"):
                client.wait_until("Subscribed")


@pytest.mark.parametrize(("symbols", "shown"), BAD_SYMBOLS)
def test_subscribe_refuses_symbols_that_are_not_str(symbols: Any, shown: str) -> None:
    config, _ = refused()
    types = re.escape("symbols must be a str or an iterable of str (like 'BTC/USD' or [")

    async def aio() -> None:
        client = connect(config)
        for call in (client.subscribe, client.unsubscribe):
            for wait in (False, True):  # arguments are checked first, running or not
                with pytest.raises(LocalProtocolError, match=types) as info:
                    await call("ticker", symbols, wait=wait)
                assert shown in str(info.value)
        assert client.subscriptions.pending == ()

    run(aio())
    for make in (SocketClient, ThreadedClient):
        client: Any = make(config)
        for call in (client.subscribe, client.unsubscribe):
            for wait in (False, True):
                with pytest.raises(LocalProtocolError, match=types) as info:
                    call("ticker", symbols, wait=wait)
                assert shown in str(info.value)
        assert client.subscriptions.pending == ()


def test_subscribe_takes_any_iterable_of_str_once(sim: SimThread) -> None:
    config = ClientConfig(endpoint=sim.url, reconnect=FAST, ping_interval=None)

    async def aio() -> None:
        async with connect(config) as client:
            acks = await client.subscribe("ticker", iter(["BTC/USD", "ETH/USD"]), timeout=5)
            assert [a.symbol for a in acks] == ["BTC/USD", "ETH/USD"]

    run(aio())
    for cls in (SocketClient, ThreadedClient):
        with cls(config) as client:
            acks = client.subscribe("ticker", (s for s in ("BTC/USD", "ETH/USD")), timeout=5)
            assert [a.symbol for a in acks] == ["BTC/USD", "ETH/USD"]


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=3) as server:
        yield server
