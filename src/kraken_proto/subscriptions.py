"""Subscriptions: parameter validation, the per-symbol records, their status table, and the
public query view.

A subscription is keyed by ``(channel, symbol)`` (``symbol`` is ``None`` for channels
without symbols). The record outlives connections: it is replayed after every reconnect.
Its :class:`SubscriptionStatus` changes only through :data:`SUBSCRIPTION_TRANSITIONS`
(:meth:`Subscription.move`), the way the connection's state changes only through
:data:`kraken_proto.state.TRANSITIONS`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from kraken_proto.errors import LocalProtocolError
from kraken_proto.host import Host

__all__ = [
    "BOOK_CHANNELS",
    "BOOK_DEPTHS",
    "CHANNELS_BY_HOST",
    "LEVEL3_DEPTHS",
    "OHLC_INTERVALS",
    "PRIVATE_CHANNELS",
    "PUBLIC_CHANNELS",
    "SUBSCRIPTION_TRANSITIONS",
    "SYMBOL_CHANNELS",
    "Subscription",
    "SubscriptionInfo",
    "SubscriptionStatus",
    "SubscriptionTrigger",
    "SubscriptionsView",
    "book_depth_for",
    "group_requests",
    "subscription_transition",
    "unsubscribe_params",
    "validate_subscription",
    "validate_unsubscription",
]

PUBLIC_CHANNELS = frozenset({"ticker", "trade", "book", "ohlc", "instrument"})
"""Channels served by the public host."""
PRIVATE_CHANNELS = frozenset({"executions", "balances", "level3"})
"""Channels that need a token (and the auth or level3 host)."""
SYMBOL_CHANNELS = frozenset({"ticker", "trade", "book", "ohlc", "level3"})
"""Channels subscribed per symbol, with one ack per symbol."""
BOOK_CHANNELS = frozenset({"book", "level3"})
"""Channels that keep a book per symbol (L2 and L3)."""
CHANNELS_BY_HOST: dict[Host, frozenset[str]] = {
    Host.PUBLIC: PUBLIC_CHANNELS,
    Host.AUTH: frozenset({"executions", "balances"}),
    Host.LEVEL3: frozenset({"level3"}),
}
"""Which channels each host serves (Kraken refuses the others with a wrong-host error)."""
_HOST_HINT = {
    Host.PUBLIC: "a public connection (KrakenProtocol())",
    Host.AUTH: "a private connection (KrakenProtocol(config, private=True))",
    Host.LEVEL3: "a level3 connection (KrakenProtocol(config, level3=True))",
}
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
"""The depths Kraken accepts for the book channel."""
LEVEL3_DEPTHS = (10, 100, 1000)
"""The depths Kraken accepts for the level3 channel."""
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
"""The candle intervals (minutes) Kraken accepts."""

_ALLOWED_PARAMS: dict[str, frozenset[str]] = {
    "ticker": frozenset({"event_trigger", "snapshot"}),
    "trade": frozenset({"snapshot"}),
    "book": frozenset({"depth", "snapshot"}),
    "ohlc": frozenset({"interval", "snapshot"}),
    "instrument": frozenset({"snapshot"}),
    "executions": frozenset(
        {"snap_orders", "snap_trades", "order_status", "ratecounter", "rebased", "users"}
    ),
    "balances": frozenset({"snapshot", "rebased", "users"}),
    "level3": frozenset({"depth", "snapshot"}),
}
_BOOLEAN_PARAMS = (
    "snapshot",
    "snap_orders",
    "snap_trades",
    "order_status",
    "ratecounter",
    "rebased",
)
# Parameters that identify a subscription server-side and so must be echoed on unsubscribe.
_ECHOED = ("depth", "interval")


class SubscriptionStatus(enum.Enum):
    """Where one subscription stands."""

    PENDING = "pending"
    """Requested (or waiting for a connection); no ack yet."""
    ACTIVE = "active"
    """Acknowledged by Kraken."""
    UNSUBSCRIBING = "unsubscribing"
    """The user asked to unsubscribe; waiting for the ack."""
    FAILED = "failed"
    """Refused by Kraken, not acknowledged in time, or given up after resyncs."""


class SubscriptionTrigger(enum.Enum):
    """What can move one subscription from one status to another."""

    SUBSCRIBE = "subscribe"
    """The user subscribes (a new record, or again after a failure)."""
    ADOPT = "adopt"
    """Replay only: Kraken's side of a capture shows a subscription never requested here."""
    ACKED = "acked"
    """Kraken acknowledged a subscribe request of this key."""
    REFUSED = "refused"
    """Kraken refused a subscribe request of this key."""
    TIMED_OUT = "timed_out"
    """A subscribe request of this key was not answered within ``ack_timeout``."""
    RESYNC = "resync"
    """The stream (a book, a sequenced private stream) is resubscribed for a fresh snapshot."""
    GIVE_UP = "give_up"
    """The resync budget is spent."""
    UNSUBSCRIBE = "unsubscribe"
    """The user unsubscribes while connected; Kraken's answer is awaited."""
    UNSUBSCRIBED = "unsubscribed"
    """The subscription ends: Kraken's answer (or its absence) to an unsubscribe, or an
    unsubscribe while disconnected. The record is forgotten."""
    CONNECTION_LOST = "connection_lost"
    """The connection failed or was closed."""
    RESUBSCRIBE = "resubscribe"
    """A new connection opened (and authenticated) and the record is sent again."""


