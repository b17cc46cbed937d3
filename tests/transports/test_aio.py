"""Tests of the asyncio driver (kraken_transports.aio), on loopback only.

Unit tests run against ``FakeKraken``, a tiny scripted aiohttp WebSocket server defined
here; end-to-end tests run against the simulator (``run_simulator``). Every test is bounded
by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aiohttp import WSMessage, WSMsgType, web
from frames import (  # type: ignore[import-not-found]  # tests/frames.py
    HEARTBEAT,
    STATUS,
    NaiveBook,
    ack,
    error,
    ticker,
    trade,
)

from kraken_proto import (
    OHLC,
    BackpressureConfig,
    BookResync,
    BookUpdate,
    ClientConfig,
    ConnectionState,
    DropPolicy,
    KrakenConnectionError,
    LocalProtocolError,
    Pong,
    ProtocolError,
    ReconnectConfig,
    StateChanged,
    Subscribed,
    SubscriptionResult,
    Ticker,
    Trade,
)
from kraken_proto.config import GapPolicy
from kraken_proto.events import Dropped, Event, GapDetected
from kraken_proto.simulator.faults import (
    Close,
    CorruptChecksum,
    Drop,
    MalformedFrame,
    RateLimit,
    Stall,
    TruncatedFrame,
)
from kraken_transports.aio import AsyncClient, connect
from kraken_transports.aiohttp_io import AioTransport, _Connection
from kraken_transports.driver import Driver
from kraken_transports.simserver import run_simulator

T = TypeVar("T")
S = ConnectionState
FAST_RECONNECT = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)
PROMPT = 2.5  # close() returns within about 1 s: a loose ceiling, far below any timeout


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run ``coro`` on a fresh event loop, failing the test after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def config(url: str, **overrides: Any) -> ClientConfig:
    """A test configuration: fast reconnects, no pings unless asked."""
    values: dict[str, Any] = {
        "endpoint": url,
        "reconnect": FAST_RECONNECT,
        "ping_interval": None,
        "ack_timeout": 2.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def collect(
    client: AsyncClient, stop: Callable[[list[Event]], bool], timeout: float = 3.0
) -> list[Event]:
    """Iterate the client until ``stop(events)`` is true (or the stream ends)."""
    seen: list[Event] = []

    async def consume() -> None:
        async for event in client:
            seen.append(event)
            if stop(seen):
                return

    await asyncio.wait_for(consume(), timeout)
    return seen


def states(events: Sequence[Event]) -> list[str]:
    """The ``new`` states of the StateChanged events, in order."""
    return [e.new for e in events if isinstance(e, StateChanged)]


# --------------------------------------------------------------------------- fake server


class FakeKraken:
    """A scripted Kraken v2 server: acks subscriptions and sends a snapshot/update per channel.

    ``refuse`` maps symbols to the error text to answer with; ``silent`` makes it ignore
    requests; ``hold_handshake`` makes new connections hang before the WebSocket upgrade.
    """

    def __init__(self) -> None:
        self.refuse: dict[str, str] = {}
        self.silent = False
        self.hold_handshake = False
        self.connections: list[web.WebSocketResponse] = []
        self.received: list[dict[str, Any]] = []
        self.books: dict[str, NaiveBook] = {}
        self.accepted = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._trade_id = 0

    @property
    def ws(self) -> web.WebSocketResponse:
        """The latest connection."""
        return self.connections[-1]

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.accepted += 1
        if self.hold_handshake:
            await asyncio.sleep(3600)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        await ws.send_str(STATUS)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            request_ = json.loads(msg.data)
            self.received.append(request_)
            if not self.silent:
                await self.answer(ws, request_)
        return ws

    async def answer(self, ws: web.WebSocketResponse, request: dict[str, Any]) -> None:
        method = request["method"]
        req_id = request.get("req_id")
        if method == "ping":
            await ws.send_str(json.dumps({"method": "pong", "req_id": req_id}))
            return
        params = request["params"]
        channel = params["channel"]
        extra = {k: params[k] for k in ("depth", "interval") if k in params}
        for symbol in params.get("symbol", [None]):
            if symbol in self.refuse:
                await ws.send_str(error(self.refuse[symbol], req_id, symbol, method=method))
                continue
            await ws.send_str(ack(channel, symbol, req_id, method=method, **extra))
            if method != "subscribe":
                continue
            if channel == "book":
                book = self.books[symbol] = NaiveBook(symbol, depth=params.get("depth", 10))
                await ws.send_str(book.snapshot())
            elif channel == "ticker":
                await ws.send_str(ticker(symbol))
            elif channel == "trade":
                await ws.send_str(self.trade(symbol))

    def trade(self, symbol: str) -> str:
        self._trade_id += 1
        text: str = trade(symbol, self._trade_id)
        return text

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2", self.handler)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/v2"

    async def stop(self) -> None:
        for ws in self.connections:
            if not ws.closed:
                ws.force_close()
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def fake_kraken() -> AsyncIterator[FakeKraken]:
    """A running :class:`FakeKraken` on a free loopback port."""
    server = FakeKraken()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def free_port_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v2"


def drop(ws: web.WebSocketResponse) -> None:
    """Abort the TCP connection under ``ws``: no close frame."""
    transport = ws._req.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.abort()


# --------------------------------------------------------------------------- API basics


def test_private_connections_without_credentials_are_refused_with_a_clear_error() -> None:
    with pytest.raises(LocalProtocolError, match="needs api_key and api_secret"):
        connect(ClientConfig(), private=True)


def test_subscribe_waits_for_acks_and_events_flow() -> None:
    async def main() -> None:
        async with fake_kraken() as server, connect(config(server.url)) as client:
            acks = await client.subscribe("ticker", ["BTC/USD", "ETH/USD"], timeout=3)
            assert [(a.channel, a.symbol) for a in acks] == [
                ("ticker", "BTC/USD"),
                ("ticker", "ETH/USD"),
            ]
            assert all(isinstance(a, Subscribed) for a in acks)
            assert client.state is S.SUBSCRIBED
            events = await collect(
                client, lambda seen: sum(isinstance(e, Ticker) for e in seen) == 2
            )
            tickers = [e for e in events if isinstance(e, Ticker)]
            assert {t.symbol for t in tickers} == {"BTC/USD", "ETH/USD"}
            assert tickers[0].bid == Decimal("99.0") and tickers[0].ask == Decimal("101.0")
            assert states(events) == ["connecting", "subscribing", "subscribed"]
            assert server.received[0]["params"] == {
                "channel": "ticker",
                "symbol": ["BTC/USD", "ETH/USD"],
            }
            stats = client.stats
            assert stats.frames_out == 1
            assert stats.frames_in >= 4  # status, 2 acks, 2 tickers
            assert [i.symbol for i in client.subscriptions.active] == ["BTC/USD", "ETH/USD"]
        assert client.state.value == "closed"

    run(main())


def test_subscribe_before_start_is_sent_once_connected() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            client = connect(config(server.url))
            assert await client.subscribe("trade", "BTC/USD", wait=False) == []
            with pytest.raises(LocalProtocolError, match="needs a started client"):
                await client.subscribe("ticker", "BTC/USD")
            async with client:
                events = await collect(client, lambda seen: any(isinstance(e, Trade) for e in seen))
            trades = [e for e in events if isinstance(e, Trade)]
            assert trades[0].symbol == "BTC/USD"
            assert trades[0].price == Decimal("100.5")
            assert server.received[0]["params"] == {"channel": "trade", "symbol": ["BTC/USD"]}

    run(main())


def test_pending_subscribe_fails_when_the_client_closes() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            server.silent = True
            client = connect(config(server.url))
            await client.start()
            waiting = asyncio.ensure_future(client.subscribe("ticker", "BTC/USD"))
            await until(lambda: bool(server.received))
            await client.close()
            with pytest.raises(KrakenConnectionError, match="closed before Kraken answered"):
                await waiting
            with pytest.raises(KrakenConnectionError, match="closed"):
                await client.wait_until(S.SUBSCRIBED)

    run(main())


def test_callbacks_in_order_and_a_raising_one_is_counted() -> None:
    async def main() -> None:
        calls: list[str] = []

        def first(event: Ticker) -> None:
            calls.append(f"first {event.symbol}")

        def broken(event: Ticker) -> None:
            calls.append("broken")
            raise RuntimeError("user bug")

        def last(event: Ticker) -> None:
            calls.append(f"last {event.symbol}")

        async with fake_kraken() as server, connect(config(server.url)) as client:
            client.on(Ticker, first)
            client.on(Ticker, broken)
            remove = client.on(Ticker, last)
            every: list[str] = []
            client.on(None, lambda e: every.append(type(e).__name__))
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            await until(lambda: len(calls) == 3)
            assert calls == ["first BTC/USD", "broken", "last BTC/USD"]
            remove()
            await server.send(ticker("BTC/USD", bid="98.5"))
            await until(lambda: len(calls) == 5)
            assert calls[3:] == ["first BTC/USD", "broken"]
            assert client.stats.callback_errors == 2
            assert client.state is S.SUBSCRIBED
            assert every.count("Ticker") == 2
            assert "Subscribed" in every and "StateChanged" in every
            # The stream kept flowing past the broken callback.
            events = await collect(
                client, lambda seen: sum(isinstance(e, Ticker) for e in seen) == 2
            )
            assert [e.bid for e in events if isinstance(e, Ticker)] == [
                Decimal("99.0"),
                Decimal("98.5"),
            ]

    run(main())


def test_callback_sees_the_book_as_its_update_left_it() -> None:
    async def main() -> None:
        checks: list[tuple[int, int]] = []

        async with fake_kraken() as server, connect(config(server.url)) as client:

            def on_book(event: BookUpdate) -> None:
                book = client.book(event.symbol)
                assert book is not None
                checks.append((book.checksum(), event.checksum))

            client.on(BookUpdate, on_book)
            await client.subscribe("book", "BTC/USD", timeout=3)
            book = server.books["BTC/USD"]
            # Several updates written back to back arrive in one read.
            for i in range(20):
                frame = book.frame([(f"{90 + i % 5}.0", f"{i + 1}.5")], [])
                await server.send(frame)
            await until(lambda: len(checks) == 21)
            assert all(mine == theirs for mine, theirs in checks)
            assert len({theirs for _, theirs in checks}) > 1

    run(main())


def test_callback_only_client_has_no_iteration() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            client = connect(config(server.url), buffer_events=False)
            seen: list[Event] = []
            client.on(None, seen.append)
            async with client:
                await client.subscribe("ticker", "BTC/USD", timeout=3)
                await until(lambda: any(isinstance(e, Ticker) for e in seen))
                with pytest.raises(LocalProtocolError, match="buffer_events=False"):
                    async for _ in client:
                        pass
                stats = client.stats
                assert stats.received == 0 and stats.queued == 0

    run(main())


# --------------------------------------------------------------------------- bad input


def test_bad_frames_become_protocol_errors_and_the_stream_continues() -> None:
    async def main() -> None:
        async with fake_kraken() as server, connect(config(server.url)) as client:
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            await server.send('{"channel":"ticker","data":[{"symbol":"BTC/USD","bid":NaN}]}')
            await server.send('{"channel":"tick')
            await server.ws.send_bytes(ticker("BTC/USD", bid="97.0").encode())
            await server.send(ticker("BTC/USD", bid="96.0"))
            events = await collect(
                client, lambda seen: any(getattr(e, "bid", None) == Decimal("96.0") for e in seen)
            )
            errors = [e for e in events if isinstance(e, ProtocolError)]
            assert len(errors) == 2
            assert errors[0].payload.startswith('{"channel":"ticker"')
            assert "malformed JSON" in errors[1].error
            assert [e.bid for e in events if isinstance(e, Ticker)] == [
                Decimal("99.0"),
                Decimal("97.0"),
                Decimal("96.0"),
            ]
            assert client.state is S.SUBSCRIBED

    run(main())


def test_oversized_message_ends_the_connection_and_it_heals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            cfg = config(server.url, max_message_size=1024)
            async with connect(cfg) as client:
                await client.subscribe("ticker", "BTC/USD", timeout=3)
                await server.send('{"channel":"heartbeat","pad":"' + "x" * 2000 + '"}')
                await client.wait_until(S.DEGRADED, timeout=3)
                await client.wait_until(S.SUBSCRIBED, timeout=3)
                assert client.stats.reconnects == 1
                assert server.accepted == 2

    with caplog.at_level(logging.INFO, logger="kraken_transports.aio"):
        run(main())
    assert any("reconnecting in" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- connection life


def test_server_drop_reconnects_and_resubscribes() -> None:
    async def main() -> None:
        async with fake_kraken() as server, connect(config(server.url)) as client:
            await client.subscribe("book", ["BTC/USD", "ETH/USD"], timeout=3)
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            first = server.ws
            drop(first)
            events = await collect(
                client,
                lambda seen: (
                    sum(isinstance(e, BookUpdate) and e.snapshot for e in seen) == 4
                    and states(seen)[-1:] == ["subscribed"]
                    and "degraded" in states(seen)
                ),
            )
            assert states(events) == [
                "connecting",
                "subscribing",
                "subscribed",
                "degraded",
                "connecting",
                "subscribing",
                "subscribed",
            ]
            degraded = next(
                e for e in events if isinstance(e, StateChanged) and e.new == "degraded"
            )
            assert "1006" in degraded.reason and degraded.delay == pytest.approx(0.05)
            assert client.stats.reconnects == 1
            assert len(server.connections) == 2
            resubscribed = [r["params"] for r in server.received[-2:]]
            assert resubscribed == [
                {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 10},
                {"channel": "ticker", "symbol": ["BTC/USD"]},
            ]
            for symbol in ("BTC/USD", "ETH/USD"):
                book = client.book(symbol)
                assert book is not None and book.is_live
                assert book.checksum() == server.books[symbol].checksum()

    run(main())


def test_close_1008_is_terminal_and_iteration_ends() -> None:
    async def main() -> None:
        async with fake_kraken() as server, connect(config(server.url)) as client:
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            await server.ws.close(code=1008, message=b"policy")
            events = await collect(client, lambda seen: False)  # ends by itself
            assert states(events)[-1] == "closed"
            closed = [e for e in events if isinstance(e, StateChanged)][-1]
            assert "1008" in closed.reason and "not retrying" in closed.reason
            assert client.state is S.CLOSED
            assert not client.running
            assert len(server.connections) == 1
            assert client.stats.reconnects == 0

    run(main())


def test_close_1001_reconnects() -> None:
    async def main() -> None:
        async with fake_kraken() as server, connect(config(server.url)) as client:
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            await server.ws.close(code=1001, message=b"maintenance")
            await client.wait_until(S.DEGRADED, timeout=3)
            await client.wait_until(S.SUBSCRIBED, timeout=3)
            assert len(server.connections) == 2
            assert client.stats.reconnects == 1

    run(main())


def test_stale_connection_is_replaced() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            cfg = config(server.url, stale_timeout=0.3)
            async with connect(cfg) as client:
                seen: list[StateChanged] = []
                client.on(StateChanged, seen.append)
                await client.subscribe("ticker", "BTC/USD", timeout=3)
                await client.wait_until(S.DEGRADED, timeout=3)
                assert seen[-1].reason.startswith("stale: no message from Kraken for 0.")
                await client.wait_until(S.SUBSCRIBED, timeout=3)
                assert len(server.connections) == 2
                # The client closed the stale socket itself, with code 1000.
                await until(lambda: server.connections[0].closed)
                assert server.connections[0].close_code == 1000

    run(main())


def test_connect_timeout_is_enforced_by_the_core() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            server.hold_handshake = True
            async with connect(config(server.url, timeout=0.2)) as client:
                events = await collect(client, lambda seen: "degraded" in states(seen))
                degraded = [e for e in events if isinstance(e, StateChanged)][-1]
                assert degraded.reason == "no connection within 0.2 s"
                await until(lambda: server.accepted >= 2)  # and it retried

    run(main())


def test_refused_connection_retries_with_backoff() -> None:
    async def main() -> None:
        cfg = config(
            free_port_url(),
            reconnect=ReconnectConfig(initial_delay=0.05, max_attempts=2, jitter=0.0),
        )
        async with connect(cfg) as client:
            events = await collect(client, lambda seen: False)
        changes = [e for e in events if isinstance(e, StateChanged)]
        assert [c.new for c in changes] == [
            "connecting",
            "degraded",
            "connecting",
            "degraded",
            "connecting",
            "closed",
        ]
        assert [c.delay for c in changes if c.new == "degraded"] == [0.05, 0.1]
        assert "gave up after 2 reconnect attempts" in changes[-1].reason
        assert client.stats.reconnects == 2

    run(main())


def test_pings_are_sent_and_answered() -> None:
    async def main() -> None:
        async with (
            fake_kraken() as server,
            connect(config(server.url, ping_interval=1.0)) as client,
        ):
            events = await collect(client, lambda seen: any(isinstance(e, Pong) for e in seen))
            pong = next(e for e in events if isinstance(e, Pong))
            assert pong.rtt is not None and pong.rtt >= 0
            assert server.received[0]["method"] == "ping"

    run(main())


# --------------------------------------------------------------------------- close


@pytest.mark.parametrize("where", ["connecting", "subscribed", "degraded", "never started"])
def test_close_returns_quickly_from_any_state(where: str) -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            url = server.url
            if where == "connecting":
                server.hold_handshake = True
            elif where == "degraded":
                url = free_port_url()
            client = connect(config(url, reconnect=ReconnectConfig(initial_delay=5.0)))
            if where != "never started":
                await client.start()
                target = {"connecting": S.CONNECTING, "subscribed": S.SUBSCRIBED}.get(
                    where, S.DEGRADED
                )
                await client.wait_until(target, timeout=3)
                if where == "connecting":
                    await until(lambda: server.accepted == 1)
            started = time.monotonic()
            await client.close()
            assert time.monotonic() - started < PROMPT
            assert client.state is S.CLOSED and not client.running
            await client.close()  # idempotent
            events = await collect(client, lambda seen: False, timeout=1)
            assert states(events)[-1] == "closed"
            if where == "subscribed":
                await until(lambda: server.ws.closed)
                assert server.ws.close_code == 1000

    run(main())


def test_async_with_closes_on_exception_and_cancellation() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            holder: list[AsyncClient] = []
            with pytest.raises(ZeroDivisionError):
                async with connect(config(server.url)) as client:
                    holder.append(client)
                    await client.wait_until(S.SUBSCRIBED, timeout=3)
                    _ = 1 / 0
            assert holder[0].state is S.CLOSED and not holder[0].running

            async def user() -> None:
                async with connect(config(server.url)) as client:
                    holder.append(client)
                    await asyncio.sleep(3600)

            task = asyncio.ensure_future(user())
            await until(lambda: len(holder) == 2 and holder[1].state is S.SUBSCRIBED)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < PROMPT
            assert holder[1].state is S.CLOSED and not holder[1].running
            await until(lambda: all(ws.closed for ws in server.connections))

    run(main())


def test_close_right_after_start_never_connects() -> None:
    async def main() -> None:
        async with fake_kraken() as server:
            client = connect(config(server.url))
            await client.start()
            await client.close()
            assert client.state is S.CLOSED and not client.running
            events = await collect(client, lambda seen: False, timeout=1)
            assert states(events) == ["connecting", "closed"]  # start() starts connecting
            await asyncio.sleep(0.05)
            assert server.accepted == 0

    run(main())


def test_delivery_rate_cap_paces_iteration() -> None:
    async def main() -> None:
        pacing = BackpressureConfig(max_messages_per_second=10.0)
        async with (
            fake_kraken() as server,
            connect(config(server.url, backpressure=pacing)) as client,
        ):
            await client.subscribe("trade", "BTC/USD", timeout=3)
            for _ in range(14):
                await server.send(server.trade("BTC/USD"))
            started = time.monotonic()
            events = await collect(
                client, lambda seen: sum(isinstance(e, Trade) for e in seen) == 15, timeout=5
            )
            elapsed = time.monotonic() - started
            assert [e.trade_id for e in events if isinstance(e, Trade)] == list(range(1, 16))
            # 21 events (3 state changes, status, an ack, 15 trades) at 10/s, burst 10.
            assert elapsed > 0.5
            assert client.stats.dropped == 0

    run(main())


def test_heartbeats_keep_the_connection_alive() -> None:
    async def main() -> None:
        async with (
            fake_kraken() as server,
            connect(config(server.url, stale_timeout=0.3)) as client,
        ):
            await client.subscribe("ticker", "BTC/USD", timeout=3)
            for _ in range(8):
                await asyncio.sleep(0.1)
                await server.send(HEARTBEAT)
            assert client.state is S.SUBSCRIBED
            assert len(server.connections) == 1

    run(main())


# --------------------------------------------------------------------------- end to end


SYMBOLS = ["BTC/USD", "ETH/USD"]


def sim_config(url: str, **overrides: Any) -> ClientConfig:
    """A configuration for the simulator: fast reconnects, a short stale timeout."""
    values: dict[str, Any] = {"stale_timeout": 1.5}
    values.update(overrides)
    return config(url, **values)


class BookChecker:
    """A BookUpdate callback checking, at each event, that the client's book is live and its
    checksum is the one the event carries; remembers the last checksum per symbol."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.last: dict[str, int] = {}
        self.snapshots: dict[str, int] = {}
        self.mismatches: list[str] = []
        client.on(BookUpdate, self)

    def __call__(self, event: BookUpdate) -> None:
        book = self.client.book(event.symbol)
        if book is None or not book.is_live or book.checksum() != event.checksum:
            self.mismatches.append(event.symbol)
        self.last[event.symbol] = event.checksum
        if event.snapshot:
            self.snapshots[event.symbol] = self.snapshots.get(event.symbol, 0) + 1

    def assert_books_match(self) -> None:
        """Every book is live and is exactly what its last update left (call between awaits)."""
        assert self.mismatches == []
        for symbol, checksum in self.last.items():
            book = self.client.book(symbol)
            assert book is not None and book.is_live
            assert book.checksum() == checksum


