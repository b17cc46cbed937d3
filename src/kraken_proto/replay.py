"""Record and replay: the capture format and a deterministic replay through the core.

A capture is JSON Lines, one object per WebSocket message:
``{"t": <seconds>, "dir": "in" | "out", "text": "<the exact frame>"}``. Replaying feeds
every ``in`` frame to a fresh :class:`KrakenProtocol` in replay mode (it adopts the
subscriptions the capture acknowledges, which a live protocol never does) at its recorded
time, so the same capture always yields the same events::

    result = replay("capture.jsonl")
    assert not result.of_type(ProtocolError)
    book = result.protocol.book("BTC/USD")
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from kraken_proto.actions import Action, Emit, FetchToken, OpenConnection, Send
from kraken_proto.auth import redact_token
from kraken_proto.config import ClientConfig
from kraken_proto.errors import LocalProtocolError, ParseError
from kraken_proto.events import Event
from kraken_proto.protocol import KrakenProtocol

__all__ = [
    "REPLAY_TOKEN",
    "CaptureLine",
    "ReplayResult",
    "encode_capture_line",
    "read_capture",
    "replay",
]

E = TypeVar("E")


class CaptureLine(msgspec.Struct, frozen=True):
    """One recorded WebSocket message: time in seconds, direction, exact text."""

    t: float
    dir: str
    text: str


_line_decoder = msgspec.json.Decoder(CaptureLine)
_line_encoder = msgspec.json.Encoder()


def encode_capture_line(t: float, direction: str, text: str) -> str:
    """One capture line (without the newline) for a message sent or received at ``t``.

    The WebSocket token of private requests is written as ``"***"``: captures are shared.
    """
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    return _line_encoder.encode(CaptureLine(t, direction, redact_token(text))).decode()


def read_capture(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[CaptureLine]:
    """Read capture lines from a path or from an iterable of lines (blank lines skipped).

    Raises :class:`ParseError` naming the line number of a line that is not a capture line.
    """
    if isinstance(source, (str, os.PathLike)):
        with Path(source).open(encoding="utf-8") as handle:
            yield from read_capture(list(handle))
        return
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            entry = _line_decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ParseError(f"capture line {number}: {exc}", line[:200]) from None
        if entry.dir not in ("in", "out"):
            raise ParseError(f"capture line {number}: dir must be 'in' or 'out'", line[:200])
        yield entry


class ReplayResult:
    """What a replay produced: every action in order, the events, and the protocol."""

    def __init__(self, protocol: KrakenProtocol, actions: list[Action]) -> None:
        self.protocol = protocol
        """The protocol after the last frame (query its books and subscriptions)."""
        self.actions = actions
        """Every action the protocol returned, in order."""
        self.events: list[Event] = [a.event for a in actions if isinstance(a, Emit)]
        """The emitted events, in order."""
        self.sent: list[str] = [a.text for a in actions if isinstance(a, Send)]
        """What the protocol asked to send (pings, resync requests)."""

    def of_type(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


REPLAY_TOKEN = "***"
"""The token a replay hands to a private protocol (captures never hold the real one)."""


def replay(
    source: str | os.PathLike[str] | Iterable[str],
    config: ClientConfig | None = None,
    *,
    protocol: KrakenProtocol | None = None,
) -> ReplayResult:
    """Feed every incoming frame of a capture through a protocol at its recorded time.

    Timers due between frames fire first, exactly as a driver would fire them. Outgoing
    (``out``) lines are not fed: the protocol produces its own requests, reported in
    :attr:`ReplayResult.sent`. The default config turns pings off (a capture cannot answer
    them) and seeds the backoff jitter, so even a replay with reconnects is deterministic.

    The protocol runs in replay mode (``KrakenProtocol(..., replay=True)``): a capture
    holds Kraken's side only, so subscriptions it acknowledges and books it snapshots are
    adopted without a request. A ``protocol`` passed in must have been built that way, e.g.
    ``protocol=KrakenProtocol(config, private=True, replay=True)`` for a capture of a
    private or level3 connection (any well-formed credentials will do: nothing is
    fetched); token requests are answered with :data:`REPLAY_TOKEN`.

    Raises:
        LocalProtocolError: ``protocol`` is not in replay mode (a live-mode protocol would
            refuse every acknowledgement of the capture as unsolicited).
    """
    if protocol is None:
        if config is None:
            config = ClientConfig(ping_interval=None, rng=random.Random(0))
        protocol = KrakenProtocol(config, replay=True)
    elif not protocol.is_replay:
        raise LocalProtocolError(
            "replay() needs a protocol built with replay=True (KrakenProtocol(config, "
            "replay=True)): only a replaying protocol adopts the subscriptions a capture "
            "acknowledges"
        )
    actions: list[Action] = []
    started = False

    def run(produced: list[Action], now: float) -> None:
        # A replay has no network: a reconnect the protocol asks for succeeds at once, and
        # so does a token fetch (captures hold no token: "***" stands in for it).
        actions.extend(produced)
        for action in produced:
            if isinstance(action, OpenConnection):
                run(protocol.connection_made(now), now)
            elif isinstance(action, FetchToken):
                run(protocol.token_received(REPLAY_TOKEN, now), now)

    for line in read_capture(source):
        if line.dir != "in":
            continue
        now = line.t
        if not started:
            run(protocol.connect(now), now)
            started = True
        deadline = protocol.next_deadline()
        while deadline is not None and deadline <= now:
            run(protocol.handle_timer(deadline), deadline)
            following = protocol.next_deadline()
            if following == deadline:
                break
            deadline = following
        run(protocol.receive_data(line.text, now), now)
    return ReplayResult(protocol, actions)
