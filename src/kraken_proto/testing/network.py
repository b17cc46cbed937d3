"""The in-memory network: the fake clock, the sockets, and the loop that moves time."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from kraken_proto.actions import CloseConnection, FetchToken, Send
from kraken_proto.config import ClientConfig, ReconnectConfig
from kraken_proto.errors import AuthenticationError, LocalProtocolError, WaitTimeoutError
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import CaptureLine
from kraken_proto.simulator import SIM_API_KEY, SIM_API_SECRET, ExchangeConnection
from kraken_proto.testing.peers import Peer, ProtocolClient

__all__ = ["DEFAULT_WAIT", "FakeClock", "InMemoryKraken", "Socket", "deterministic_config"]

DEFAULT_WAIT = 30.0
"""Fake seconds :meth:`InMemoryKraken.run_until` waits unless told otherwise (the drivers'
default timeout)."""

_ABNORMAL = 1006  # the close code every driver reports for a connection dropped without one


def _fake_seconds(value: float, name: str) -> float:
    """``value`` checked as a span of fake seconds: a finite number >= 0 (an endless span
    would never return while the market runs)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of fake seconds, got {value!r}")
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


def deterministic_config(**overrides: Any) -> ClientConfig:
    """A :class:`~kraken_proto.ClientConfig` for deterministic tests: the simulator's
    credentials, pings off, a seeded backoff without jitter; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "ping_interval": None,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(0),
    }
    fields.update(overrides)
    return ClientConfig(**fields)


class FakeClock:
    """The one clock of an in-memory network, in seconds; only the network moves it."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        """The current fake time."""

    def __call__(self) -> float:
        """The current fake time (a clock is a callable, like ``time.monotonic``)."""
        return self.now


class _Closed:
    """A close on the server side, queued behind the frames sent before it."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Socket:
    """One in-memory WebSocket between a :class:`Peer` and the server.

    ``send`` queues a frame for the server; ``close`` ends the socket from the client's
    side (the server forgets it; frames in flight are lost).
    """

    def __init__(self, network: InMemoryKraken, peer: Peer, number: int) -> None:
        self.network = network
        self.peer = peer
        self.number = number
        """Which socket of the network this is (1, 2, ... in the order opened)."""
        self.open = True
        """False once either side closed it."""
        self.server: ExchangeConnection | None = None
        """The simulator's session of this socket (``None`` on a capture)."""
        self.inbox: deque[str | _Closed] = deque()
        self.outbox: list[str] = []

    def send(self, text: str) -> bool:
        """Queue ``text`` for the server; False (nothing sent) once the socket is closed."""
        if not self.open:
            return False
        self.peer.frames.append(CaptureLine(self.network.clock.now, "out", text))
        self.outbox.append(text)
        return True

    def close(self) -> None:
        """Close from the client's side; idempotent."""
        if self.open:
            self.network._end(self)