def test_sim_all_channels_with_verified_books() -> None:
    async def main() -> None:
        async with run_simulator(seed=1) as sim, connect(sim_config(sim.url)) as client:
            checker = BookChecker(client)
            acks = [
                *await client.subscribe("book", [*SYMBOLS, "XRP/USD"], depth=10, timeout=3),
                *await client.subscribe("ticker", SYMBOLS, timeout=3),
                *await client.subscribe("trade", SYMBOLS, timeout=3),
                *await client.subscribe("ohlc", SYMBOLS, interval=1, timeout=3),
            ]
            assert [(a.channel, a.symbol) for a in acks] == [
                ("book", "BTC/USD"),
                ("book", "ETH/USD"),
                ("book", "XRP/USD"),
                *[(channel, s) for channel in ("ticker", "trade", "ohlc") for s in SYMBOLS],
            ]
            assert isinstance(acks[0], Subscribed) and acks[0].result["depth"] == 10
            assert isinstance(acks[-1], Subscribed) and acks[-1].result["interval"] == 1

            def enough(seen: list[Event]) -> bool:
                kinds = {(type(e).__name__, getattr(e, "symbol", None)) for e in seen}
                wanted = {(k, s) for k in ("Ticker", "Trade", "OHLC") for s in SYMBOLS}
                updates = sum(isinstance(e, BookUpdate) and not e.snapshot for e in seen)
                return wanted <= kinds and updates >= 20

            events = await collect(client, enough, timeout=8)
            checker.assert_books_match()
            assert checker.snapshots == {"BTC/USD": 1, "ETH/USD": 1, "XRP/USD": 1}
            books = [e for e in events if isinstance(e, BookUpdate)]
            first = {e.symbol: e for e in reversed(books)}
            assert all(first[s].snapshot for s in first)
            btc = client.book("BTC/USD")
            assert btc is not None and len(btc.bids()) == 10 and len(btc.asks()) == 10
            best_bid, best_ask = btc.best_bid(), btc.best_ask()
            assert best_bid is not None and best_ask is not None
            assert best_bid.price < best_ask.price
            assert Decimal(50000) < best_bid.price < Decimal(80000)
            ticker_ = next(e for e in events if isinstance(e, Ticker))
            trade_ = next(e for e in events if isinstance(e, Trade))
            ohlc = next(e for e in events if isinstance(e, OHLC))
            for value in (ticker_.bid, ticker_.ask, ticker_.last, ticker_.volume, ticker_.vwap):
                assert isinstance(value, Decimal)
            assert ticker_.bid <= ticker_.ask
            assert isinstance(trade_.price, Decimal) and isinstance(trade_.qty, Decimal)
            assert trade_.side in ("buy", "sell") and trade_.qty > 0
            for name in ("open", "high", "low", "close", "volume", "vwap"):
                assert isinstance(getattr(ohlc, name), Decimal)
            assert ohlc.interval == 1
            assert ohlc.low <= ohlc.high
            assert states(events) == ["connecting", "subscribing", "subscribed"]
            assert not any(isinstance(e, ProtocolError) for e in events)
            stats = client.stats
            assert stats.frames_out == 4 and stats.reconnects == 0

    run(main(), timeout=15)


