"""The part of a client that every driver answers the same way: queries and callbacks.

A driver's client owns a :class:`~kraken_proto.KrakenProtocol` (``_proto``), its
configuration (``_config``) and an :class:`~kraken_transports.router.EventRouter`
(``_router``); everything here reads those, so the asyncio and socket clients cannot
drift apart. (The threaded client wraps a socket client and adds its lock.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView
from kraken_transports.router import ClientStats, EventRouter

__all__ = ["PRIVATE_NOT_SUPPORTED", "ClientBase"]

E = TypeVar("E")

PRIVATE_NOT_SUPPORTED = (
    "private connections arrive with the authentication work; use a public connection"
)
"""Why every driver refuses ``private=True`` for now."""


class ClientBase:
    """Queries and callback registration shared by the driver clients."""

    _config: ClientConfig
    _proto: KrakenProtocol
    _router: EventRouter

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._config

    @property
    def protocol(self) -> KrakenProtocol:
        """The sans-IO protocol object this driver performs IO for."""
        return self._proto

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`~kraken_proto.ConnectionState`)."""
        return self._proto.state

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        return self._proto.subscriptions

    @property
    def stats(self) -> ClientStats:
        """Counters: events received/delivered/dropped/coalesced/queued, frames, reconnects,
        callback errors. ``received == delivered + dropped + coalesced + queued``."""
        return self._router.stats()

    def book(self, symbol: str) -> OrderBook | None:
        """The maintained, checksum-verified L2 book of ``symbol`` (``None`` if not subscribed).

        Its query methods raise :class:`~kraken_proto.BookNotLiveError` while the book is
        awaiting a snapshot, resyncing or failed; check ``is_live`` first.
        """
        return self._proto.book(symbol)

    def on(self, event_type: type[E] | None, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type`` (``None``: all events).

        Callbacks run in the driver's IO context as events are produced, before
        backpressure applies, so they see every event and the book exactly as that event
        left it; several per type run in registration order. An exception in a callback is
        logged and counted in ``stats.callback_errors``, never propagated. Returns a
        function that removes the registration.
        """
        return self._router.on(event_type, callback)
