"""Trading requests in flight: pacing, request/response matching and outcomes.

:class:`InFlight` is the protocol's book-keeping for trading methods (``add_order``,
``cancel_order``, ...). It holds each request from submission until exactly one
:class:`~kraken_proto.trading.OrderResponse` settles it:

- **pacing**: a request that would push its pair's rate counter over Kraken's threshold is
  held until the counter has decayed enough (at most ``max_pacing_delay``; longer waits are
  refused with :class:`~kraken_proto.errors.TradingRateLimitError` before anything is sent);
- **matching**: responses are matched by ``req_id``; ``cancel_order`` gets one response
  per cancelled order, so it settles when all of them arrived (or, when it names
  ``order_userref`` values whose match count is unknown, shortly after the first one);
- **outcomes**: ``OK`` when every response succeeded, ``REJECTED`` with Kraken's error
  otherwise, ``UNKNOWN`` when no answer came in ``request_timeout`` or the connection was
  lost after sending (never retried: the caller reconciles through ``executions``), and
  ``NOT_SENT`` when the connection closed before the request left.

No clock is read: every method takes ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from kraken_proto.config import ClientConfig
from kraken_proto.errors import TradingRateLimitError
from kraken_proto.private import FINAL_ORDER_STATUSES, Execution
from kraken_proto.ratecounter import RateCounterState, TradingRateCounter
from kraken_proto.timing import after
from kraken_proto.trading import (
    AddOrderResult,
    AmendOrderResult,
    BatchAddResult,
    EditOrderResult,
    OrderOutcome,
    OrderResponse,
    TradingRequest,
    TradingResult,
    parse_result,
)
from kraken_proto.wire import Response

__all__ = ["InFlight"]

USERREF_SETTLE = 0.25
"""Seconds a ``cancel_order`` by ``order_userref`` keeps collecting responses after the
first one: Kraken sends one per cancelled order and their number is not known in advance."""

_NEVER = float("inf")
# exec_type values after which an order's age (for cancel costs) starts from now. Snapshot
# rows of open orders carry the exec_type of their last report, often "new".
_PLACED = frozenset({"pending_new", "new"})
_AMENDED = frozenset({"amended", "restated"})


class _Pending:
    """One trading request between submission and its final response."""

    __slots__ = (
        "answered",
        "deadline",
        "error",
        "ready_at",
        "req_id",
        "request",
        "results",
        "sent",
    )

    def __init__(self, req_id: int, request: TradingRequest, ready_at: float) -> None:
        self.req_id = req_id
        self.request = request
        self.ready_at = ready_at  # when pacing lets it go
        self.sent = False
        self.deadline = _NEVER  # set when sent
        self.results: list[TradingResult] = []
        self.error: str | None = None
        self.answered = 0  # responses received


class InFlight:
    """Every trading request of one connection that has not been settled yet."""

    def __init__(self, config: ClientConfig) -> None:
        self._timeout = config.request_timeout
        self._max_pacing_delay = config.max_pacing_delay
        self._counter = TradingRateCounter(config.rate_tier)
        self._pending: dict[int, _Pending] = {}

    def rate_counter(self, symbol: str, now: float) -> RateCounterState:
        """The rate counter of ``symbol`` as this client has tracked it."""
        return self._counter.state(symbol, now)

    def __len__(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ submitting

    def submit(self, req_id: int, request: TradingRequest, now: float) -> bool:
        """Accept ``request``; return whether it may be sent now (else it is paced).

        The rate counter is charged at once, so requests submitted later see the cost of
        those still waiting. Raises :class:`TradingRateLimitError` (nothing kept) when the
        wait would exceed ``max_pacing_delay``.
        """
        wait = self._counter.wait_time(request, now)
        if wait > self._max_pacing_delay:
            pairs = self._counter.charges(request, now)
            raise TradingRateLimitError(request.symbol or ", ".join(sorted(pairs)), wait)
        self._counter.record(request, now)
        ready = wait <= 0.0
        # A request sent at once waits only for the message-rate budget (the outbox's
        # deadline): it has no pacing deadline of its own.
        self._pending[req_id] = _Pending(req_id, request, _NEVER if ready else now + wait)
        return ready

    def take_due(self, now: float) -> list[tuple[int, TradingRequest]]:
        """Paced requests whose time has come, in submission order; each is returned once
        (it then waits only for the message-rate budget, as the protocol's outbox)."""
        released = [p for p in self._pending.values() if not p.sent and p.ready_at <= now]
        for pending in released:
            pending.ready_at = _NEVER
        return [(p.req_id, p.request) for p in released]

    def sent(self, req_id: int, now: float) -> None:
        """The request left on the socket at ``now``: its response timeout starts."""
        pending = self._pending.get(req_id)
        if pending is not None:
            pending.sent = True
            pending.deadline = after(now, self._timeout)

    # ------------------------------------------------------------------ answers

    def on_response(self, response: Response, now: float) -> OrderResponse | None:
        """Match one trading response; return the final ``OrderResponse`` once settled.

        A response for no pending request (late, after its outcome was reported unknown)
        becomes an ``OrderResponse`` of its own, so the caller still learns what happened.
        A successful response with an unusable ``result`` settles the request as unknown.
        """
        pending = self._match(response)
        if pending is None:
            return self._late(response, now)
        pending.answered += 1
        if response.success is True:
            try:
                result = parse_result(pending.request.method, response.result)
            except msgspec.ValidationError as exc:
                del self._pending[pending.req_id]
                return self._unknown(pending, f"the response had an unusable result: {exc}", now)
            pending.results.append(result)
            self._note(pending.request, result, now)
        elif pending.error is None:  # a further refusal adds nothing to the first error
            pending.error = response.error or "request failed without an error message"
        expected = pending.request.expected_responses
        if expected is None:
            # Settle shortly after the first answer: more may be on the way.
            if pending.answered == 1:
                pending.deadline = min(pending.deadline, after(now, USERREF_SETTLE))
            return None
        if pending.answered < expected:
            return None
        return self._settle(pending, response, now)

    def expire(self, now: float) -> list[OrderResponse]:
        """Settle every sent request whose deadline has passed."""
        expired = [p for p in self._pending.values() if p.sent and p.deadline <= now]
        settled = []
        for pending in expired:
            if pending.answered:
                settled.append(self._settle(pending, None, now))
            else:
                del self._pending[pending.req_id]
                reason = f"no response within {self._timeout:g} s"
                settled.append(self._unknown(pending, reason, now))
        return settled

    def connection_lost(self, now: float, reason: str) -> list[OrderResponse]:
        """The connection is gone: settle everything still pending, in submission order."""
        settled = []
        for pending in list(self._pending.values()):
            if pending.answered:
                settled.append(self._settle(pending, None, now))
            elif pending.sent:
                del self._pending[pending.req_id]
                settled.append(self._unknown(pending, f"connection lost: {reason}", now))
            else:
                del self._pending[pending.req_id]
                settled.append(
                    OrderResponse(
                        pending.request.method,
                        pending.req_id,
                        OrderOutcome.NOT_SENT,
                        error=f"not sent: the connection closed first ({reason})",
                        received_at=now,
                    )
                )
        return settled

    def next_deadline(self) -> float | None:
        """The earliest pacing release or response deadline, or ``None``."""
        best = _NEVER
        for pending in self._pending.values():
            when = pending.deadline if pending.sent else pending.ready_at
            best = min(best, when)
        return None if best == _NEVER else best

    def track_executions(self, reports: Sequence[Execution], now: float) -> None:
        """Keep the rate counter's order ages in step with the ``executions`` stream.

        Orders placed elsewhere (REST, the web UI, another connection) appear here first;
        open orders of a snapshot are noted as new, which overstates their cancel cost
        (the safe side). Final reports forget the order.
        """
        counter = self._counter
        for report in reports:
            order_id = report.order_id
            if order_id is None:
                continue
            if report.order_status in FINAL_ORDER_STATUSES:
                counter.forget_order(order_id=order_id, cl_ord_id=report.cl_ord_id)
            elif report.exec_type in _PLACED and report.symbol is not None:
                counter.note_order(
                    report.symbol, now, order_id=order_id, cl_ord_id=report.cl_ord_id
                )
            elif report.exec_type in _AMENDED:
                symbol = report.symbol or counter.symbol_of(
                    order_id=order_id, cl_ord_id=report.cl_ord_id
                )
                if symbol is not None:
                    counter.note_order(symbol, now, order_id=order_id, cl_ord_id=report.cl_ord_id)

    # ------------------------------------------------------------------ helpers

    def _match(self, response: Response) -> _Pending | None:
        if response.req_id is not None:
            return self._pending.get(response.req_id)
        # Some refusals come without req_id: match them when only one request can be meant.
        candidates = [
            p for p in self._pending.values() if p.sent and p.request.method == response.method
        ]
        return candidates[0] if len(candidates) == 1 else None

    def _settle(self, pending: _Pending, response: Response | None, now: float) -> OrderResponse:
        del self._pending[pending.req_id]
        outcome = OrderOutcome.OK if pending.error is None else OrderOutcome.REJECTED
        return OrderResponse(
            pending.request.method,
            pending.req_id,
            outcome,
            results=tuple(pending.results),
            error=pending.error,
            time_in=None if response is None else response.time_in,
            time_out=None if response is None else response.time_out,
            received_at=now,
        )

    def _unknown(self, pending: _Pending, reason: str, now: float) -> OrderResponse:
        return OrderResponse(
            pending.request.method,
            pending.req_id,
            OrderOutcome.UNKNOWN,
            error=reason,
            received_at=now,
        )

    def _late(self, response: Response, now: float) -> OrderResponse | None:
        if response.req_id is None:
            return None
        results: tuple[TradingResult, ...] = ()
        error = response.error
        if response.success is True:
            try:
                results = (parse_result(response.method, response.result),)
            except msgspec.ValidationError:
                error = "late response with an unusable result"
        outcome = (
            OrderOutcome.OK if response.success is True and not error else OrderOutcome.REJECTED
        )
        return OrderResponse(
            response.method,
            response.req_id,
            outcome,
            results=results,
            error=error,
            time_in=response.time_in,
            time_out=response.time_out,
            received_at=now,
        )

    def _note(self, request: TradingRequest, result: TradingResult, now: float) -> None:
        """Remember when orders were placed or amended: cancel costs depend on their age."""
        symbol = request.symbol
        counter = self._counter
        if isinstance(result, AddOrderResult | EditOrderResult):
            if isinstance(result, EditOrderResult):
                counter.forget_order(order_id=result.original_order_id)  # replaced
            if symbol and result.order_id:
                counter.note_order(
                    symbol,
                    now,
                    order_id=result.order_id,
                    cl_ord_id=getattr(result, "cl_ord_id", None),  # an edit result has none
                )
        elif isinstance(result, AmendOrderResult):
            known = counter.symbol_of(order_id=result.order_id, cl_ord_id=result.cl_ord_id)
            if known is not None:
                counter.note_order(known, now, order_id=result.order_id, cl_ord_id=result.cl_ord_id)
        elif isinstance(result, BatchAddResult) and symbol:
            for row in result.orders:
                if row.order_id:
                    counter.note_order(symbol, now, order_id=row.order_id, cl_ord_id=row.cl_ord_id)