def test_sim_drop_reconnects_resubscribes_and_resnapshots() -> None:
    async def main() -> None:
        async with run_simulator(seed=3) as sim, connect(sim_config(sim.url)) as client:
            checker = BookChecker(client)
            await client.subscribe("book", SYMBOLS, timeout=3)
            await client.subscribe("trade", SYMBOLS, timeout=3)
            first = {"BTC/USD": 1, "ETH/USD": 1}
            events = await collect(client, lambda seen: checker.snapshots == first)
            await sim.inject(Drop())

            def healed(seen: list[Event]) -> bool:
                return (
                    "degraded" in states(seen)
                    and states(seen)[-1] == "subscribed"
                    and checker.snapshots == {"BTC/USD": 2, "ETH/USD": 2}
                )

            after = await collect(client, healed, timeout=5)
            assert states(after) == ["degraded", "connecting", "subscribing", "subscribed"]
            degraded = next(e for e in after if isinstance(e, StateChanged))
            assert "1006" in degraded.reason and degraded.retry == 1
            resubscribed = {(e.channel, e.symbol) for e in after if isinstance(e, Subscribed)}
            assert resubscribed == {(c, s) for c in ("book", "trade") for s in SYMBOLS}
            checker.assert_books_match()
            assert client.stats.reconnects == 1
            assert len(sim.connections) == 1
            assert events  # the first connection delivered its events too

    run(main())