class InMemoryKraken:
    """What both in-memory networks share: the fake clock, the peers, the sockets, and the
    loop that moves time (see :mod:`kraken_proto.testing`)."""

    def __init__(self, start: float = 0.0) -> None:
        self.clock = FakeClock(start)
        """The fake clock (``network.now`` reads it)."""
        self.peers: list[Peer] = []
        """Every client, in the order added."""
        self.sockets: list[Socket] = []
        """The open sockets, oldest first."""
        self.busy = 0
        """Above 0 while the network delivers (client code running now runs in a callback)."""
        self._tasks: deque[Callable[[float], None]] = deque()
        self._opened = 0

    @property
    def now(self) -> float:
        """The current fake time."""
        return self.clock.now

    def connect(self, protocol: KrakenProtocol, *, start: bool = True) -> ProtocolClient:
        """Add ``protocol`` as a client (:class:`ProtocolClient`); with ``start`` it starts
        connecting now (subscribe first, or call ``client.connect()`` later)."""
        client = ProtocolClient(self, protocol)
        self.add(client)
        if start:
            client.connect()
        return client

    def add(self, peer: Peer) -> None:
        """Add a client (a :class:`Peer`)."""
        self.peers.append(peer)

    # ------------------------------------------------------------------ what peers ask for

    def open(self, peer: Peer) -> None:
        """Open a socket for ``peer`` (its ``opened`` is called once the current batch is
        performed, then the server's greeting arrives)."""
        self._opened += 1
        socket = Socket(self, peer, self._opened)
        peer.socket = socket
        self.sockets.append(socket)
        self._tasks.append(lambda now: self._opening(socket, now))

    def fetch_token(self, peer: Peer, action: FetchToken) -> None:
        """Answer ``action``'s token request in memory (once the current batch is performed)."""
        self._tasks.append(lambda now: peer.token(action, self._token(action, now), now))

    # ------------------------------------------------------------------ the server's side

    def _opening(self, socket: Socket, now: float) -> None:
        """The socket's connect completes, unless the client closed it meanwhile."""
        if socket.open:
            self._accept(socket, now)

    def _accept(self, socket: Socket, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _token(
        self, action: FetchToken, now: float
    ) -> str | AuthenticationError:  # pragma: no cover
        raise NotImplementedError

    def _to_server(self, socket: Socket, text: str, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _server_deadline(self) -> float | None:  # pragma: no cover
        raise NotImplementedError

    def _server_timer(self, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _forget(self, socket: Socket, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _end(self, socket: Socket) -> None:
        """Close ``socket`` for both sides; frames in flight are lost."""
        socket.open = False
        socket.inbox.clear()
        socket.outbox.clear()
        self.sockets.remove(socket)
        self._forget(socket, self.clock.now)

    def _deliver(self, socket: Socket, actions: list[Any]) -> None:
        """Queue what the server did for the client, in order."""
        for action in actions:
            if type(action) is Send:
                socket.inbox.append(action.text)
            elif type(action) is CloseConnection:
                socket.inbox.append(_Closed(action.code, action.reason))
            else:  # Drop: the TCP connection aborted
                socket.inbox.append(_Closed(_ABNORMAL, ""))

    # ------------------------------------------------------------------ moving time

    def wall_time(self) -> float:
        """The wall-clock time (Unix seconds) the fake time stands for."""
        return self.clock.now

    def settle(self) -> None:
        """Deliver everything in flight at the current time, both ways, until quiet."""
        self.busy += 1
        try:
            self._settle()
        finally:
            self.busy -= 1

    def _settle(self) -> None:
        now = self.clock.now
        tasks = self._tasks
        while True:
            busy = False
            while tasks:
                tasks.popleft()(now)
                busy = True
            for socket in list(self.sockets):
                inbox = socket.inbox
                peer = socket.peer
                while inbox:
                    busy = True
                    item = inbox.popleft()
                    if type(item) is str:
                        peer.frames.append(CaptureLine(now, "in", item))
                        peer.message(item, now)
                    else:
                        self._end(socket)
                        peer.lost(now, item.code)  # type: ignore[union-attr]
            for socket in list(self.sockets):
                if socket.outbox:
                    busy = True
                    sending, socket.outbox = socket.outbox, []
                    for text in sending:
                        self._to_server(socket, text, now)
            if not busy:
                return

    def next_deadline(self) -> float | None:
        """When the next timer of either side is due (``None``: nothing will ever happen
        unless a client acts)."""
        deadline = self._server_deadline()
        for peer in self.peers:
            due = peer.next_deadline()
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def _outside_callbacks(self, call: str) -> None:
        """Refuse to move the clock from code the network is running (a callback): the
        frames being delivered would arrive after time moved on."""
        if self.busy:
            raise LocalProtocolError(
                f"{call} cannot run inside a callback: the network is delivering at "
                f"t={self.clock.now:g}; move time from the test, after the call returns"
            )

    def step(self, limit: float) -> bool:
        """Run the next thing due (a timer of either side) if it is due by ``limit``; False
        (the clock moved to ``limit``) when nothing is. Raises
        :class:`~kraken_proto.errors.LocalProtocolError` inside a callback."""
        self._outside_callbacks("step()")
        self.settle()
        deadline = self.next_deadline()
        if deadline is None or deadline > limit:
            self.clock.now = max(self.clock.now, limit)
            return False
        now = self.clock.now = max(self.clock.now, deadline)
        self.busy += 1
        try:
            for peer in self.peers:  # the client's timers first, as kraken_proto.replay does
                due = peer.next_deadline()
                if due is not None and due <= now:
                    peer.timer(now)
            server = self._server_deadline()
            if server is not None and server <= now:
                self._server_timer(now)
        finally:
            self.busy -= 1
        self.settle()
        return True

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead, running everything due on the way in time order.
        ``seconds`` must be finite and >= 0; not inside a callback
        (:class:`~kraken_proto.errors.LocalProtocolError`)."""
        self._outside_callbacks("advance()")
        until = self.clock.now + _fake_seconds(seconds, "seconds")
        while self.step(until):
            pass

    def run_until(self, predicate: Callable[[], object], timeout: float = DEFAULT_WAIT) -> float:
        """Run until ``predicate()`` is true (checked after each thing that happens); the
        fake time it took. Raises :class:`~kraken_proto.errors.WaitTimeoutError` after
        ``timeout`` fake seconds (finite, >= 0); not inside a callback."""
        self._outside_callbacks("run_until()")
        start = self.clock.now
        until = start + _fake_seconds(timeout, "timeout")
        self.settle()
        while not predicate():
            if not self.step(until):
                if predicate():
                    break
                raise WaitTimeoutError(
                    f"the condition did not become true within {timeout:g} s of fake time",
                    state="in memory",
                )
        return self.clock.now - start
