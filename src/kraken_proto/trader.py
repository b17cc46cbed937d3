"""The trading part: requests on the authenticated host, their responses and the dead man's
switch.

:class:`Trader` checks and sends trading requests with the connection's token (through the
:class:`~kraken_proto.outbox.Outbox`), keeps them in :class:`~kraken_proto.inflight.InFlight`
(rate-counter pacing, matching responses by ``req_id``, one ``OrderResponse`` per request)
and re-sends an armed ``cancel_all_orders_after`` every ``interval`` seconds while connected.
A token is held only while the connection is open and authenticated: requests never outlive
their connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kraken_proto.actions import Action, Emit, Send
from kraken_proto.config import ClientConfig
from kraken_proto.connection import SUBSCRIBABLE_STATES
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import Execution
from kraken_proto.host import Host
from kraken_proto.inflight import InFlight
from kraken_proto.outbox import Outbox
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState
from kraken_proto.timing import NEVER, after
from kraken_proto.trading import CancelAllOrdersAfter, TradingRequest, is_trading_request
from kraken_proto.wire import Response, encode_request

__all__ = ["Trader"]

_PRIVATE_ONLY = "needs a private connection: KrakenProtocol(config, private=True)"


class _DeadManSwitch:
    """The armed dead man's switch: re-sent every ``interval`` seconds while connected."""

    __slots__ = ("interval", "next_at", "timeout")

    def __init__(self, timeout: int, interval: float) -> None:
        self.timeout = timeout
        self.interval = interval
        self.next_at = NEVER  # NEVER until sent: sent as soon as a token is there


