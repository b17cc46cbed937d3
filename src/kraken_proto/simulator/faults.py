"""Faults the fake exchange can inject into one connection, as frozen msgspec Structs.

Inject one at once with :meth:`ExchangeConnection.inject
<kraken_proto.simulator.exchange.ExchangeConnection.inject>`, or schedule it with
:meth:`FakeExchange.schedule <kraken_proto.simulator.exchange.FakeExchange.schedule>` /
:meth:`ExchangeConnection.schedule
<kraken_proto.simulator.exchange.ExchangeConnection.schedule>`. Each fault acts on the one
connection it is given to; market data on other connections is untouched.

:class:`Drop` is both a fault and the server action it causes: a driver that receives a
``Drop`` action aborts the TCP connection without a close frame.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Close",
    "CorruptChecksum",
    "Drop",
    "Fault",
    "LoseResponse",
    "MalformedFrame",
    "RateLimit",
    "RevokeTokens",
    "SequenceGap",
    "SlowSender",
    "Stall",
    "TokenError",
    "TruncatedFrame",
]

ABNORMAL_CLOSURE = 1006
"""The close code a WebSocket peer reports when the TCP connection ended without a close frame."""


class Drop(msgspec.Struct, frozen=True):
    """Abort the TCP connection at once: no close frame, nothing more is sent.

    As a fault it makes the connection return a ``Drop`` action; the client sees the
    connection end abnormally (its WebSocket library reports code 1006). Unsent frames
    (including those held back by :class:`SlowSender`) are lost.
    """


class Close(msgspec.Struct, frozen=True):
    """Close the WebSocket with ``code`` (and ``reason``): a clean close frame.

    Use 1001 (going away, e.g. maintenance) or 1008 (policy violation; a client must treat
    it as terminal). Code 1006 cannot be sent in a close frame, so ``Close(1006)`` acts as
    :class:`Drop`. Frames not yet sent are discarded.
    """

    code: int = 1001
    reason: str = ""

    def __post_init__(self) -> None:
        """Reject codes outside the WebSocket range 1000-4999."""
        if not 1000 <= self.code <= 4999:
            raise ValueError(f"Close.code must be in 1000..4999, got {self.code}")


class Stall(msgspec.Struct, frozen=True):
    """Go silent for ``duration`` seconds (``None``: until the connection ends).

    The socket stays open, but the server sends nothing (market data, heartbeats,
    responses) and ignores every client message. Market data that happened meanwhile is
    not replayed afterwards, so a book subscribed on this connection fails its next
    checksum, as after a server-side gap. The idle timeout is suspended while stalled.
    """

    duration: float | None = None

    def __post_init__(self) -> None:
        """Reject a negative duration."""
        if self.duration is not None and self.duration < 0:
            raise ValueError(f"Stall.duration must be >= 0, got {self.duration}")


class CorruptChecksum(msgspec.Struct, frozen=True):
    """The next book or level3 message (snapshot or update) for ``symbol`` has a wrong checksum.

    The levels are correct; only the ``checksum`` number is changed, so a client that
    verifies checksums must detect it and resynchronise that symbol.
    """

    symbol: str


MALFORMED_TEXT = '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":63000.0,}]}'
"""The default text of :class:`MalformedFrame`: the trailing comma makes it invalid JSON."""


class MalformedFrame(msgspec.Struct, frozen=True):
    """Send one text frame that is not valid JSON (``text``), at once."""

    text: str = MALFORMED_TEXT


class TruncatedFrame(msgspec.Struct, frozen=True):
    """Cut the next frame the connection sends in half (the rest is never sent).

    Whatever frame comes next (a book update, a heartbeat, an ack) arrives as its first
    half only: invalid JSON, and the message it carried is lost.
    """


RATE_LIMIT_TEXT = '{"Error":"Exceeded msg rate"}'
"""What Kraken sends when a client floods it (note the capital ``E``)."""


class RateLimit(msgspec.Struct, frozen=True):
    """Send Kraken's flood error frame ``{"Error":"Exceeded msg rate"}`` at once."""


class SlowSender(msgspec.Struct, frozen=True):
    """Hold back every frame by ``delay`` seconds for ``duration`` seconds (None: for good).

    Nothing is lost or reordered: frames leave in order, each ``delay`` seconds after it was
    due, so a client sees stale data arriving late and in bursts.
    """

    delay: float
    duration: float | None = None

    def __post_init__(self) -> None:
        """Reject negative times."""
        if self.delay < 0:
            raise ValueError(f"SlowSender.delay must be >= 0, got {self.delay}")
        if self.duration is not None and self.duration < 0:
            raise ValueError(f"SlowSender.duration must be >= 0, got {self.duration}")


class SequenceGap(msgspec.Struct, frozen=True):
    """Skip one ``sequence`` number on the next message of a private ``channel``.

    ``channel`` is ``executions`` or ``balances``. The message itself is sent (with the
    sequence number after the skipped one), so a client that tracks sequences sees a gap.
    """

    channel: str = "executions"

    def __post_init__(self) -> None:
        """Reject channels without a sequence."""
        if self.channel not in ("executions", "balances"):
            raise ValueError(
                f"SequenceGap.channel must be 'executions' or 'balances', got {self.channel!r}"
            )


class LoseResponse(msgspec.Struct, frozen=True):
    """Do not send the next trading response (of ``method``, or of any trading method).

    The request still takes effect: the order is placed, amended or cancelled and its
    execution reports are sent; only the response frame is lost, as when an answer is lost
    in flight. A client waiting for it must time out and report an unknown outcome.
    """

    method: str | None = None


class TokenError(msgspec.Struct, frozen=True):
    """The next ``count`` token requests (``GetWebSocketsToken``) fail with ``error``.

    It acts on the exchange (tokens are issued per API key, not per socket): applying it
    through any connection, or with :meth:`FakeExchange.inject_token_error
    <kraken_proto.simulator.exchange.FakeExchange.inject_token_error>`, sets the failures
    to come (it does not add to the ones already pending).
    """

    error: str = "EAPI:Invalid key"
    count: int = 1

    def __post_init__(self) -> None:
        """Reject a count below one."""
        if self.count < 1:
            raise ValueError(f"TokenError.count must be >= 1, got {self.count}")


class RevokeTokens(msgspec.Struct, frozen=True):
    """Every token issued so far becomes invalid, on every connection.

    Streams already subscribed go on; the next private subscribe gets
    ``ESession:Invalid session`` and the next trading request ``EAPI:Invalid token``. It acts
    on the exchange, like :class:`TokenError` (also :meth:`FakeExchange.revoke_tokens
    <kraken_proto.simulator.exchange.FakeExchange.revoke_tokens>`).
    """


Fault = (
    Close
    | Drop
    | Stall
    | CorruptChecksum
    | MalformedFrame
    | TruncatedFrame
    | RateLimit
    | SlowSender
    | SequenceGap
    | LoseResponse
    | TokenError
    | RevokeTokens
)
"""Every fault type."""
