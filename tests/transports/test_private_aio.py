"""The asyncio driver's own private behaviour: its token request is a task, cancelled with
its connection (or the client), retried after a driver fault.

The scenarios every driver shares are in ``test_private_scenarios.py``. Every test is
bounded by ``asyncio.wait_for``; none asserts on timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiohttp import web

from kraken_proto import (
    ClientConfig,
    ConnectionState,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
)
from kraken_proto.actions import FetchToken
from kraken_proto.auth import TOKEN_PATH, TokenRequest
from kraken_proto.events import Event
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_proto.simulator.faults import Drop
from kraken_transports import aiohttp_io as aio  # the token fetcher is looked up there
from kraken_transports.aio import AsyncClient, connect
from kraken_transports.simserver import SimServer, run_simulator

T = TypeVar("T")
S = ConnectionState
FAST_RECONNECT = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)
SYMBOL = "BTC/USD"


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run ``coro`` on a fresh event loop, failing the test after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def private_config(sim: SimServer, **overrides: Any) -> ClientConfig:
    """A configuration for the simulator's hosts with its test credentials."""
    values: dict[str, Any] = {
        "endpoint": sim.url,
        "auth_endpoint": sim.auth_url,
        "level3_endpoint": sim.level3_url,
        "rest_url": sim.rest_url,
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "reconnect": FAST_RECONNECT,
        "ping_interval": None,
        "ack_timeout": 2.0,
        "timeout": 3.0,
        "request_timeout": 3.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


# --------------------------------------------------------------------------- construction


def test_private_and_level3_need_credentials() -> None:
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        connect(ClientConfig(), private=True)
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        AsyncClient(ClientConfig(), level3=True)


# --------------------------------------------------------------------------- end to end


@asynccontextmanager
async def token_endpoint(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A loopback REST host whose token endpoint is ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_post(TOKEN_PATH, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def test_token_request_cancelled_when_the_connection_drops() -> None:
    """A drop while the token is being fetched cancels that fetch; the reconnect asks again."""

    async def main() -> None:
        async with run_simulator(seed=10) as sim:
            arrived = asyncio.Event()
            calls: list[int] = []

            async def token(request: web.Request) -> web.Response:
                calls.append(len(calls))
                if len(calls) == 1:
                    arrived.set()
                    await asyncio.sleep(30)  # never answers: the client gives up on it
                return await sim._token(request)

            async with token_endpoint(token) as rest_url:
                seen: list[Event] = []
                client = connect(private_config(sim, rest_url=rest_url), private=True)
                client.on(StateChanged, seen.append)
                async with client:
                    await arrived.wait()
                    conn = client._io.conn
                    first = conn.token_task if conn is not None else None
                    assert first is not None and not first.done()
                    await sim.inject(Drop())
                    await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                    assert first.cancelled()
                    assert len(calls) == 2
                    assert sim.exchange.tokens.issued == 1
                    assert states(seen)[:4] == [
                        "connecting",
                        "authenticating",
                        "degraded",
                        "connecting",
                    ]

    run(main())


def test_closing_while_the_token_is_fetched_cancels_the_fetch() -> None:
    async def main() -> None:
        async with run_simulator(seed=14) as sim:
            arrived = asyncio.Event()

            async def token(request: web.Request) -> web.Response:
                arrived.set()
                await asyncio.sleep(30)
                raise AssertionError("never answered")  # pragma: no cover

            async with token_endpoint(token) as rest_url:
                client = connect(private_config(sim, rest_url=rest_url), private=True)
                async with client:
                    await arrived.wait()
                    conn = client._io.conn
                    fetch = conn.token_task if conn is not None else None
                    assert fetch is not None
                    with pytest.raises(TimeoutError, match="did not become 'subscribed'"):
                        await client.cancel_all(timeout=0)
                assert fetch.cancelled()
                assert client.state is S.CLOSED and not client._io.tasks

    run(main())


def test_a_failing_token_fetch_is_retried_and_a_stale_answer_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = aio.fetch_token_async  # type: ignore[attr-defined]
    calls: list[int] = []

    async def flaky(session: Any, request: Any, timeout: float) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the fetch")
        return await real(session, request, timeout)

    monkeypatch.setattr(aio, "fetch_token_async", flaky)

    async def main() -> None:
        async with run_simulator(seed=15) as sim:
            seen: list[StateChanged] = []
            client = connect(private_config(sim), private=True)
            client.on(StateChanged, seen.append)
            async with client:
                await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                assert states(seen) == [
                    "connecting",
                    "authenticating",
                    "degraded",
                    "connecting",
                    "authenticating",
                    "subscribing",
                    "subscribed",
                ]
                assert "token request failed: RuntimeError" in seen[2].reason
                # An answer for a connection that is no longer current is dropped.
                request = TokenRequest(
                    rest_url=sim.rest_url, api_key=SIM_API_KEY, api_secret=SIM_API_SECRET
                )
                stale = FetchToken(request, connection=1)
                client._driver.token_answered(stale, "WS-TOKEN-0123456789abcdef", 0.0)
                assert client.state is S.SUBSCRIBED

    with caplog.at_level(logging.DEBUG, logger="kraken_transports"):
        run(main())
    assert len(calls) == 2
    assert "token result dropped" in caplog.text


def states(events: Sequence[Event]) -> list[str]:
    """The ``new`` states of the StateChanged events, in order."""
    return [e.new for e in events if isinstance(e, StateChanged)]