class Trader:
    """Trading requests of one connection, and the dead man's switch."""

    __slots__ = ("_dead_man", "_host", "_ids", "_inflight", "_outbox", "_token")

    def __init__(
        self, config: ClientConfig, host: Host, outbox: Outbox, ids: Iterator[int]
    ) -> None:
        self._host = host
        self._outbox = outbox
        self._ids = ids
        self._inflight = InFlight(config)
        self._dead_man: _DeadManSwitch | None = None
        self._token: str | None = None

    # ------------------------------------------------------------------ queries

    def can_submit(self, state: ConnectionState) -> bool:
        """Whether a request can be sent in ``state``: the authenticated host, open, with a
        token."""
        return self._host is Host.AUTH and state in SUBSCRIBABLE_STATES and self._token is not None

    @property
    def pending(self) -> int:
        """Requests submitted and not settled yet."""
        return len(self._inflight)

    @property
    def dead_man_switch(self) -> tuple[int, float] | None:
        """``(timeout, interval)`` of the armed dead man's switch, or ``None``."""
        switch = self._dead_man
        return None if switch is None else (switch.timeout, switch.interval)

    def rate_counter(self, symbol: str, now: float) -> RateCounterState:
        """The trading rate counter of ``symbol`` as tracked locally."""
        return self._inflight.rate_counter(symbol, now)

    def deadline(self, best: float) -> float:
        """The earliest of ``best``, the pacing releases, the response timeouts and the dead
        man's refresh."""
        inflight = self._inflight.next_deadline()
        if inflight is not None:
            best = min(best, inflight)
        if self._dead_man is not None and self._token is not None:
            best = min(best, self._dead_man.next_at)
        return best

    # ------------------------------------------------------------------ the user's calls

    def submit(
        self, request: TradingRequest, now: float, state: ConnectionState
    ) -> tuple[int, list[Action]]:
        """Check and send (or pace) ``request``; its ``req_id`` and the actions."""
        if not is_trading_request(request):
            raise LocalProtocolError(
                f"submit() takes a trading request such as AddOrder, not {type(request).__name__}"
            )
        if self._host is not Host.AUTH:
            raise LocalProtocolError(f"trading {_PRIVATE_ONLY}")
        if not self.can_submit(state):
            raise LocalProtocolError(
                f"cannot send {request.method} while {state.value!r}: trading requests "
                "go out only on an open, authenticated connection and are never queued "
                "across connections; wait until the state is 'subscribed'"
            )
        req_id = next(self._ids)
        actions: list[Action] = []
        if self._inflight.submit(req_id, request, now):
            self._send(request, req_id, actions, now)
        return req_id, actions

    def arm(
        self, timeout: int, interval: float | None, now: float, state: ConnectionState
    ) -> list[Action]:
        """Arm the dead man's switch (checked as ``arm_dead_man_switch`` documents)."""
        if self._host is not Host.AUTH:
            raise LocalProtocolError(f"the dead man's switch {_PRIVATE_ONLY}")
        if type(timeout) is not int or not 1 <= timeout < 86400:
            raise LocalProtocolError(
                f"timeout must be an int of seconds in 1..86399, not {timeout!r}"
            )
        every = timeout / 3 if interval is None else interval
        if isinstance(every, bool) or not isinstance(every, int | float) or not 0 < every < timeout:
            raise LocalProtocolError(
                f"interval must be a number of seconds > 0 and < timeout ({timeout}), "
                f"not {interval!r}"
            )
        self._dead_man = _DeadManSwitch(timeout, float(every))
        actions: list[Action] = []
        if self.can_submit(state):
            self._refresh(actions, now)
        return actions

    def disarm(self, now: float, state: ConnectionState) -> list[Action]:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        if self._dead_man is None:
            return []
        self._dead_man = None
        actions: list[Action] = []
        if self.can_submit(state):
            self._submit_unpaced(CancelAllOrdersAfter(timeout=0), actions, now)
        return actions

    # ------------------------------------------------------------------ connection life

    def connected(self, token: str, actions: list[Action], now: float) -> None:
        """The connection is open and authenticated: an armed switch is sent at once."""
        self._token = token
        if self._dead_man is not None:
            self._refresh(actions, now)

    def connection_lost(self, actions: list[Action], now: float, reason: str) -> None:
        """Trading requests never survive their connection: settle each one now."""
        for response in self._inflight.connection_lost(now, reason):
            actions.append(Emit(response))
        if self._dead_man is not None:
            self._dead_man.next_at = NEVER  # re-armed as soon as the next token arrives
        self._token = None

    def close(self, actions: list[Action]) -> None:
        """A clean close disarms the switch first, so it does not cancel the orders; sent
        past the pacing budget, since it must leave before the close frame."""
        if self._dead_man is None:
            return
        self._dead_man = None
        if self._token is not None:
            disarm = CancelAllOrdersAfter(timeout=0)
            actions.append(Send(self._encode(disarm, next(self._ids))))

    # ------------------------------------------------------------------ answers, timers

    def on_response(self, response: Response, now: float) -> list[Action]:
        """A response to a trading method."""
        settled = self._inflight.on_response(response, now)
        return [] if settled is None else [Emit(settled)]

    def track_executions(self, reports: Sequence[Execution], now: float) -> None:
        """Keep the rate counter's order ages in step with the ``executions`` stream."""
        self._inflight.track_executions(reports, now)

    def expire(self, actions: list[Action], now: float) -> None:
        """Response timeouts, then paced requests whose time has come."""
        inflight = self._inflight
        for response in inflight.expire(now):
            actions.append(Emit(response))
        for req_id, request in inflight.take_due(now):
            self._send(request, req_id, actions, now)

    def refresh(self, actions: list[Action], now: float) -> None:
        """Re-send the dead man's switch when it is due."""
        switch = self._dead_man
        if switch is not None and self._token is not None and now >= switch.next_at:
            self._refresh(actions, now)

    # ------------------------------------------------------------------ internals

    def _encode(self, request: TradingRequest, req_id: int) -> str:
        params = request.params()
        assert self._token is not None
        params["token"] = self._token
        return encode_request(request.method, params, req_id)

    def _send(
        self, request: TradingRequest, req_id: int, actions: list[Action], now: float
    ) -> None:
        self._outbox.send(self._encode(request, req_id), req_id, self._sent, actions, now)

    def _sent(self, req_id: int, now: float) -> None:
        self._inflight.sent(req_id, now)

    def _refresh(self, actions: list[Action], now: float) -> None:
        switch = self._dead_man
        assert switch is not None
        switch.next_at = after(now, switch.interval)
        self._submit_unpaced(CancelAllOrdersAfter(timeout=switch.timeout), actions, now)

    def _submit_unpaced(
        self, request: CancelAllOrdersAfter, actions: list[Action], now: float
    ) -> None:
        req_id = next(self._ids)
        ready = self._inflight.submit(req_id, request, now)
        assert ready  # account-wide requests count against no pair: never held back
        self._send(request, req_id, actions, now)
