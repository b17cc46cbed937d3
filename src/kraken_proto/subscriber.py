"""The subscriptions part: the records, their requests and acks, the settle-once calls, the
resync budget and the silent-subscription check.

:class:`Subscriber` keeps one :class:`~kraken_proto.subscriptions.Subscription` per
``(channel, symbol)`` across connections and moves its status only through
:data:`~kraken_proto.subscriptions.SUBSCRIPTION_TRANSITIONS`. Every move is reported to the
``moved`` listener it was built with, so whoever composes it
(:class:`~kraken_proto.protocol.KrakenProtocol`) can keep the books in step without reading
the records. Requests leave through the :class:`~kraken_proto.outbox.Outbox`; each awaits
one ack per symbol until ``ack_timeout`` after it left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec

from kraken_proto.actions import Action, Emit
from kraken_proto.calls import Answer, Calls
from kraken_proto.config import ClientConfig
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import (
    ProtocolError,
    Subscribed,
    SubscriptionFailed,
    Unsubscribed,
)
from kraken_proto.host import Host
from kraken_proto.outbox import Outbox
from kraken_proto.subscriptions import (
    SUBSCRIPTION_TRANSITIONS,
    Subscription,
    SubscriptionInfo,
    SubscriptionStatus,
    SubscriptionsView,
    SubscriptionTrigger,
    group_requests,
    unsubscribe_params,
    validate_subscription,
    validate_unsubscription,
)
from kraken_proto.timing import NEVER, after
from kraken_proto.wire import AckResult, Response, ack_result, encode_request

__all__ = ["Key", "MovedListener", "Subscriber"]

Key = tuple[str, str | None]
"""A subscription's ``(channel, symbol)``."""
MovedListener = Callable[
    [Subscription, SubscriptionTrigger, SubscriptionStatus | None, list[Action], float], None
]
"""``moved(record, trigger, new_status, actions, now)``: called after every move of a record
(``new_status`` ``None``: the record was forgotten), including its creation."""

_T = SubscriptionTrigger
_PENDING = SubscriptionStatus.PENDING
_ACTIVE = SubscriptionStatus.ACTIVE
_FAILED = SubscriptionStatus.FAILED


def _by_symbol(key: Key) -> str:
    return key[1] or ""


class _Request:
    """One request awaiting its acks: one per symbol still outstanding."""

    __slots__ = ("channel", "deadline", "initial", "internal", "keys", "method")

    def __init__(
        self, method: str, channel: str, keys: list[Key], *, internal: bool, initial: bool
    ) -> None:
        self.method = method
        self.channel = channel
        self.keys = set(keys)
        self.internal = internal  # sent by the core itself (a resync): acks are not emitted
        self.initial = initial  # part of the (re)subscribe when the connection opened
        self.deadline = NEVER  # set when the request actually leaves