_P = SubscriptionStatus.PENDING
_A = SubscriptionStatus.ACTIVE
_U = SubscriptionStatus.UNSUBSCRIBING
_F = SubscriptionStatus.FAILED
_ST = SubscriptionTrigger
_KEPT = (_P, _A, _F)  # every status but UNSUBSCRIBING: the user still wants these

SUBSCRIPTION_TRANSITIONS: dict[
    tuple[SubscriptionStatus | None, SubscriptionTrigger], SubscriptionStatus | None
] = {
    (None, _ST.SUBSCRIBE): _P,
    (_F, _ST.SUBSCRIBE): _P,
    (None, _ST.ADOPT): _A,
    **{(status, _ST.ACKED): _A for status in _KEPT},
    (_U, _ST.ACKED): _U,  # a late ack: the user's unsubscribe stands
    **{(status, _ST.REFUSED): _F for status in _KEPT},
    (_U, _ST.REFUSED): _U,
    **{(status, _ST.TIMED_OUT): _F for status in _KEPT},
    (_U, _ST.TIMED_OUT): _U,
    **{(status, _ST.RESYNC): _P for status in _KEPT},
    **{(status, _ST.GIVE_UP): _F for status in _KEPT},
    **{(status, _ST.UNSUBSCRIBE): _U for status in _KEPT},
    **{(status, _ST.UNSUBSCRIBED): None for status in SubscriptionStatus},
    (_P, _ST.CONNECTION_LOST): _P,
    (_A, _ST.CONNECTION_LOST): _P,
    (_F, _ST.CONNECTION_LOST): _F,
    (_U, _ST.CONNECTION_LOST): None,  # the user asked to stop it: it is simply not resent
    (_P, _ST.RESUBSCRIBE): _P,
    (_F, _ST.RESUBSCRIBE): _P,  # only failures of our own making are retried
}
"""Every allowed ``(status, trigger) -> next status`` of one subscription; ``None`` stands
for "no record" (before ``SUBSCRIBE``/``ADOPT``, after it is forgotten). Anything absent is
not possible: the user's calls that would need it raise ``LocalProtocolError``."""


def subscription_transition(
    status: SubscriptionStatus | None, trigger: SubscriptionTrigger
) -> SubscriptionStatus | None:
    """Return the status ``trigger`` leads to from ``status`` (``None``: no record).

    Raises :class:`LocalProtocolError` when the table has no such transition.
    """
    try:
        return SUBSCRIPTION_TRANSITIONS[(status, trigger)]
    except KeyError:
        where = "no subscription" if status is None else f"status {status.value!r}"
        raise LocalProtocolError(f"{trigger.value!r} is not possible for {where}") from None


