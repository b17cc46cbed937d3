"""A recorded capture played in memory: :class:`RecordedKraken`."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable

import msgspec

from kraken_proto.actions import FetchToken
from kraken_proto.errors import AuthenticationError, LocalProtocolError
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import REPLAY_TOKEN, read_capture
from kraken_proto.testing.network import InMemoryKraken, Socket
from kraken_proto.testing.peers import ProtocolClient

__all__ = ["RecordedKraken"]


class RecordedKraken(InMemoryKraken):
    """A recorded capture played in memory on its own timestamps, with the API of
    :class:`SimulatedKraken`: the clock starts at the first ``in`` frame's time and each
    frame reaches every open socket at its time (each client connected then sees the
    recorded connection; frames due while no socket is open are lost, as live).

    A capture holds Kraken's side only, so a client's protocol must be in replay mode
    (``KrakenProtocol(config, replay=True)``; ``MemoryClient`` is). A subscribe or
    unsubscribe request the client sends is answered by the capture's own acknowledgement
    of that channel and symbol, given the client's ``req_id``, so code that waits for its
    answer works unchanged (each client gets its own); acknowledgements nobody asked for are
    adopted (replay mode), and frames that are not valid JSON reach the client unchanged.
    Token requests get :data:`~kraken_proto.replay.REPLAY_TOKEN`. A protocol connected at
    the start sees exactly the events :func:`kraken_proto.replay.replay` gives.
    """

    def __init__(self, source: str | os.PathLike[str] | Iterable[str]) -> None:
        lines = [line for line in read_capture(source) if line.dir == "in"]
        super().__init__(lines[0].t if lines else 0.0)
        self.lines = lines
        """The capture's incoming frames."""
        self.position = 0
        """How many of them are delivered (or lost) so far."""
        self._asked: dict[Socket, dict[tuple[str, str, str | None], deque[int]]] = {}
        """Per open socket: the ``req_id`` of each request sent, by (method, channel, symbol)."""

    def connect(self, protocol: KrakenProtocol, *, start: bool = True) -> ProtocolClient:
        """Add ``protocol`` as a client (see :meth:`InMemoryKraken.connect`); it must be in
        replay mode (``LocalProtocolError`` otherwise: a live protocol would refuse every
        acknowledgement it did not ask for)."""
        if not protocol.is_replay:
            raise LocalProtocolError(
                "a capture needs a protocol in replay mode: KrakenProtocol(config, replay=True)"
            )
        return super().connect(protocol, start=start)

    def finish(self) -> None:
        """Play the rest of the capture: the clock moves to its last frame's time."""
        if self.lines:
            self.advance(max(0.0, self.lines[-1].t - self.clock.now))

    def _accept(self, socket: Socket, now: float) -> None:
        socket.peer.opened(now)

    def _token(self, action: FetchToken, now: float) -> str | AuthenticationError:
        return REPLAY_TOKEN

    def _to_server(self, socket: Socket, text: str, now: float) -> None:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return
        if not isinstance(request, dict) or request.get("method") not in _CALLS:
            return
        params = request.get("params")
        req_id = request.get("req_id")
        if not isinstance(params, dict) or not isinstance(req_id, int):
            return
        symbols = params.get("symbol")
        names: list[str | None] = list(symbols) if isinstance(symbols, list) else [None]
        asked = self._asked.setdefault(socket, {})
        for name in names:
            key = (request["method"], str(params.get("channel")), name)
            asked.setdefault(key, deque()).append(req_id)

    def _server_deadline(self) -> float | None:
        lines = self.lines
        return lines[self.position].t if self.position < len(lines) else None

    def _server_timer(self, now: float) -> None:
        lines = self.lines
        while self.position < len(lines) and lines[self.position].t <= now:
            text = lines[self.position].text
            self.position += 1
            for socket in self.sockets:
                asked = self._asked.get(socket)
                socket.inbox.append(text if asked is None else _answer(text, asked))

    def _forget(self, socket: Socket, now: float) -> None:
        self._asked.pop(socket, None)


def _answer(text: str, asked: dict[tuple[str, str, str | None], deque[int]]) -> str:
    """``text`` with the client's ``req_id`` if it acknowledges a request in ``asked``."""
    if '"method":"' not in text:
        return text
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text  # the client's protocol reports it, as replay() does
    if not isinstance(message, dict):
        return text
    result = message.get("result")
    if message.get("method") not in _CALLS or not isinstance(result, dict):
        return text
    key = (message["method"], str(result.get("channel")), result.get("symbol"))
    waiting = asked.get(key)
    if not waiting:
        return text
    message["req_id"] = waiting.popleft()
    return msgspec.json.encode(message).decode()


_CALLS = ("subscribe", "unsubscribe")
