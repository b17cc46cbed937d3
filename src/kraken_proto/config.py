"""Client configuration: frozen, validated at construction, secrets never shown.

Every duration is in float seconds. ``None`` means "unlimited" or "disabled", as each field
says. An invalid value raises :class:`~kraken_proto.errors.ConfigurationError` whose
``field`` names the offending field (``"reconnect.max_delay"`` for a nested one).

Nested configurations and enums may also be given as plain data (a mapping for
``reconnect``/``backpressure``/each precision, the enum's string value for a policy), so a
configuration can be loaded from JSON, TOML or keyword overrides; they are converted on
construction and the attributes always hold the typed values.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import ipaddress
import math
import os
import random
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kraken_proto.errors import ConfigurationError

__all__ = [
    "BackpressureConfig",
    "ClientConfig",
    "DropPolicy",
    "GapPolicy",
    "MIN_PING_INTERVAL",
    "Precision",
    "RateTier",
    "ReconnectConfig",
    "is_loopback_url",
]

_MAX_PRECISION = 18

MIN_PING_INTERVAL = 1.0
"""The shortest ``ClientConfig.ping_interval`` accepted, in seconds.

A ping exists to keep Kraken's idle close (about 60 s without a client message) away and to
measure the round trip; Kraken itself proves it is alive with a heartbeat every second.
Pinging more often than that heartbeat tells nothing new about the connection, while each
ping spends a slot of the outgoing message budget (``max_requests_per_second``) that
subscribes, unsubscribes and resyncs need: an interval of a millisecond once queued
thousands of pings in front of a subscribe that never left.
"""
_SYMBOL_RE = re.compile(r"[^/\s]+/[^/\s]+")
_E = TypeVar("_E", bound=enum.Enum)
_N = TypeVar("_N")
_C = TypeVar("_C", bound="ClientConfig")


class DropPolicy(enum.Enum):
    """What to do when the event queue is full (see :class:`BackpressureConfig`).

    - ``OLDEST``: drop the oldest queued event to make room for the new one.
    - ``LATEST``: drop the incoming event, keep what is queued.
    - ``COALESCE``: replace a queued event of the same kind and symbol (e.g. a ticker) with
      the newer one; events that cannot be coalesced fall back to ``OLDEST``.
    """

    OLDEST = "oldest"
    LATEST = "latest"
    COALESCE = "coalesce"


class RateTier(enum.Enum):
    """Kraken's per-pair trading rate counter tiers (KRAKEN-V2.md section 10).

    ``threshold`` is the counter value at which orders are refused; ``decay`` is how much
    the counter falls per second.
    """

    STARTER = "starter"
    INTERMEDIATE = "intermediate"
    PRO = "pro"

    @property
    def threshold(self) -> int:
        """The counter value above which Kraken refuses orders on a pair."""
        return _TIER_LIMITS[self][0]

    @property
    def decay(self) -> float:
        """How much the counter decays per second."""
        return _TIER_LIMITS[self][1]


_TIER_LIMITS = {
    RateTier.STARTER: (60, 1.0),
    RateTier.INTERMEDIATE: (125, 2.34),
    RateTier.PRO: (180, 3.75),
}


class GapPolicy(enum.Enum):
    """What to do when a sequence gap is detected on a stream.

    - ``RESYNC``: rebuild the affected stream from a fresh snapshot.
    - ``IGNORE``: report the gap and carry on.
    - ``BUFFER``: hold up to ``ClientConfig.gap_buffer_size`` messages waiting for the missing
      ones, then resync if they do not arrive.
    """

    RESYNC = "resync"
    IGNORE = "ignore"
    BUFFER = "buffer"


# --------------------------------------------------------------------------- validation


def _fail(field: str, message: str) -> ConfigurationError:
    return ConfigurationError(field, message)


def _check_int(field: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be an int, got {type(value).__name__}")
    if value < minimum:
        raise _fail(field, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise _fail(field, f"must be <= {maximum}, got {value}")
    return int(value)


def _check_float(
    field: str,
    value: object,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, f"must be a number (float seconds), got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise _fail(field, "must be finite") from None
    if not math.isfinite(number):
        raise _fail(field, f"must be finite, got {number!r} (use None where it means unlimited)")
    if gt is not None and not number > gt:
        raise _fail(field, f"must be > {gt}, got {number!r}")
    if ge is not None and not number >= ge:
        raise _fail(field, f"must be >= {ge}, got {number!r}")
    if le is not None and not number <= le:
        raise _fail(field, f"must be <= {le}, got {number!r}")
    return number


def _check_optional_float(field: str, value: object, *, gt: float) -> float | None:
    if value is None:
        return None
    return _check_float(field, value, gt=gt)


def _check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, f"must be a bool, got {type(value).__name__}")
    return value


def _check_enum(field: str, value: object, enum_type: type[_E]) -> _E:
    if isinstance(value, enum_type):
        return value
    allowed = ", ".join(repr(member.value) for member in enum_type)
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            raise _fail(field, f"must be one of {allowed}, got {value!r}") from None
    raise _fail(field, f"must be a {enum_type.__name__} (or one of {allowed})")


def _check_nested(field: str, value: object, config_type: type[_N]) -> _N:
    """Accept an instance of ``config_type`` or a mapping of its fields (errors prefixed)."""
    if isinstance(value, config_type):
        return value
    if not isinstance(value, Mapping):
        raise _fail(field, f"must be a {config_type.__name__} or a mapping of its fields")
    names = {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    for key in value:
        if key not in names:
            raise _fail(f"{field}.{key}", f"unknown field of {config_type.__name__}")
    try:
        return config_type(**value)
    except ConfigurationError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise _fail(f"{field}.{exc.field}", message) from None


def _has_unsafe_chars(text: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in text)


def _check_url(field: str, value: object, schemes: tuple[str, ...]) -> str:
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    if not isinstance(value, str):
        raise _fail(field, f"must be a str URL starting with {wanted}")
    if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        raise _fail(field, f"must start with {wanted}, got {value!r}")
    if _has_unsafe_chars(value):
        raise _fail(field, "must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed or out-of-range port
    except ValueError as exc:
        raise _fail(field, f"is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise _fail(field, f"has no host: {value!r}")
    return value


def _check_api_key(field: str, value: str) -> None:
    """Validate an API key without ever putting its value into an error message."""
    if not value:
        raise _fail(field, "must not be empty (pass None for no credentials)")
    if not value.isascii() or _has_unsafe_chars(value):
        raise _fail(field, "must be printable ASCII without whitespace (check for a stray newline)")


def _decode_api_secret(field: str, value: str) -> bytes:
    """Decode a base64 API secret; errors never include the value."""
    if not value:
        raise _fail(field, "must not be empty (pass None for no credentials)")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        raise _fail(
            field, "must be valid base64 (the private key exactly as Kraken shows it)"
        ) from None


def is_loopback_url(url: str) -> bool:
    """Return whether ``url``'s host is a loopback address.

    Loopback means ``localhost`` (any case, optional trailing dot), an IPv4 address in
    ``127.0.0.0/8``, ``::1``, or an IPv4-mapped IPv6 form of a 127.x address. Anything that
    cannot be parsed is not loopback.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.rstrip(".") == "localhost":  # hostname is already lower-cased
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# --------------------------------------------------------------------------- config classes


