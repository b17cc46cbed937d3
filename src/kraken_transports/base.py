"""The small pieces every driver shares: waits, argument checks, failures, trading results.

:data:`DEFAULT_TIMEOUT` and :class:`Deadline` (every wait) and :func:`read_wait` (every
reader of the event buffer), the checks of the arguments (:func:`as_state`,
:func:`check_symbols`), how a failed connection is named (:func:`describe_failure`),
:func:`redact_frame`, and the request builders and result checks behind the typed trading
helpers (``add_order``, ``cancel_order``, ...).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from kraken_proto.auth import redact_token
from kraken_proto.backpressure import EventBuffer
from kraken_proto.errors import LocalProtocolError, UnknownOutcomeError
from kraken_proto.host import Host
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import validate_unsubscription
from kraken_proto.trading import (
    BatchAdd,
    BatchOrder,
    CancelOrder,
    CancelOrderResult,
    OrderResponse,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "IN_FLIGHT",
    "Deadline",
    "as_state",
    "build_batch_add",
    "build_cancel_order",
    "cancel_results",
    "check_symbols",
    "describe_failure",
    "expect_result",
    "read_wait",
    "redact_frame",
    "request_label",
]

R = TypeVar("R")

DEFAULT_TIMEOUT = 30.0
"""Seconds every wait of every driver gives up after unless told otherwise: ``subscribe`` and
``unsubscribe`` with ``wait=True``, the trading calls, ``wait_until``. Long enough for a
connect timeout, a token and an answer (``ClientConfig.timeout``, ``ack_timeout`` and
``request_timeout`` are 10 s each by default, and the core settles every request itself);
``timeout=None`` waits without a limit."""

IN_FLIGHT = "it is still in flight and its OrderResponse will arrive as an event"
"""What a trading call's timeout adds once the request was sent."""


def as_state(state: ConnectionState | str) -> ConnectionState:
    """``state`` as a :class:`ConnectionState`; its value (``"subscribed"``, as
    ``StateChanged.new`` carries it) is accepted too. Anything else is refused."""
    if isinstance(state, ConnectionState):
        return state
    if isinstance(state, str):
        try:
            return ConnectionState(state)
        except ValueError:
            pass
    names = ", ".join(repr(s.value) for s in ConnectionState)
    raise LocalProtocolError(
        f"state must be a ConnectionState or one of its values ({names}), not {state!r}"
    )


def check_symbols(
    channel: str, symbols: Iterable[str] | str | None, host: Host | str
) -> tuple[Sequence[str] | str | None, tuple[str | None, ...]]:
    """``symbols`` made readable twice (an iterator becomes a list), and the symbols an
    (un)subscribe of ``channel`` waits for. Raises ``LocalProtocolError`` for a bad channel or
    symbols (the protocol's own check: a str or an iterable of str, never bytes)."""
    names: Sequence[str] | str | None
    if isinstance(symbols, str | bytes | bytearray) or not isinstance(symbols, Iterable):
        names = symbols  # the protocol checks it (and refuses bytes and non-iterables)
    else:
        names = list(symbols)
    return names, validate_unsubscription(channel, names, {}, host)


def request_label(method: str, channel: str, symbols: Iterable[str | None]) -> str:
    """How errors name a request: ``"subscribe ticker BTC/USD, ETH/USD"``."""
    names = ", ".join(s for s in symbols if s is not None)
    return f"{method} {channel} {names}" if names else f"{method} {channel}"


class Deadline:
    """The end of one wait on a driver's monotonic ``clock`` (``timeout=None``: none)."""

    __slots__ = ("_at", "_clock", "timeout")

    def __init__(self, timeout: float | None, clock: Callable[[], float]) -> None:
        self.timeout = timeout
        self._clock = clock
        self._at = None if timeout is None else clock() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a limit."""
        return None if self._at is None else max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._at is not None and self._clock() >= self._at


def read_wait(
    buffer: EventBuffer, now: float, deadline: Deadline, ended: bool
) -> tuple[bool, float | None]:
    """How a reader of ``buffer`` with nothing to read now goes on: ``(True, None)`` to stop
    (the client ``ended`` and no event is held back, or ``deadline`` passed), else
    ``(False, seconds)`` to wait (``None``: without a limit) before looking again, no later
    than the delivery rate cap releases the next event."""
    ready = buffer.next_ready(now)
    if ready is None and ended:
        return True, None
    wait = deadline.remaining()
    if wait is not None and wait <= 0:
        return True, None
    if ready is not None:
        wait = max(0.0, ready - now) if wait is None else min(wait, max(0.0, ready - now))
    return False, wait


def _failure_causes(exc: BaseException | None) -> Iterable[BaseException]:
    """``exc`` and what it wraps (aiohttp keeps the OS or certificate error beside it)."""
    seen = 0
    while exc is not None and seen < 5:
        seen += 1
        yield exc
        for name in ("os_error", "certificate_error"):
            inner = getattr(exc, name, None)
            if isinstance(inner, BaseException):
                yield inner
        exc = exc.__cause__ or exc.__context__


def describe_failure(url: str, exc: BaseException | None, reason: str) -> str:
    """One line saying how the connection to ``url`` failed, from the exception the driver
    saw (``exc``) or else the core's ``reason``."""
    for cause in _failure_causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused to {url}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host of {url} ({cause.strerror or cause})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or cause
            return f"TLS certificate of {url} refused ({detail})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS with {url} failed ({getattr(cause, 'reason', None) or cause})"
        if isinstance(cause, TimeoutError):
            return f"connecting to {url} timed out"
    return f"connection to {url} failed: {reason.removeprefix('connection lost: ')}"


def redact_frame(payload: str | bytes) -> str | bytes:
    """``payload`` with any WebSocket token value replaced by ``"***"`` (frame hooks, logs)."""
    if isinstance(payload, str):
        return redact_token(payload)
    if b'"token"' not in payload:
        return payload
    return redact_token(payload.decode("utf-8", "replace")).encode("utf-8")


def expect_result(response: OrderResponse, kind: type[R]) -> R:
    """The first result of a settled, successful ``response``, checked to be a ``kind``."""
    result = response.result
    if not isinstance(result, kind):
        raise UnknownOutcomeError(
            response.method, response.req_id, f"the response carried no {kind.__name__}"
        )
    return result


def cancel_results(response: OrderResponse) -> tuple[CancelOrderResult, ...]:
    """The per-order results of a settled, successful ``cancel_order`` response."""
    return tuple(r for r in response.results if isinstance(r, CancelOrderResult))


def _ids(value: Any) -> tuple[Any, ...]:
    """One id or a sequence of ids as a tuple (``None``: none)."""
    if value is None:
        return ()
    if isinstance(value, str | int):
        return (value,)
    return tuple(value)


def build_cancel_order(order_id: Any, cl_ord_id: Any, order_userref: Any) -> CancelOrder:
    """A :class:`CancelOrder` from single ids or sequences of them."""
    return CancelOrder(
        order_id=_ids(order_id), cl_ord_id=_ids(cl_ord_id), order_userref=_ids(order_userref)
    )


def build_batch_add(
    symbol: str, orders: Iterable[BatchOrder | Mapping[str, Any]], fields: dict[str, Any]
) -> BatchAdd:
    """A :class:`BatchAdd` of ``orders`` (``BatchOrder`` values or mappings of their fields)."""
    return BatchAdd(symbol=symbol, orders=tuple(orders), **fields)  # type: ignore[arg-type]
