"""The connection state machine: states, triggers, and the one table of transitions.

No other module writes a transition: :class:`~kraken_proto.protocol.KrakenProtocol` asks
:func:`transition` for the next state and emits one ``StateChanged`` per call.
"""

from __future__ import annotations

import enum

from kraken_proto.errors import LocalProtocolError

__all__ = ["TRANSITIONS", "ConnectionState", "Trigger", "transition"]


class ConnectionState(enum.Enum):
    """Where the connection is in its life cycle."""

    DISCONNECTED = "disconnected"
    """Created, ``connect()`` not called yet."""
    CONNECTING = "connecting"
    """Waiting for the driver to open the WebSocket."""
    AUTHENTICATING = "authenticating"
    """Open; waiting for a WebSocket token (private connections only)."""
    SUBSCRIBING = "subscribing"
    """Open; the subscriptions were sent and some acks are outstanding."""
    SUBSCRIBED = "subscribed"
    """Every subscription was answered; data is flowing."""
    RESYNCING = "resyncing"
    """Subscribed, but at least one book is being rebuilt from a fresh snapshot."""
    DEGRADED = "degraded"
    """The connection failed; a reconnect is scheduled after a backoff delay."""
    CLOSED = "closed"
    """Closed by the user, by a terminal error, or after the retry budget was spent."""


class Trigger(enum.Enum):
    """What can move the connection from one state to another."""

    CONNECT = "connect"
    RETRY = "retry"
    OPENED_PUBLIC = "opened_public"
    OPENED_PRIVATE = "opened_private"
    AUTHENTICATED = "authenticated"
    SETTLED = "settled"
    RESYNC_STARTED = "resync_started"
    RESYNC_FINISHED = "resync_finished"
    FAILED = "failed"
    GIVE_UP = "give_up"
    CLOSE = "close"


_S = ConnectionState
_T = Trigger
_OPEN = (_S.AUTHENTICATING, _S.SUBSCRIBING, _S.SUBSCRIBED, _S.RESYNCING)

TRANSITIONS: dict[tuple[ConnectionState, Trigger], ConnectionState] = {
    (_S.DISCONNECTED, _T.CONNECT): _S.CONNECTING,
    (_S.CLOSED, _T.CONNECT): _S.CONNECTING,
    (_S.DEGRADED, _T.CONNECT): _S.CONNECTING,
    (_S.DEGRADED, _T.RETRY): _S.CONNECTING,
    (_S.CONNECTING, _T.OPENED_PUBLIC): _S.SUBSCRIBING,
    (_S.CONNECTING, _T.OPENED_PRIVATE): _S.AUTHENTICATING,
    (_S.AUTHENTICATING, _T.AUTHENTICATED): _S.SUBSCRIBING,
    (_S.SUBSCRIBING, _T.SETTLED): _S.SUBSCRIBED,
    (_S.SUBSCRIBED, _T.RESYNC_STARTED): _S.RESYNCING,
    (_S.RESYNCING, _T.RESYNC_FINISHED): _S.SUBSCRIBED,
    **{(state, _T.FAILED): _S.DEGRADED for state in (_S.CONNECTING, *_OPEN)},
    **{(state, _T.GIVE_UP): _S.CLOSED for state in (_S.CONNECTING, *_OPEN, _S.DEGRADED)},
    **{(state, _T.CLOSE): _S.CLOSED for state in _S if state is not _S.CLOSED},
}
"""Every allowed ``(state, trigger) -> next state``. Anything absent is a caller error."""


def transition(state: ConnectionState, trigger: Trigger) -> ConnectionState:
    """Return the state that ``trigger`` leads to from ``state``.

    Raises :class:`LocalProtocolError` when the table has no such transition.
    """
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise LocalProtocolError(
            f"{trigger.value!r} is not possible in state {state.value!r}"
        ) from None