class SubscriptionInfo(msgspec.Struct, frozen=True):
    """A snapshot of one subscription for the ``subscriptions`` query.

    ``params`` are the parameters sent to Kraken (``depth`` includes any headroom);
    ``depth`` is the user's own book depth.
    """

    channel: str
    symbol: str | None
    status: SubscriptionStatus
    params: dict[str, Any]
    depth: int | None = None
    error: str | None = None


class SubscriptionsView(msgspec.Struct, frozen=True):
    """Every subscription by status, in the order they were requested."""

    active: tuple[SubscriptionInfo, ...]
    pending: tuple[SubscriptionInfo, ...]
    failed: tuple[SubscriptionInfo, ...]
    unsubscribing: tuple[SubscriptionInfo, ...] = ()


class Subscription:
    """The protocol's mutable record of one subscription (internal to the core)."""

    __slots__ = (
        "channel",
        "error",
        "local_failure",
        "params",
        "resync_count",
        "resync_window_start",
        "status",
        "symbol",
        "user_depth",
    )

    def __init__(
        self,
        channel: str,
        symbol: str | None,
        params: dict[str, Any],
        user_depth: int | None,
        trigger: SubscriptionTrigger = SubscriptionTrigger.SUBSCRIBE,
    ) -> None:
        status = subscription_transition(None, trigger)
        assert status is not None  # SUBSCRIBE or ADOPT: a record comes to be
        self.channel = channel
        self.symbol = symbol
        self.params = params
        self.user_depth = user_depth
        self.status = status
        self.error: str | None = None
        # True when the failure was ours (ack timeout, resync budget): retried on reconnect.
        self.local_failure = False
        self.resync_count = 0
        self.resync_window_start = 0.0

    @property
    def key(self) -> tuple[str, str | None]:
        """``(channel, symbol)``."""
        return (self.channel, self.symbol)

    def move(self, trigger: SubscriptionTrigger) -> SubscriptionStatus | None:
        """Apply ``trigger`` through :data:`SUBSCRIPTION_TRANSITIONS`; return the new status,
        ``None`` when the record is to be forgotten (its status is then left as it was)."""
        new = subscription_transition(self.status, trigger)
        if new is not None:
            self.status = new
        return new

    def info(self) -> SubscriptionInfo:
        """The immutable public view of this record."""
        return SubscriptionInfo(
            channel=self.channel,
            symbol=self.symbol,
            status=self.status,
            params=dict(self.params),
            depth=self.user_depth,
            error=self.error,
        )


def book_depth_for(user_depth: int, headroom: int) -> int:
    """The depth to subscribe so that ``user_depth + headroom`` levels are kept."""
    wanted = user_depth + headroom
    for depth in BOOK_DEPTHS:
        if depth >= wanted:
            return depth
    return BOOK_DEPTHS[-1]


_SYMBOLS_TYPES = "a str or an iterable of str (like 'BTC/USD' or ['BTC/USD', 'ETH/USD'])"


def _check_symbols(channel: str, symbols: Sequence[str] | str | None) -> tuple[str | None, ...]:
    if channel not in SYMBOL_CHANNELS:
        if symbols:
            raise LocalProtocolError(f"channel {channel!r} takes no symbols; pass symbols=None")
        return (None,)
    if isinstance(symbols, str):
        symbols = [symbols]
    elif isinstance(symbols, bytes | bytearray) or not isinstance(symbols, Iterable | None):
        kind = type(symbols).__name__
        raise LocalProtocolError(f"symbols must be {_SYMBOLS_TYPES}, not {kind} {symbols!r}")
    if not symbols:
        raise LocalProtocolError(f"channel {channel!r} needs at least one symbol like 'BTC/USD'")
    seen: list[str] = []
    for symbol in symbols:
        if not isinstance(symbol, str):
            kind = type(symbol).__name__
            raise LocalProtocolError(
                f"symbols must be {_SYMBOLS_TYPES}; got {kind} {symbol!r} in it"
            )
        if symbol.count("/") != 1 or symbol.strip() != symbol:
            raise LocalProtocolError(
                f"symbol {symbol!r} is not a v2 pair name like 'BTC/USD' (BASE/QUOTE)"
            )
        if symbol not in seen:
            seen.append(symbol)
    return tuple(seen)