def test_sim_stall_is_detected_as_stale_and_healed() -> None:
    async def main() -> None:
        async with run_simulator(seed=4) as sim, connect(sim_config(sim.url)) as client:
            checker = BookChecker(client)
            await client.subscribe("book", "BTC/USD", timeout=3)
            await collect(client, lambda seen: checker.snapshots == {"BTC/USD": 1})
            stalled_at = asyncio.get_running_loop().time()  # the client's clock
            await sim.inject(Stall())
            after = await collect(
                client,
                lambda seen: (
                    states(seen)[-1:] == ["subscribed"] and checker.snapshots.get("BTC/USD") == 2
                ),
                timeout=5,
            )
            changes = [e for e in after if isinstance(e, StateChanged)]
            assert [c.new for c in changes] == [
                "degraded",
                "connecting",
                "subscribing",
                "subscribed",
            ]
            assert changes[0].reason.startswith("stale: no message from Kraken for 1.")
            assert changes[0].received_at - stalled_at >= 1.3  # stale_timeout 1.5 s
            checker.assert_books_match()
            assert client.stats.reconnects == 1

    run(main())


def test_sim_close_1008_is_terminal() -> None:
    async def main() -> None:
        async with run_simulator(seed=5) as sim, connect(sim_config(sim.url)) as client:
            await client.subscribe("ticker", SYMBOLS, timeout=3)
            await sim.inject(Close(1008, "policy"))
            events = await collect(client, lambda seen: False, timeout=3)  # ends by itself
            assert states(events)[-2:] == ["subscribed", "closed"]
            assert "1008" in [e for e in events if isinstance(e, StateChanged)][-1].reason
            assert client.state is S.CLOSED and not client.running
            await asyncio.sleep(0.2)  # no retry comes
            assert client.stats.reconnects == 0 and sim.connections == []

    run(main())