class Subscriber:
    """Every subscription of one protocol, and the requests about them."""

    __slots__ = (
        "_calls",
        "_config",
        "_host",
        "_ids",
        "_last_data",
        "_moved",
        "_next_silence_check",
        "_outbox",
        "_replay",
        "_requests",
        "_silence_timeout",
        "_subs",
        "_token",
    )

    def __init__(
        self,
        config: ClientConfig,
        host: Host,
        *,
        replay: bool,
        outbox: Outbox,
        ids: Iterator[int],
        moved: MovedListener,
    ) -> None:
        self._config = config
        self._host = host
        self._replay = replay
        self._outbox = outbox
        self._ids = ids
        self._moved = moved
        self._subs: dict[Key, Subscription] = {}
        self._requests: dict[int, _Request] = {}
        self._calls = Calls()
        self._token: str | None = None
        self._silence_timeout = config.silent_subscription_timeout
        self._last_data: dict[Key, float] = {}
        self._next_silence_check = NEVER

    # ------------------------------------------------------------------ queries

    def view(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        groups: dict[SubscriptionStatus, list[SubscriptionInfo]] = {
            status: [] for status in SubscriptionStatus
        }
        for record in self._subs.values():
            groups[record.status].append(record.info())
        return SubscriptionsView(
            active=tuple(groups[SubscriptionStatus.ACTIVE]),
            pending=tuple(groups[SubscriptionStatus.PENDING]),
            failed=tuple(groups[SubscriptionStatus.FAILED]),
            unsubscribing=tuple(groups[SubscriptionStatus.UNSUBSCRIBING]),
        )

    @property
    def pending_calls(self) -> int:
        """Subscribe and unsubscribe calls not settled yet."""
        return len(self._calls)

    @property
    def resync_budget(self) -> int:
        """Resyncs allowed per subscription within ``resync_window``."""
        return self._config.resync_max_attempts

    @property
    def awaiting_initial(self) -> bool:
        """Whether a request sent when the connection opened is still unanswered."""
        return any(request.initial for request in self._requests.values())

    def deadline(self, best: float) -> float:
        """The earliest of ``best``, the ack timeouts and the next silence check."""
        check = self._next_silence_check
        best = check if check < best else best
        if self._requests:  # usually none: every request answered
            for request in self._requests.values():
                best = min(best, request.deadline)
        return best

    # ------------------------------------------------------------------ the user's calls

    def subscribe(
        self,
        channel: str,
        symbols: Sequence[str] | str | None,
        params: dict[str, Any],
        now: float,
        *,
        connected: bool,
    ) -> tuple[int, list[Action]]:
        """Record the subscriptions (sent now if ``connected``); the call's ``req_id`` and
        the actions. Raises ``LocalProtocolError`` for bad arguments or a duplicate."""
        checked, wire, user_depth = validate_subscription(
            channel, symbols, params, self._config.depth_headroom, self._host
        )
        for symbol in checked:
            existing = self._subs.get((channel, symbol))
            if existing is not None and (existing.status, _T.SUBSCRIBE) not in (
                SUBSCRIPTION_TRANSITIONS
            ):
                what = f"{channel} {symbol}" if symbol else channel
                raise LocalProtocolError(
                    f"already subscribed to {what} ({existing.status.value}); unsubscribe first"
                )
        actions: list[Action] = []
        records = [Subscription(channel, symbol, dict(wire), user_depth) for symbol in checked]
        for record in records:
            self._add(record, _T.SUBSCRIBE, actions, now)
        req_id = next(self._ids)
        self._open_call(req_id, "subscribe", channel, records, actions, now)
        if connected:
            self._request("subscribe", channel, wire, records, actions, now, req_id=req_id)
        return req_id, actions

    def unsubscribe(
        self,
        channel: str,
        symbols: Sequence[str] | str | None,
        params: dict[str, Any],
        now: float,
        *,
        connected: bool,
    ) -> tuple[int, list[Action]]:
        """Stop subscriptions (forgotten at once unless ``connected``); the call's
        ``req_id`` and the actions."""
        checked = validate_unsubscription(channel, symbols, params, self._host)
        records = []
        for symbol in checked:
            record = self._subs.get((channel, symbol))
            if record is None or (record.status, _T.UNSUBSCRIBE) not in SUBSCRIPTION_TRANSITIONS:
                what = f"{channel} {symbol}" if symbol else channel
                raise LocalProtocolError(f"not subscribed to {what}; nothing to unsubscribe")
            records.append(record)
        req_id = next(self._ids)
        actions: list[Action] = []
        self._open_call(req_id, "unsubscribe", channel, records, actions, now)
        if not connected:
            for record in records:
                self._move(record, _T.UNSUBSCRIBED, actions, now)
                self._answer(Unsubscribed(channel, record.symbol, None, now), actions)
            return req_id, actions
        wire_id: int | None = req_id
        for _, params_, members in group_requests(records):
            for record in members:
                self._move(record, _T.UNSUBSCRIBE, actions, now)
            unsubscribe = unsubscribe_params(params_)
            self._request(
                "unsubscribe", channel, unsubscribe, members, actions, now, req_id=wire_id
            )
            wire_id = None  # one request per depth: the others get their own req_id
        return req_id, actions

    def settle_calls(self, reason: str, actions: list[Action], now: float) -> None:
        """Settle every open call, failed with ``reason`` (the client closed or gave up)."""
        for result in self._calls.settle_all(reason, now):
            actions.append(Emit(result))

    # ------------------------------------------------------------------ connection life

    def connected(self, token: str | None, actions: list[Action], now: float) -> None:
        """The connection is ready for requests (with ``token`` where one is needed): send
        every remembered subscription, one request per channel and parameters."""
        self._token = token
        records = [
            r
            for r in self._subs.values()
            if r.status is _PENDING or (r.status is _FAILED and r.local_failure)
        ]
        for record in records:
            self._move(record, _T.RESUBSCRIBE, actions, now)
            record.error = None
        for channel, params, members in group_requests(records):
            self._request("subscribe", channel, params, members, actions, now, initial=True)

    def connection_lost(self, actions: list[Action], now: float) -> None:
        """The connection is gone: its requests and token with it; the records stay, to be
        sent again (those being unsubscribed end here)."""
        self._requests.clear()
        self._token = None
        self._next_silence_check = NEVER
        self._last_data.clear()
        for record in list(self._subs.values()):
            if self._move(record, _T.CONNECTION_LOST, actions, now) is None:
                # The user asked to stop it; a new connection simply will not subscribe it.
                self._answer(Unsubscribed(record.channel, record.symbol, None, now), actions)

    # ------------------------------------------------------------------ answers

    def on_ack(self, response: Response, actions: list[Action], now: float) -> bool:
        """Kraken's answer to a subscribe or unsubscribe; returns whether it acknowledged a
        subscription (from then on, silence counts as staleness)."""
        req_id = response.req_id
        request = self._requests.get(req_id) if req_id is not None else None
        # Kraken answers a failed unsubscribe with method "subscribe": trust our own record.
        method = request.method if request is not None else response.method
        result: dict[str, Any] = {}
        ack: AckResult | None = None
        if response.success is True:
            try:
                ack = ack_result(response.result)
            except msgspec.ValidationError as exc:
                problem = f"invalid {response.method} ack: {exc}"
                actions.append(Emit(ProtocolError(problem, "", now)))
                return False
            result = response.result
            keys = [(ack.channel, ack.symbol)]
        else:
            channel = response.channel or (request.channel if request is not None else "")
            if request is not None and response.symbol is None:
                keys = sorted(request.keys, key=_by_symbol)
            elif not channel:
                keys = [self._pending_key_for(response.symbol)]
            else:
                keys = [(channel, response.symbol)]
        internal = request is not None and request.internal
        asked = request is not None and not request.keys.isdisjoint(keys)
        if request is not None:
            request.keys.difference_update(keys)
            if not request.keys:
                del self._requests[req_id]  # type: ignore[arg-type]
        acked = False
        for key in keys:
            record = self._subs.get(key)
            if ack is None:
                error = response.error or "request failed without an error message"
                if method == "unsubscribe":
                    if not internal and record is not None:
                        self._move(record, _T.UNSUBSCRIBED, actions, now)
                        self._answer(Unsubscribed(key[0], key[1], req_id, now), actions)
                elif record is not None:
                    self._fail(record, _T.REFUSED, error, req_id, actions, now, local=False)
                else:
                    self._answer(SubscriptionFailed(key[0], key[1], error, req_id, now), actions)
            elif method == "unsubscribe":
                if internal:
                    continue
                if record is not None:
                    if request is None and record.status is _PENDING:
                        continue  # late, for an unsubscribe that timed out: not this one's
                    self._move(record, _T.UNSUBSCRIBED, actions, now)
                self._answer(Unsubscribed(key[0], key[1], req_id, now), actions)
            else:
                if record is not None:
                    self._move(record, _T.ACKED, actions, now)
                elif self._replay:
                    record = self._adopt(key[0], key[1], ack, actions, now)
                else:
                    if not asked:  # a late answer to our own request is no one's fault
                        what = f"{key[0]} {key[1]}" if key[1] is not None else key[0]
                        problem = (
                            f"Kraken acknowledged a subscription to {what} that this "
                            "client never requested; ignored"
                        )
                        actions.append(Emit(ProtocolError(problem, "", now)))
                    continue
                record.error = None
                record.local_failure = False
                acked = True
                if self._silence_timeout is not None:
                    self._last_data.setdefault(key, now)
                    if self._next_silence_check == NEVER:
                        self._next_silence_check = after(now, self._silence_timeout / 4)
                if not internal:
                    self._answer(Subscribed(key[0], key[1], req_id, result, now), actions)
        return acked

    def _pending_key_for(self, symbol: str | None) -> Key:
        """The key of the one pending subscription of ``symbol``, for a refusal that names
        no request and no channel (Kraken's own examples carry no ``req_id``)."""
        found = [r.key for r in self._subs.values() if r.symbol == symbol and r.status is _PENDING]
        return found[0] if len(found) == 1 else ("", symbol)

    def adopt(
        self, channel: str, symbol: str, depth: int, actions: list[Action], now: float
    ) -> None:
        """Record a subscription whose data arrived although it was never requested (a
        capture that starts mid-stream; replay only)."""
        self._adopt(channel, symbol, AckResult(channel, symbol, depth), actions, now)

    def _adopt(
        self, channel: str, symbol: str | None, ack: AckResult, actions: list[Action], now: float
    ) -> Subscription:
        params: dict[str, Any] = {}
        for name in ("depth", "interval", "event_trigger"):
            value = getattr(ack, name)
            if value is not None:
                params[name] = value
        depth = ack.depth if channel == "book" else None
        record = Subscription(channel, symbol, params, depth, _T.ADOPT)
        self._add(record, _T.ADOPT, actions, now)
        return record

    # ------------------------------------------------------------------ timers

    def expire(self, actions: list[Action], now: float) -> None:
        """Requests not acknowledged within ``ack_timeout``: their subscriptions fail (an
        unsubscribe ends anyway)."""
        expired = [
            (req_id, request)
            for req_id, request in self._requests.items()
            if now >= request.deadline
        ]
        for req_id, request in expired:
            del self._requests[req_id]
            error = f"no acknowledgement within {self._config.ack_timeout:g} s"
            for key in sorted(request.keys, key=_by_symbol):
                record = self._subs.get(key)
                if record is None:
                    continue
                if request.method == "unsubscribe":
                    if not request.internal:
                        self._move(record, _T.UNSUBSCRIBED, actions, now)
                        self._answer(
                            Unsubscribed(record.channel, record.symbol, req_id, now), actions
                        )
                    continue
                self._fail(record, _T.TIMED_OUT, error, req_id, actions, now, local=True)

    def silent(self, now: float) -> str | None:
        """When a check is due: the reason to reconnect if an acknowledged subscription has
        been silent for ``silent_subscription_timeout`` while the connection lives."""
        if now < self._next_silence_check:
            return None
        timeout = self._silence_timeout
        assert timeout is not None
        self._next_silence_check = after(now, timeout / 4)
        for record in self._subs.values():
            if record.status is not _ACTIVE or record.symbol is None:
                continue
            last = self._last_data.get(record.key)
            if last is not None and now - last >= timeout:
                return f"stale: {record.channel} {record.symbol} silent for {now - last:.1f} s"
        return None

    def heard(self, channel: str, entries: Sequence[Any], now: float) -> None:
        """Note data for each entry's symbol on ``channel`` (the silent-subscription check).

        Only subscriptions already acknowledged are noted: data for anything else must not
        grow the table.
        """
        last_data = self._last_data
        for entry in entries:
            key = (channel, entry.symbol)
            if key in last_data:
                last_data[key] = now

    def heard_stream(self, channel: str, now: float) -> None:
        """Note data on a private stream (no symbol)."""
        self._last_data[(channel, None)] = now

    # ------------------------------------------------------------------ resyncs

    def spend_resync(self, key: Key, now: float, *, active_only: bool = False) -> int | None:
        """Count one resync of ``key`` against its budget: the attempt number (above
        ``resync_max_attempts`` once the budget is spent), or ``None`` when the
        subscription cannot be resynced (it is being unsubscribed, or not active while
        ``active_only``)."""
        record = self._subs.get(key)
        if record is None or (record.status, _T.RESYNC) not in SUBSCRIPTION_TRANSITIONS:
            return None
        if active_only and record.status is not _ACTIVE:
            return None
        if now - record.resync_window_start > self._config.resync_window:
            record.resync_count = 0
            record.resync_window_start = now
        record.resync_count += 1
        return record.resync_count

    def resubscribe(self, key: Key, actions: list[Action], now: float) -> bool:
        """Resubscribe ``key`` for a fresh snapshot (unsubscribe, then subscribe; the acks
        are not reported); returns whether a snapshot will come."""
        record = self._subs[key]
        self._move(record, _T.RESYNC, actions, now)
        channel = record.channel
        unsubscribe = unsubscribe_params(record.params)
        self._request("unsubscribe", channel, unsubscribe, [record], actions, now, internal=True)
        self._request("subscribe", channel, record.params, [record], actions, now, internal=True)
        return record.params.get("snapshot") is not False

    def give_up(self, key: Key, reason: str, actions: list[Action], now: float) -> None:
        """The resync budget of ``key`` is spent: the subscription fails (retried after a
        reconnect) and Kraken is asked to stop sending it."""
        config = self._config
        record = self._subs[key]
        error = (
            f"{reason}; gave up after {config.resync_max_attempts} resyncs "
            f"within {config.resync_window:g} s"
        )
        self._fail(record, _T.GIVE_UP, error, None, actions, now, local=True)
        unsubscribe = unsubscribe_params(record.params)
        self._request(
            "unsubscribe", record.channel, unsubscribe, [record], actions, now, internal=True
        )

    # ------------------------------------------------------------------ internals

    def _add(
        self, record: Subscription, trigger: SubscriptionTrigger, actions: list[Action], now: float
    ) -> None:
        """A record comes to be (``SUBSCRIBE`` or ``ADOPT``), replacing a failed one."""
        self._subs[record.key] = record
        self._moved(record, trigger, record.status, actions, now)

    def _move(
        self, record: Subscription, trigger: SubscriptionTrigger, actions: list[Action], now: float
    ) -> SubscriptionStatus | None:
        """Move ``record`` through the table (the only way its status changes), forget it
        when that ends it, and tell the listener."""
        status = record.move(trigger)
        if status is None:
            del self._subs[record.key]
            self._last_data.pop(record.key, None)
        self._moved(record, trigger, status, actions, now)
        return status

    def _fail(
        self,
        record: Subscription,
        trigger: SubscriptionTrigger,
        error: str,
        req_id: int | None,
        actions: list[Action],
        now: float,
        *,
        local: bool,
    ) -> None:
        """Report one symbol's failure; the record fails unless it is being unsubscribed."""
        self._answer(SubscriptionFailed(record.channel, record.symbol, error, req_id, now), actions)
        if self._move(record, trigger, actions, now) is _FAILED:
            record.error = error
            record.local_failure = local

    def _open_call(
        self,
        req_id: int,
        method: str,
        channel: str,
        records: list[Subscription],
        actions: list[Action],
        now: float,
    ) -> None:
        keys = [record.key for record in records]
        for result in self._calls.open(req_id, method, channel, keys, now):
            actions.append(Emit(result))

    def _answer(self, answer: Answer, actions: list[Action]) -> None:
        """Emit one symbol's answer, then the result of the call it completes, if any."""
        actions.append(Emit(answer))
        result = self._calls.answer(answer, answer.received_at)
        if result is not None:
            actions.append(Emit(result))

    def _request(
        self,
        method: str,
        channel: str,
        params: dict[str, Any],
        records: list[Subscription],
        actions: list[Action],
        now: float,
        *,
        internal: bool = False,
        initial: bool = False,
        req_id: int | None = None,
    ) -> None:
        if req_id is None:
            req_id = next(self._ids)
        keys = [r.key for r in records]
        self._requests[req_id] = _Request(method, channel, keys, internal=internal, initial=initial)
        wire: dict[str, Any] = {"channel": channel}
        if records[0].symbol is not None:
            wire["symbol"] = [r.symbol for r in records]
        wire.update(params)
        if self._token is not None:
            wire["token"] = self._token
        self._outbox.send(encode_request(method, wire, req_id), req_id, self._sent, actions, now)

    def _sent(self, req_id: int, now: float) -> None:
        """A request left: its acks are due within ``ack_timeout``."""
        request = self._requests.get(req_id)
        if request is not None:
            request.deadline = after(now, self._config.ack_timeout)
