"""Actions: what the protocol asks its driver to do, as frozen msgspec Structs.

Every input of :class:`~kraken_proto.protocol.KrakenProtocol` returns the actions it caused,
in order. A driver performs them in that order and does nothing else on its own.
"""

from __future__ import annotations

import msgspec

from kraken_proto.auth import TokenRequest, redact_token
from kraken_proto.events import Event
from kraken_proto.http import HttpRequest

__all__ = [
    "Action",
    "CloseConnection",
    "Emit",
    "FetchToken",
    "HttpRequest",
    "OpenConnection",
    "ReconnectAfter",
    "Send",
]


class OpenConnection(msgspec.Struct, frozen=True):
    """Open a WebSocket to ``url``; then call ``connection_made`` or ``connection_lost``."""

    url: str


class Send(msgspec.Struct, frozen=True):
    """Send ``text`` as one WebSocket text message.

    ``repr`` hides the WebSocket token that private requests carry.
    """

    text: str

    def __repr__(self) -> str:
        return f"Send(text={redact_token(self.text)!r})"

    def __rich_repr__(self) -> list[tuple[str, str]]:
        return [("text", redact_token(self.text))]


class Emit(msgspec.Struct, frozen=True):
    """Deliver ``event`` to the user."""

    event: Event


class ReconnectAfter(msgspec.Struct, frozen=True):
    """The connection is down; the protocol will ask for a new one in ``delay`` seconds.

    Informational: the reconnect itself arrives as an ``OpenConnection`` from
    ``handle_timer`` at ``next_deadline()``, so a driver needs no timer of its own. Drivers
    may log it or show it.
    """

    delay: float
    reason: str


class CloseConnection(msgspec.Struct, frozen=True):
    """Close the WebSocket with ``code`` and ``reason`` (or abort a pending connect).

    The protocol has already updated its state; a later ``connection_lost`` for this
    socket is accepted and ignored.
    """

    code: int
    reason: str


class FetchToken(msgspec.Struct, frozen=True):
    """Fetch a WebSocket token; answer with ``token_received``.

    ``request.build(time.time())`` gives the signed HTTP request to perform: the nonce needs
    the wall clock, which only the driver has. ``connection`` identifies the connection
    that asked: hand it back to ``token_received``/``token_failed`` and an answer that
    arrives after that connection is gone is dropped by the protocol.
    """

    request: TokenRequest
    connection: int = 0


Action = OpenConnection | Send | Emit | ReconnectAfter | CloseConnection | FetchToken
"""Every action type the protocol returns."""
