"""The clients of an in-memory network: :class:`Peer` (what the network calls, and what
it recorded) and :class:`ProtocolClient` (a sans-IO ``KrakenProtocol`` performing its
actions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from kraken_proto.actions import Action, CloseConnection, Emit, FetchToken, OpenConnection, Send
from kraken_proto.book import OrderBook
from kraken_proto.errors import AuthenticationError
from kraken_proto.events import Event
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import CaptureLine, encode_capture_line
from kraken_proto.replay import replay as replay_capture

if TYPE_CHECKING:
    from kraken_proto.testing.network import InMemoryKraken, Socket

__all__ = ["Peer", "ProtocolClient"]

E = TypeVar("E")


class Peer:
    """A client of an :class:`InMemoryKraken`: what the network calls, and what it recorded.

    A subclass performs the client's side: :meth:`opened`, :meth:`message`, :meth:`lost`,
    :meth:`timer` (at :meth:`next_deadline`) and :meth:`token`. ``host`` is the endpoint it
    connects to (``public``, ``auth`` or ``level3``).
    """

    def __init__(self, network: InMemoryKraken, host: str) -> None:
        self.network = network
        self.host = host
        self.socket: Socket | None = None
        """The current socket (``None`` before the first connect and after a loss)."""
        self.events: list[Event] = []
        """Every event the client produced, in order."""
        self.frames: list[CaptureLine] = []
        """Every frame sent (``out``) and received (``in``), at its fake time."""

    # ------------------------------------------------------------------ the client's side

    def next_deadline(self) -> float | None:  # pragma: no cover - every peer overrides it
        """When :meth:`timer` is due next."""
        raise NotImplementedError

    def timer(self, now: float) -> None:  # pragma: no cover
        """The deadline came."""
        raise NotImplementedError

    def opened(self, now: float) -> None:  # pragma: no cover
        """The socket asked for is open (``self.socket``)."""
        raise NotImplementedError

    def message(self, text: str, now: float) -> None:  # pragma: no cover
        """One frame arrived."""
        raise NotImplementedError

    def lost(self, now: float, close_code: int) -> None:  # pragma: no cover
        """The server closed (``close_code``) or dropped (1006) the socket (set ``socket``
        to ``None``)."""
        raise NotImplementedError

    def token(
        self, action: FetchToken, answer: str | AuthenticationError, now: float
    ) -> None:  # pragma: no cover
        """The token request of ``action`` was answered."""
        raise NotImplementedError

    # ------------------------------------------------------------------ what it recorded

    def of(self, kind: type[E]) -> list[E]:
        """The recorded events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def capture(self) -> list[str]:
        """The frames as capture lines (``kraken_proto.replay``'s format, tokens redacted)."""
        return [encode_capture_line(f.t, f.dir, f.text) for f in self.frames]

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """The requests the client sent, decoded (those of ``method`` only, if given)."""
        sent = [msgspec.json.decode(f.text) for f in self.frames if f.dir == "out"]
        return [r for r in sent if method is None or r.get("method") == method]

    def book_at(self, symbol: str, t: float) -> OrderBook | None:
        """``symbol``'s L2 book as this client held it at fake time ``t`` (after the frames
        received up to and including ``t``): the frames replayed through a fresh protocol.
        ``None`` if it had no book of ``symbol`` then."""
        lines = [
            encode_capture_line(f.t, "in", f.text)
            for f in self.frames
            if f.dir == "in" and f.t <= t
        ]
        return replay_capture(lines).protocol.book(symbol)


class ProtocolClient(Peer):
    """A :class:`~kraken_proto.KrakenProtocol` on the network: performs its actions.

    Make it with :meth:`InMemoryKraken.connect`. ``protocol`` is the protocol; call its
    methods through :meth:`perform` (``client.perform(proto.subscribe(...)[1])``) or the
    shortcuts :meth:`subscribe` and :meth:`submit`, which use the network's clock.
    """

    def __init__(self, network: InMemoryKraken, protocol: KrakenProtocol) -> None:
        super().__init__(network, protocol.host.value)
        self.protocol = protocol
        """The client's protocol."""

    def perform(self, actions: list[Action]) -> None:
        """Perform ``actions`` (from a protocol call made at the network's ``now``), then
        let the network deliver what they caused."""
        self._perform(actions)
        self.network.settle()

    def connect(self) -> None:
        """Start connecting now."""
        self.perform(self.protocol.connect(self.network.clock.now))

    def close(self) -> None:
        """Close the protocol now."""
        self.perform(self.protocol.close(self.network.clock.now))

    def subscribe(self, channel: str, symbols: Iterable[str] | None = None, **params: Any) -> int:
        """``protocol.subscribe`` now, performed; its ``req_id``."""
        names = None if symbols is None else list(symbols)
        req_id, actions = self.protocol.subscribe(channel, names, self.network.clock.now, **params)
        self.perform(actions)
        return req_id

    def submit(self, request: Any) -> int:
        """``protocol.submit`` (a trading request) now, performed; its ``req_id``."""
        req_id, actions = self.protocol.submit(request, self.network.clock.now)
        self.perform(actions)
        return req_id

    def _perform(self, actions: list[Action]) -> None:
        network = self.network
        for action in actions:
            kind = type(action)
            if kind is Emit:
                self.events.append(action.event)  # type: ignore[union-attr]
            elif kind is Send:
                if self.socket is not None:
                    self.socket.send(action.text)  # type: ignore[union-attr]
            elif kind is OpenConnection:
                network.open(self)
            elif kind is CloseConnection:
                if self.socket is not None:
                    self.socket.close()
                    self.socket = None
            elif kind is FetchToken:
                network.fetch_token(self, action)  # type: ignore[arg-type]

    def next_deadline(self) -> float | None:
        """The protocol's next deadline."""
        return self.protocol.next_deadline()

    def timer(self, now: float) -> None:
        """Fire the protocol's timers."""
        self._perform(self.protocol.handle_timer(now))

    def opened(self, now: float) -> None:
        """The socket opened."""
        self._perform(self.protocol.connection_made(now))

    def message(self, text: str, now: float) -> None:
        """Feed one frame."""
        self._perform(self.protocol.receive_data(text, now))

    def lost(self, now: float, close_code: int) -> None:
        """The server closed or dropped the socket."""
        self.socket = None
        self._perform(self.protocol.connection_lost(now, None, close_code=close_code))

    def token(self, action: FetchToken, answer: str | AuthenticationError, now: float) -> None:
        """Hand the token (or its failure) to the protocol."""
        proto = self.protocol
        if isinstance(answer, AuthenticationError):
            actions = proto.token_failed(
                answer.error, now, terminal=answer.terminal, connection=action.connection
            )
        else:
            actions = proto.token_received(answer, now, connection=action.connection)
        self._perform(actions)