def test_sim_corrupt_checksum_resyncs_that_symbol_only() -> None:
    async def main() -> None:
        async with run_simulator(seed=6) as sim, connect(sim_config(sim.url)) as client:
            checker = BookChecker(client)
            eth_live_during_resync: list[bool] = []

            def on_resync(event: BookResync) -> None:
                eth = client.book("ETH/USD")
                eth_live_during_resync.append(eth is not None and eth.is_live)

            client.on(BookResync, on_resync)
            await client.subscribe("book", SYMBOLS, timeout=3)
            await collect(client, lambda seen: sum(isinstance(e, BookUpdate) for e in seen) > 5)
            await sim.inject(CorruptChecksum("BTC/USD"))

            def done(seen: list[Event]) -> bool:
                resync = next((i for i, e in enumerate(seen) if isinstance(e, BookResync)), None)
                if resync is None:
                    return False
                later = seen[resync:]
                return (
                    states(later)[-1:] == ["subscribed"]
                    and any(
                        isinstance(e, BookUpdate) and e.symbol == "BTC/USD" and e.snapshot
                        for e in later
                    )
                    and any(isinstance(e, BookUpdate) and e.symbol == "ETH/USD" for e in later)
                )

            after = await collect(client, done, timeout=5)
            resyncs = [e for e in after if isinstance(e, BookResync)]
            assert [(r.symbol, r.attempt) for r in resyncs] == [("BTC/USD", 1)]
            assert resyncs[0].reason.startswith("checksum mismatch")
            assert eth_live_during_resync == [True]
            assert checker.snapshots == {"BTC/USD": 2, "ETH/USD": 1}
            assert states(after) == ["resyncing", "subscribed"]
            checker.assert_books_match()
            assert client.stats.reconnects == 0

    run(main())


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (MalformedFrame(), ("malformed JSON",)),
        (TruncatedFrame(), ("malformed JSON", "truncated")),
        (RateLimit(), ("Exceeded msg rate",)),
    ],
)
def test_sim_bad_frames_become_protocol_errors(fault: object, expected: tuple[str, ...]) -> None:
    async def main() -> None:
        async with run_simulator(seed=7) as sim, connect(sim_config(sim.url)) as client:
            checker = BookChecker(client)
            await client.subscribe("book", "BTC/USD", timeout=3)
            await client.subscribe("trade", "BTC/USD", timeout=3)
            await collect(client, lambda seen: checker.snapshots == {"BTC/USD": 1})
            await sim.inject(fault)  # type: ignore[arg-type]

            def done(seen: list[Event]) -> bool:
                errors = [i for i, e in enumerate(seen) if isinstance(e, ProtocolError)]
                if not errors:
                    return False
                return sum(isinstance(e, BookUpdate) for e in seen[errors[0] :]) >= 3

            after = await collect(client, done, timeout=5)
            errors = [e for e in after if isinstance(e, ProtocolError)]
            assert len(errors) == 1
            assert all(part in errors[0].error for part in expected)
            assert errors[0].payload
            # The connection stayed up (a truncated book frame may cost a resync, no more).
            assert client.stats.reconnects == 0
            assert "degraded" not in states(after)
            expected_types = {
                BookUpdate,
                Trade,
                ProtocolError,
                BookResync,
                StateChanged,
                Subscribed,
                SubscriptionResult,
            }
            assert {type(e) for e in after} - expected_types == set()
            checker.assert_books_match()

    run(main())


