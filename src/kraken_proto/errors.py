"""The exception hierarchy: every error the SDK raises derives from :class:`KrakenError`.

Each class says whose fault it is. ``LocalProtocolError`` and ``ConfigurationError`` are the
caller's; ``ParseError`` and ``SubscriptionError`` describe what the remote sent;
``ConnectionError_``/``NetworkError``/``AuthenticationError`` describe the link and the
credentials. Remote faults never escape :meth:`KrakenProtocol.receive_data` as exceptions:
they arrive as events, and these classes are used by drivers that turn events into raised
errors (for example a failed subscription awaited by the caller).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BookNotLiveError",
    "ConfigurationError",
    "KrakenConnectionError",
    "KrakenError",
    "LocalProtocolError",
    "InvalidRequestError",
    "NetworkError",
    "OrderError",
    "ParseError",
    "SubscriptionError",
    "TradingRateLimitError",
    "UnknownOutcomeError",
    "WaitTimeoutError",
]


class KrakenError(Exception):
    """Base class of every error raised by kraken_proto and kraken_transports."""


class LocalProtocolError(KrakenError):
    """The caller used the protocol object wrongly; the message says what to do instead."""


class ConfigurationError(KrakenError, ValueError):
    """A configuration value is invalid. ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class KrakenConnectionError(KrakenError):
    """The WebSocket connection failed or was closed by the server.

    ``code`` is the WebSocket close code when one was received; ``terminal`` is true when the
    SDK will not retry (close 1008, bad credentials, retry budget spent).
    """

    def __init__(self, message: str, *, code: int | None = None, terminal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.terminal = terminal


class NetworkError(KrakenConnectionError):
    """A transport-level failure: DNS, TCP, TLS, timeouts."""


class ParseError(KrakenError):
    """A message from the server could not be understood.

    ``payload`` holds (a prefix of) the offending text so the problem can be reported.
    """

    def __init__(self, message: str, payload: str = "") -> None:
        super().__init__(message)
        self.payload = payload


class SubscriptionError(KrakenError):
    """Kraken refused a subscription, or it failed locally (ack timeout, resync budget spent).

    ``error`` is Kraken's own error text when the refusal came from the server.
    """

    def __init__(self, channel: str, symbol: str | None, error: str) -> None:
        where = f"{channel} {symbol}" if symbol else channel
        super().__init__(f"subscription {where} failed: {error}")
        self.channel = channel
        self.symbol = symbol
        self.error = error


class AuthenticationError(KrakenError):
    """Credentials were refused or a WebSocket token could not be obtained.

    ``error`` is Kraken's error string (e.g. ``EAPI:Invalid key``); ``terminal`` is true when
    retrying cannot help. Never carries the key, the secret or the token.
    """

    def __init__(self, error: str, *, terminal: bool) -> None:
        super().__init__(error)
        self.error = error
        self.terminal = terminal


class BookNotLiveError(KrakenError):
    """A book query was made while the book is not live (awaiting snapshot, resyncing, failed).

    Serving stale levels would be worse than failing: check ``OrderBook.is_live`` first.
    """

    def __init__(self, symbol: str, state: str) -> None:
        super().__init__(f"book {symbol} is {state}, not live: its levels cannot be trusted")
        self.symbol = symbol
        self.state = state


class InvalidRequestError(LocalProtocolError, ValueError):
    """A trading request was built with invalid parameters; nothing was sent.

    ``field`` names the offending parameter (``"orders[2].limit_price"`` inside a batch).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TradingRateLimitError(LocalProtocolError):
    """A trading request was refused locally: it would push the pair's rate counter over
    Kraken's threshold for longer than ``ClientConfig.max_pacing_delay``.

    ``symbol`` is the pair, ``wait`` the seconds until the counter would allow the request.
    Nothing was sent.
    """

    def __init__(self, symbol: str, wait: float) -> None:
        super().__init__(
            f"{symbol}: trading rate counter would need {wait:.2f} s to allow this request "
            "(beyond max_pacing_delay); nothing was sent"
        )
        self.symbol = symbol
        self.wait = wait


class OrderError(KrakenError):
    """Kraken refused a trading request. ``error`` is Kraken's own text (``EOrder:...``).

    ``method`` and ``req_id`` identify the request.
    """

    def __init__(self, method: str, req_id: int, error: str) -> None:
        super().__init__(f"{method} (req_id {req_id}) refused by Kraken: {error}")
        self.method = method
        self.req_id = req_id
        self.error = error


class UnknownOutcomeError(KrakenError):
    """A trading request was sent but no answer came: it may or may not have taken effect.

    The SDK never retries such a request. Reconcile through the ``executions`` channel
    (look for ``cl_ord_id`` or ``order_userref``) before acting again. ``reason`` says why
    the answer is missing (timeout, connection lost).
    """

    def __init__(self, method: str, req_id: int, reason: str) -> None:
        super().__init__(
            f"{method} (req_id {req_id}) outcome unknown: {reason}; "
            "reconcile through the executions channel before retrying"
        )
        self.method = method
        self.req_id = req_id
        self.reason = reason


class WaitTimeoutError(KrakenError, TimeoutError):
    """A driver's wait ran out of time: ``subscribe``/``unsubscribe`` with ``wait=True``, a
    trading call, ``wait_until``. Also a ``TimeoutError``.

    The message says what was waited for, for how long, the connection's state and, when
    the connection has been failing, its last failure (``last_failure``: for example
    ``"connection refused to ws://127.0.0.1:1/v2 after 3 attempts"``; ``""`` otherwise).
    ``state`` is the connection state's value when the wait ended.
    """

    def __init__(self, message: str, *, state: str, last_failure: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.last_failure = last_failure