@dataclasses.dataclass(frozen=True, kw_only=True)
class Precision:
    """Decimal places of one pair, as the ``instrument`` channel reports them.

    Used to format book levels for the checksum when the wire does not pad numbers.

    Attributes:
        price: digits after the point of a price (``price_precision``), 0..18. Required.
        qty: digits after the point of a quantity (``qty_precision``), 0..18. Required.
    """

    price: int
    qty: int

    def __post_init__(self) -> None:
        _check_int("price", self.price, minimum=0, maximum=_MAX_PRECISION)
        _check_int("qty", self.qty, minimum=0, maximum=_MAX_PRECISION)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReconnectConfig:
    """Reconnection schedule: capped exponential backoff with jitter.

    The n-th delay (n from 0) is ``min(max_delay, initial_delay * backoff_multiplier ** n)``
    reduced by a random fraction of at most ``jitter`` (see :class:`~kraken_proto.backoff.Backoff`).

    Attributes:
        max_attempts: reconnect attempts before giving up; ``None`` (default) is unlimited,
            ``0`` means never reconnect. An int >= 0.
        initial_delay: first delay, float seconds > 0. Default 0.1.
        max_delay: cap on any delay, float seconds >= ``initial_delay``. Default 30.0.
        backoff_multiplier: growth factor per attempt, >= 1. Default 2.0.
        jitter: largest fraction of the delay removed at random, 0..1 (0 = no jitter).
            Default 0.2.
    """

    max_attempts: int | None = None
    initial_delay: float = 0.1
    max_delay: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts is not None:
            _check_int("max_attempts", self.max_attempts, minimum=0)
        initial = _check_float("initial_delay", self.initial_delay, gt=0.0)
        _set(self, "initial_delay", initial)
        maximum = _check_float("max_delay", self.max_delay, gt=0.0)
        if maximum < initial:
            raise _fail("max_delay", f"must be >= initial_delay ({initial!r}), got {maximum!r}")
        _set(self, "max_delay", maximum)
        _set(
            self,
            "backoff_multiplier",
            _check_float("backoff_multiplier", self.backoff_multiplier, ge=1.0),
        )
        _set(self, "jitter", _check_float("jitter", self.jitter, ge=0.0, le=1.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackpressureConfig:
    """Bounds on the queue of events waiting for the user.

    Attributes:
        max_queue_depth: events held before ``drop_policy`` applies, an int >= 1.
            Default 10_000.
        drop_policy: which event goes when the queue is full. Default ``DropPolicy.OLDEST``.
        max_messages_per_second: cap on events delivered per second, > 0; ``None``
            (default) is unlimited.
        coalesce_window: float seconds during which events of the same kind and symbol are
            merged under ``DropPolicy.COALESCE``, >= 0 (0 = only when the queue is full).
            Default 0.0.
    """

    max_queue_depth: int = 10_000
    drop_policy: DropPolicy = DropPolicy.OLDEST
    max_messages_per_second: float | None = None
    coalesce_window: float = 0.0

    def __post_init__(self) -> None:
        _check_int("max_queue_depth", self.max_queue_depth, minimum=1)
        _set(self, "drop_policy", _check_enum("drop_policy", self.drop_policy, DropPolicy))
        _set(
            self,
            "max_messages_per_second",
            _check_optional_float("max_messages_per_second", self.max_messages_per_second, gt=0.0),
        )
        _set(
            self,
            "coalesce_window",
            _check_float("coalesce_window", self.coalesce_window, ge=0.0),
        )


def _empty_precisions() -> Mapping[str, Precision]:
    return MappingProxyType({})


_SECRET_FIELDS = frozenset({"api_key", "api_secret"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Everything the protocol core needs to know, validated at construction.

    ``repr``/``str`` show ``'***'`` in place of ``api_key`` and ``api_secret``. Equality and
    hashing ignore ``rng``. Use :meth:`from_env` to take the credentials from the environment.

    Attributes:
        endpoint: public WebSocket URL, ``ws://`` or ``wss://``. Default
            ``"wss://ws.kraken.com/v2"``.
        auth_endpoint: private (token) WebSocket URL, ``ws://`` or ``wss://``. Default
            ``"wss://ws-auth.kraken.com/v2"``.
        rest_url: REST base URL used to fetch the WebSocket token, ``https://`` or
            ``http://``. Default ``"https://api.kraken.com"``.
        api_key: Kraken API key, or ``None`` (default). Set together with ``api_secret``.
        api_secret: Kraken API secret (base64, as Kraken shows it), or ``None`` (default).
        timeout: connect timeout, float seconds > 0. Default 10.0.
        ack_timeout: how long a request (subscribe, unsubscribe, order) may wait for its
            acknowledgement, float seconds > 0. Default 10.0.
        stale_timeout: with no application message for this long the connection is stale
            and is replaced, float seconds > 0. Default 10.0.
        silent_subscription_timeout: one subscription silent this long while others flow
            is treated as stale, float seconds > 0; ``None`` (default) disables the check.
        ping_interval: period of application-level pings, float seconds >=
            :data:`MIN_PING_INTERVAL` (1.0, Kraken's own heartbeat period); ``None`` disables
            them. A ping is never queued while the previous one is outstanding (no pong yet,
            and sent less than ``ack_timeout`` ago). Default 20.0.
        buffer_size: socket read size for drivers, bytes, >= 1024. Default 65_536.
        max_message_size: larger frames are rejected as a ``ProtocolError``, bytes, >= 1024.
            Default 8 MiB (8_388_608).
        reconnect: reconnection schedule. Default ``ReconnectConfig()``.
        backpressure: event queue bounds. Default ``BackpressureConfig()``.
        gap_policy: reaction to a sequence gap. Default ``GapPolicy.RESYNC``.
        gap_buffer_size: messages held under ``GapPolicy.BUFFER``, an int >= 1. Default 100.
        gap_buffer_timeout: how long ``GapPolicy.BUFFER`` waits for a missing message before
            resyncing, float seconds > 0. Default 1.0.
        level3_endpoint: level3 (token) WebSocket URL, ``ws://`` or ``wss://``. Default
            ``"wss://ws-l3.kraken.com/v2"``.
        request_timeout: how long a trading request may wait for its response before its
            outcome is reported unknown, float seconds > 0. Default 10.0.
        rate_tier: the account's trading rate-counter tier, used to pace orders locally.
            Default ``RateTier.STARTER``.
        max_pacing_delay: the longest a trading request may be held back to stay under the
            rate counter; a request that would wait longer is refused locally, float
            seconds >= 0. Default 5.0.
        precisions: per-symbol precision table, keyed by v2 symbol (``"BTC/USD"``); stored as
            a read-only copy. Default empty (precisions come from the instrument channel).
        depth_headroom: extra book levels subscribed beyond the depth asked for, an int
            >= 0. Default 0.
        resync_max_attempts: book resyncs per symbol within ``resync_window`` before the
            symbol is reported failed, an int >= 1. Default 3.
        resync_window: float seconds > 0. Default 60.0.
        max_requests_per_second: pacing of outgoing messages, > 0. Default 20.0.
        request_burst: outgoing messages that may be sent back to back, an int >= 1.
            Default 10.
        allow_insecure: allow ``ws://`` endpoints and an ``http://`` ``rest_url`` to hosts
            other than loopback. Default False.
        latency: track per-channel latencies (exchange -> receive, receive -> delivery) in
            the bundled drivers, read as ``client.latency``
            (:class:`~kraken_proto.analytics.LatencyTracker`). Default False: no cost.
        latency_sample_rate: with ``latency``, about the most events measured per second:
            beyond it one event in N is (standing for N; see
            :class:`~kraken_proto.analytics.LatencySampler`), so that tracking stays cheap
            at any event rate, float > 0; ``None`` measures every event. Default 500.0.
        count_messages: count every message received, by channel and with its size in
            bytes (``KrakenProtocol.counters``; see
            :meth:`~kraken_proto.protocol.KrakenProtocol.count_messages`, which also turns
            it on later). Default False: the per-message path pays nothing for it.
        rng: source of jitter; seed it (``random.Random(42)``) for a reproducible session.
            Default: a fresh ``random.Random()``.
    """

    endpoint: str = "wss://ws.kraken.com/v2"
    auth_endpoint: str = "wss://ws-auth.kraken.com/v2"
    level3_endpoint: str = "wss://ws-l3.kraken.com/v2"
    rest_url: str = "https://api.kraken.com"
    api_key: str | None = None
    api_secret: str | None = None
    timeout: float = 10.0
    ack_timeout: float = 10.0
    stale_timeout: float = 10.0
    silent_subscription_timeout: float | None = None
    ping_interval: float | None = 20.0
    buffer_size: int = 65_536
    max_message_size: int = 8 * 1024 * 1024
    reconnect: ReconnectConfig = dataclasses.field(default_factory=ReconnectConfig)
    backpressure: BackpressureConfig = dataclasses.field(default_factory=BackpressureConfig)
    gap_policy: GapPolicy = GapPolicy.RESYNC
    gap_buffer_size: int = 100
    gap_buffer_timeout: float = 1.0
    request_timeout: float = 10.0
    rate_tier: RateTier = RateTier.STARTER
    max_pacing_delay: float = 5.0
    precisions: Mapping[str, Precision] = dataclasses.field(
        default_factory=_empty_precisions, hash=False
    )
    depth_headroom: int = 0
    resync_max_attempts: int = 3
    resync_window: float = 60.0
    max_requests_per_second: float = 20.0
    request_burst: int = 10
    allow_insecure: bool = False
    latency: bool = False
    latency_sample_rate: float | None = 500.0
    count_messages: bool = False
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        allow_insecure = _check_bool("allow_insecure", self.allow_insecure)
        for name in ("endpoint", "auth_endpoint", "level3_endpoint"):
            url = _check_url(name, getattr(self, name), ("ws", "wss"))
            if url.startswith("ws://") and not allow_insecure and not is_loopback_url(url):
                raise _fail(
                    name, "ws:// to a non-loopback host needs allow_insecure=True (use wss://)"
                )
        rest_url = _check_url("rest_url", self.rest_url, ("https", "http"))
        parts = urlsplit(rest_url)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise _fail(
                "rest_url",
                "must be the base URL alone, scheme://host[:port] (the token request adds "
                f"/0/private/GetWebSocketsToken), got {rest_url!r}",
            )
        if rest_url.startswith("http://") and not allow_insecure and not is_loopback_url(rest_url):
            raise _fail(
                "rest_url",
                "http:// to a non-loopback host needs allow_insecure=True (use https://)",
            )
        self._check_credentials()
        for name in (
            "timeout",
            "ack_timeout",
            "stale_timeout",
            "gap_buffer_timeout",
            "request_timeout",
        ):
            _set(self, name, _check_float(name, getattr(self, name), gt=0.0))
        _set(
            self,
            "silent_subscription_timeout",
            _check_optional_float(
                "silent_subscription_timeout", self.silent_subscription_timeout, gt=0.0
            ),
        )
        ping_interval = _check_optional_float("ping_interval", self.ping_interval, gt=0.0)
        if ping_interval is not None and ping_interval < MIN_PING_INTERVAL:
            raise _fail(
                "ping_interval",
                f"must be >= {MIN_PING_INTERVAL:g} s (Kraken's own heartbeat period; more "
                f"frequent pings only crowd out other requests), got {ping_interval!r}; "
                "use None to disable pings",
            )
        _set(self, "ping_interval", ping_interval)
        _check_int("buffer_size", self.buffer_size, minimum=1024)
        _check_int("max_message_size", self.max_message_size, minimum=1024)
        _set(self, "reconnect", _check_nested("reconnect", self.reconnect, ReconnectConfig))
        _set(
            self,
            "backpressure",
            _check_nested("backpressure", self.backpressure, BackpressureConfig),
        )
        _set(self, "gap_policy", _check_enum("gap_policy", self.gap_policy, GapPolicy))
        _check_int("gap_buffer_size", self.gap_buffer_size, minimum=1)
        _set(self, "rate_tier", _check_enum("rate_tier", self.rate_tier, RateTier))
        _set(
            self,
            "max_pacing_delay",
            _check_float("max_pacing_delay", self.max_pacing_delay, ge=0.0),
        )
        _set(self, "precisions", self._checked_precisions())
        _check_int("depth_headroom", self.depth_headroom, minimum=0)
        _check_int("resync_max_attempts", self.resync_max_attempts, minimum=1)
        _set(self, "resync_window", _check_float("resync_window", self.resync_window, gt=0.0))
        _set(
            self,
            "max_requests_per_second",
            _check_float("max_requests_per_second", self.max_requests_per_second, gt=0.0),
        )
        _check_int("request_burst", self.request_burst, minimum=1)
        _check_bool("latency", self.latency)
        _set(
            self,
            "latency_sample_rate",
            _check_optional_float("latency_sample_rate", self.latency_sample_rate, gt=0.0),
        )
        _check_bool("count_messages", self.count_messages)
        if not isinstance(self.rng, random.Random):
            raise _fail("rng", f"must be a random.Random, got {type(self.rng).__name__}")

    def _check_credentials(self) -> None:
        for name in ("api_key", "api_secret"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(name, f"must be a str or None, got {type(value).__name__}")
        if self.api_key is None and self.api_secret is not None:
            raise _fail("api_key", "must be set when api_secret is set")
        if self.api_key is not None and self.api_secret is None:
            raise _fail("api_secret", "must be set when api_key is set")
        if self.api_key is not None and self.api_secret is not None:
            _check_api_key("api_key", self.api_key)
            _decode_api_secret("api_secret", self.api_secret)

    def _checked_precisions(self) -> Mapping[str, Precision]:
        if not isinstance(self.precisions, Mapping):
            raise _fail("precisions", "must be a mapping of symbol to Precision")
        table: dict[str, Precision] = {}
        for symbol, precision in self.precisions.items():
            field = f"precisions[{symbol!r}]"
            if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol):
                raise _fail(field, "keys must be v2 symbols of the form 'BASE/QUOTE'")
            table[symbol] = _check_nested(field, precision, Precision)
        return MappingProxyType(table)

    @property
    def credentials_set(self) -> bool:
        """Whether an API key and secret are configured (private channels need both)."""
        return self.api_key is not None and self.api_secret is not None

    @classmethod
    def from_env(cls: type[_C], **overrides: Any) -> _C:
        """Build a configuration with credentials and endpoints from the environment.

        ``api_key`` comes from ``KRAKEN_API_KEY`` and ``api_secret`` from
        ``KRAKEN_API_SECRET`` (surrounding whitespace stripped; unset or empty means
        ``None``). The endpoints come from ``KRAKEN_WS_ENDPOINT``, ``KRAKEN_WS_AUTH_ENDPOINT``,
        ``KRAKEN_WS_LEVEL3_ENDPOINT`` and ``KRAKEN_REST_URL`` when set (unset or empty means
        Kraken's own), so one script runs against Kraken or against ``kraken-ws serve``,
        which prints these variables ready to paste. Keyword ``overrides`` are any
        :class:`ClientConfig` fields and win over the environment, ``api_key=None`` included.
        """
        values: dict[str, Any] = {}
        for name, variable in _ENV_VARIABLES:
            text = os.environ.get(variable, "").strip()
            if text or name in _SECRET_FIELDS:
                values[name] = text or None
        values.update(overrides)
        return cls(**values)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            shown = "'***'" if f.name in _SECRET_FIELDS and value is not None else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __getstate__(self) -> dict[str, Any]:
        # A mappingproxy cannot be pickled or deep-copied: store the table as a dict.
        state = dict(self.__dict__)
        state["precisions"] = dict(self.precisions)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["precisions"] = MappingProxyType(dict(state["precisions"]))
        self.__dict__.update(state)


_ENV_VARIABLES = (
    ("api_key", "KRAKEN_API_KEY"),
    ("api_secret", "KRAKEN_API_SECRET"),
    ("endpoint", "KRAKEN_WS_ENDPOINT"),
    ("auth_endpoint", "KRAKEN_WS_AUTH_ENDPOINT"),
    ("level3_endpoint", "KRAKEN_WS_LEVEL3_ENDPOINT"),
    ("rest_url", "KRAKEN_REST_URL"),
)
"""The fields :meth:`ClientConfig.from_env` reads, and the variable each comes from."""


def _set(instance: object, name: str, value: object) -> None:
    """Store a normalised value on a frozen dataclass during ``__post_init__``."""
    object.__setattr__(instance, name, value)