def _consume_slowly(client: AsyncClient, seen: list[Event], delay: float) -> Awaitable[None]:
    async def consume() -> None:
        async for event in client:
            seen.append(event)
            await asyncio.sleep(delay)

    return asyncio.ensure_future(consume())


@pytest.mark.parametrize("policy", list(DropPolicy))
def test_sim_backpressure_accounting(policy: DropPolicy) -> None:
    async def main() -> None:
        backpressure = BackpressureConfig(max_queue_depth=8, drop_policy=policy)
        async with run_simulator(seed=8) as sim:
            client = connect(sim_config(sim.url, backpressure=backpressure))
            produced: list[Event] = []
            client.on(None, produced.append)
            seen: list[Event] = []
            async with client:
                await client.subscribe("book", SYMBOLS, timeout=3)
                await client.subscribe("ticker", SYMBOLS, timeout=3)
                await client.subscribe("trade", SYMBOLS, timeout=3)
                consumer = _consume_slowly(client, seen, 0.03)
                await until(lambda: client.stats.dropped + client.stats.coalesced > 0, 15)
                stats = client.stats
                assert (
                    stats.received
                    == stats.delivered + stats.dropped + stats.coalesced + stats.queued
                )
                # Control events (state, acks) do not count against the bound; once the
                # consumer is past them the queue holds at most max_queue_depth.
                await until(lambda: client.stats.queued <= 8, 5)
            await asyncio.wait_for(consumer, 3)  # drains the buffer, then ends
            stats = client.stats
            assert stats.queued == 0
            assert stats.received == len(produced)
            assert stats.received == stats.delivered + stats.dropped + stats.coalesced
            assert stats.dropped + stats.coalesced > 0
            delivered = [e for e in seen if not isinstance(e, Dropped)]
            summaries = [e for e in seen if isinstance(e, Dropped)]
            assert len(delivered) == stats.delivered
            assert sum(d.dropped for d in summaries) == stats.dropped
            assert sum(d.coalesced for d in summaries) == stats.coalesced
            assert {d.policy for d in summaries} == {policy.value}
            if policy is DropPolicy.COALESCE:
                assert stats.coalesced > 0
            else:
                assert stats.coalesced == 0
            if policy is DropPolicy.LATEST:  # the first events made it, later ones were refused
                assert delivered[:3] == produced[:3]
            else:  # OLDEST and COALESCE keep the newest: the final state change got through
                assert states(delivered)[-1] == "closed"

    run(main(), timeout=15)


