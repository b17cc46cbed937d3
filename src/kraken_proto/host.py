"""Kraken's three WebSocket hosts, and what each one needs.

A :class:`~kraken_proto.protocol.KrakenProtocol` talks to exactly one of them, chosen when it
is built (``private=True`` for :attr:`Host.AUTH`, ``level3=True`` for :attr:`Host.LEVEL3`)
and reported by its ``host`` property.
"""

from __future__ import annotations

import enum

from kraken_proto.config import ClientConfig

__all__ = ["Host"]


class Host(enum.Enum):
    """One of Kraken's WebSocket hosts; the value is its short name."""

    PUBLIC = "public"
    """Market data: book, ticker, trade, ohlc, instrument. No token."""
    AUTH = "auth"
    """The authenticated host: executions, balances and trading requests."""
    LEVEL3 = "level3"
    """The level3 host: order-by-order (L3) books."""

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
