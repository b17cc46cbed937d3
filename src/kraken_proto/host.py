"""Kraken's three WebSocket hosts, and what each one needs.

A :class:`~kraken_proto.protocol.KrakenProtocol` talks to exactly one of them, chosen when it
is built (``private=True`` for :attr:`Host.AUTH`, ``level3=True`` for :attr:`Host.LEVEL3`)
and reported by its ``host`` property.
"""

from __future__ import annotations

import enum

from kraken_proto.config import ClientConfig
from kraken_proto.errors import LocalProtocolError

__all__ = ["Host"]


class Host(enum.Enum):
    """One of Kraken's WebSocket hosts; the value is its short name."""

    PUBLIC = "public"
    """Market data: book, ticker, trade, ohlc, instrument. No token."""
    AUTH = "auth"
    """The authenticated host: executions, balances and trading requests."""
    LEVEL3 = "level3"
    """The level3 host: order-by-order (L3) books."""

    @classmethod
    def of(cls, config: ClientConfig, *, private: bool = False, level3: bool = False) -> Host:
        """The host of a connection asked for with ``private`` (:attr:`AUTH`) or ``level3``
        (:attr:`LEVEL3`), at most one of them (neither: :attr:`PUBLIC`), usable with
        ``config``: a host that needs a token needs ``api_key`` and ``api_secret``.

        Raises:
            LocalProtocolError: both were asked for, or ``config`` has no credentials for it.
        """
        if private and level3:
            raise LocalProtocolError(
                "choose one host: private=True (executions, balances, trading) "
                "or level3=True (level3 books), each on its own KrakenProtocol"
            )
        host = cls.AUTH if private else cls.LEVEL3 if level3 else cls.PUBLIC
        if host.needs_token and not config.credentials_set:
            raise LocalProtocolError(
                f"a {host.value} connection needs api_key and api_secret in ClientConfig "
                "(or ClientConfig.from_env() with KRAKEN_API_KEY / KRAKEN_API_SECRET)"
            )
        return host

    @property
    def needs_token(self) -> bool:
        """Whether a connection to this host first fetches a WebSocket token."""
        return self is not Host.PUBLIC

    def url(self, config: ClientConfig) -> str:
        """This host's WebSocket URL in ``config``."""
        if self is Host.PUBLIC:
            return config.endpoint
        if self is Host.AUTH:
            return config.auth_endpoint
        return config.level3_endpoint