def test_sim_coalesce_never_merges_trades() -> None:
    async def main() -> None:
        backpressure = BackpressureConfig(
            max_queue_depth=10_000, drop_policy=DropPolicy.COALESCE, coalesce_window=1.0
        )
        async with run_simulator(seed=9) as sim:
            client = connect(sim_config(sim.url, backpressure=backpressure))
            produced: list[Event] = []
            client.on(None, produced.append)
            seen: list[Event] = []
            async with client:
                await client.subscribe("book", SYMBOLS, timeout=3)
                await client.subscribe("ticker", SYMBOLS, timeout=3)
                await client.subscribe("trade", SYMBOLS, timeout=3)
                consumer = _consume_slowly(client, seen, 0.02)
                # Trades come in bursts: wait for enough of them, not for a fixed time.
                await until(lambda: sum(isinstance(e, Trade) for e in produced) > 5, 15)
            await asyncio.wait_for(consumer, 10)
            stats = client.stats
            assert stats.dropped == 0 and stats.coalesced > 0
            assert stats.received == stats.delivered + stats.coalesced
            trades_in = [(e.symbol, e.trade_id) for e in produced if isinstance(e, Trade)]
            trades_out = [(e.symbol, e.trade_id) for e in seen if isinstance(e, Trade)]
            assert len(trades_in) > 5
            assert trades_out == trades_in
            books_in = sum(isinstance(e, BookUpdate) for e in produced)
            books_out = sum(isinstance(e, BookUpdate) for e in seen)
            tickers_in = sum(isinstance(e, Ticker) for e in produced)
            tickers_out = sum(isinstance(e, Ticker) for e in seen)
            assert books_in + tickers_in - books_out - tickers_out == stats.coalesced

    run(main(), timeout=40)


# --------------------------------------------------------------------------- the timer


def ready_client(cfg: ClientConfig, loop: asyncio.AbstractEventLoop, **kind: bool) -> AsyncClient:
    """A client whose protocol is connected by hand (no socket): frames are fed to its
    driver as the connection task would feed them."""
    client = AsyncClient(cfg, **kind)
    client._io.loop = loop
    now = loop.time()
    client.protocol.connect(now)
    client.protocol.connection_made(now)
    return client


async def feed(client: AsyncClient, *frames: str) -> None:
    """Hand ``frames`` to the driver as one read, then let the loop run its callbacks."""
    loop = asyncio.get_running_loop()
    for frame in frames:
        client._driver.received(frame, loop.time())
    await asyncio.sleep(0)