def validate_unsubscription(
    channel: str,
    symbols: Sequence[str] | str | None,
    params: dict[str, Any],
    host: Host | str = Host.PUBLIC,
) -> tuple[str | None, ...]:
    """Check an unsubscribe call (parameters optional: they come from the subscription)."""
    _check_channel(channel, params, Host(host))
    return _check_symbols(channel, symbols)


def _check_channel(channel: str, params: dict[str, Any], host: Host) -> frozenset[str]:
    allowed = _ALLOWED_PARAMS.get(channel)
    if allowed is None:
        known = sorted(_ALLOWED_PARAMS)
        raise LocalProtocolError(f"unknown channel {channel!r}; the channels are {known}")
    if channel not in CHANNELS_BY_HOST[host]:
        owner = next(h for h, channels in CHANNELS_BY_HOST.items() if channel in channels)
        raise LocalProtocolError(
            f"channel {channel!r} is not served on this {host.value} connection; "
            f"subscribe it on {_HOST_HINT[owner]}"
        )
    unknown = set(params) - allowed
    if unknown:
        raise LocalProtocolError(
            f"channel {channel!r} does not take {sorted(unknown)}; it takes {sorted(allowed)}"
        )
    return allowed


def validate_subscription(
    channel: str,
    symbols: Sequence[str] | str | None,
    params: dict[str, Any],
    depth_headroom: int,
    host: Host | str = Host.PUBLIC,
) -> tuple[tuple[str | None, ...], dict[str, Any], int | None]:
    """Check a subscribe call on a ``host`` connection (a :class:`Host` or its value);
    return ``(symbols, wire params, user depth)``.

    Raises :class:`LocalProtocolError` naming the bad argument.
    """
    _check_channel(channel, params, Host(host))
    checked = _check_symbols(channel, symbols)
    wire: dict[str, Any] = {}
    user_depth: int | None = None
    for name in _BOOLEAN_PARAMS:
        if name in params:
            if not isinstance(params[name], bool):
                raise LocalProtocolError(f"{name} must be True or False, not {params[name]!r}")
            wire[name] = params[name]
    if "users" in params:
        if params["users"] != "all":
            raise LocalProtocolError(
                f"users must be 'all' (master accounts), not {params['users']!r}"
            )
        wire["users"] = "all"
    if channel == "level3":
        user_depth = params.get("depth", 10)
        if type(user_depth) is not int or user_depth not in LEVEL3_DEPTHS:
            raise LocalProtocolError(
                f"level3 depth must be one of {LEVEL3_DEPTHS}, not {user_depth!r}"
            )
        wire["depth"] = user_depth
    elif channel == "book":
        user_depth = params.get("depth", 10)
        if type(user_depth) is not int or user_depth not in BOOK_DEPTHS:
            raise LocalProtocolError(f"book depth must be one of {BOOK_DEPTHS}, not {user_depth!r}")
        wire["depth"] = book_depth_for(user_depth, depth_headroom)
    elif channel == "ohlc":
        interval = params.get("interval")
        if type(interval) is not int or interval not in OHLC_INTERVALS:
            raise LocalProtocolError(
                f"ohlc needs interval= one of {OHLC_INTERVALS} (minutes), not {interval!r}"
            )
        wire["interval"] = interval
    elif channel == "ticker" and "event_trigger" in params:
        trigger = params["event_trigger"]
        if trigger not in ("trades", "bbo"):
            raise LocalProtocolError(f"event_trigger must be 'trades' or 'bbo', not {trigger!r}")
        wire["event_trigger"] = trigger
    return checked, wire, user_depth


def unsubscribe_params(params: dict[str, Any]) -> dict[str, Any]:
    """The subset of subscribe parameters Kraken needs to find the subscription again."""
    return {name: params[name] for name in _ECHOED if name in params}


def group_requests(
    records: Iterable[Subscription],
) -> list[tuple[str, dict[str, Any], list[Subscription]]]:
    """Group records into one request per ``(channel, params)``, in first-seen order."""
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[Subscription]] = {}
    for record in records:
        key = (record.channel, tuple(sorted(record.params.items())))
        groups.setdefault(key, []).append(record)
    return [(channel, dict(params), members) for (channel, params), members in groups.items()]