def test_the_timer_is_re_armed_once_per_loop_iteration_even_to_an_earlier_deadline() -> None:
    # Under GapPolicy.BUFFER a sequence gap sets a deadline (the buffer's timeout) with no
    # action but an Emit(GapDetected): whatever input moves the deadline, the timer follows
    # before the loop next waits, with no assumption about which events can move it.
    async def main() -> None:
        cfg = config(
            "wss://example.invalid/v2",
            api_key="KEY123",
            api_secret="c2VjcmV0c2VjcmV0",
            stale_timeout=30.0,
            gap_policy=GapPolicy.BUFFER,
            gap_buffer_timeout=0.5,
        )
        loop = asyncio.get_running_loop()
        client = ready_client(cfg, loop, private=True)
        proto = client.protocol
        seen: list[Event] = []
        client.on(None, seen.append)
        now = loop.time()
        proto.token_received("WS-TOKEN-0123456789abcdef", now)
        _, actions = proto.subscribe("executions", None, now)
        (send,) = [a for a in actions if hasattr(a, "text")]
        req_id = json.loads(send.text)["req_id"]

        def executions(sequence: int, snapshot: bool = False) -> str:
            kind = "snapshot" if snapshot else "update"
            frame = {"channel": "executions", "type": kind, "data": [], "sequence": sequence}
            return json.dumps(frame)

        await feed(client, ack("executions", None, req_id), executions(1, snapshot=True))
        io = client._io
        armed_at = io.timer_at
        assert io.timer is not None and armed_at == proto.next_deadline()
        await feed(client, HEARTBEAT, HEARTBEAT)  # later deadlines: the armed timer stays
        assert io.timer_at == armed_at
        await feed(client, executions(3))
        assert [type(e) for e in seen][-1] is GapDetected
        deadline = proto.next_deadline()
        assert deadline is not None and deadline < armed_at  # the gap buffer's timeout
        assert io.timer is not None and io.timer_at == deadline
        io.timer.cancel()

    run(main())


def test_a_fired_timer_is_never_left_due() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        cfg = config("wss://example.invalid/v2", stale_timeout=30.0, ping_interval=10.0)
        client = ready_client(cfg, loop)
        io = client._io
        await feed(client, STATUS, trade("BTC/USD", 1))
        timer = io.timer
        assert timer is not None
        timer.cancel()
        io._on_timer()  # early: harmless, and the next deadline is armed again
        await asyncio.sleep(0)
        assert io.timer is not None and io.timer_at > loop.time()
        assert io.timer_at == client.protocol.next_deadline()
        io.timer.cancel()

    run(main())


# --------------------------------------------------------------------------- batching


class BufferedWS:
    """Stands for an aiohttp WebSocket holding ``count`` parsed messages: ``receive()``
    returns each at once (never suspending), then a close."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.close_code = 1000
        self.closed = False

    async def receive(self) -> WSMessage:
        if self.left:
            self.left -= 1
            return WSMessage(WSMsgType.TEXT, "{}", None)
        self.closed = True
        return WSMessage(WSMsgType.CLOSE, 1000, None)


def reading(
    count: int, on_message: Callable[[AioTransport, int], None]
) -> tuple[AioTransport, list[int], Coroutine[Any, Any, None]]:
    """A transport whose driver only counts messages (``on_message(io, n)`` after the n-th),
    and the coroutine of its read loop over ``count`` buffered messages."""
    driver = Driver(config("ws://127.0.0.1:1/v2"))
    io = AioTransport(driver, None)
    io.begin(asyncio.get_running_loop())
    handled: list[int] = []

    def received(payload: str | bytes, now: float) -> None:
        handled.append(len(handled) + 1)
        on_message(io, len(handled))

    driver.received = received  # type: ignore[method-assign]
    driver.lost = lambda now, exc, close_code=None: None  # type: ignore[method-assign]
    conn = io.conn = _Connection("ws://127.0.0.1:1/v2")
    return io, handled, io._read(conn, BufferedWS(count))  # type: ignore[arg-type]


def test_the_read_loop_works_off_what_aiohttp_holds_and_lets_the_loop_run_every_256() -> None:
    async def main() -> None:
        ran_at: list[int] = []
        _, handled, read = reading(600, lambda io, n: None)
        loop = asyncio.get_running_loop()

        def tick() -> None:
            ran_at.append(len(handled))
            if len(ran_at) < 3:
                loop.call_soon(tick)

        loop.call_soon(tick)
        await read
        assert len(handled) == 600
        assert ran_at == [256, 512]  # the loop ran between batches, not per message

    run(main())


def test_interrupt_lets_the_loop_run_after_the_message_in_hand() -> None:
    async def main() -> None:
        ran_at: list[int] = []
        loop = asyncio.get_running_loop()

        def on_message(io: AioTransport, n: int) -> None:
            if n == 10:  # as another thread does (threaded.py): schedule, then interrupt
                loop.call_soon(lambda: ran_at.append(n_handled()))
                io.interrupt = True

        io, handled, read = reading(300, on_message)

        def n_handled() -> int:
            return len(handled)

        await read
        assert ran_at == [10]
        assert not io.interrupt

    run(main())


def test_readers_are_woken_once_per_sleep_not_per_message() -> None:
    async def main() -> None:
        wakes: list[int] = []
        driver = Driver(config("ws://127.0.0.1:1/v2"))
        io = AioTransport(driver, None, wake_readers=lambda: wakes.append(1))
        io.begin(asyncio.get_running_loop())
        for _ in range(3):
            io.performed()
        assert len(wakes) == 1
        io.woken = False  # a reader goes to sleep
        for _ in range(3):
            io.performed()
        assert len(wakes) == 2
        io.finish()  # the end always wakes them
        assert len(wakes) == 3 and io.done

    run(main())
