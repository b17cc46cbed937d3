"""The subscription status table, on its own and as exercised through every protocol input."""

from __future__ import annotations

import copy
import itertools
import json
import random
from typing import Any

import pytest
from budget import sized
from frames import NaiveBook, ack, error
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kraken_proto import (
    Action,
    BookState,
    ClientConfig,
    ConnectionState,
    Emit,
    KrakenProtocol,
    LocalProtocolError,
    ReconnectConfig,
    Send,
    SubscriptionResult,
    SubscriptionStatus,
)
from kraken_proto.subscriptions import (
    SUBSCRIPTION_TRANSITIONS,
    Subscription,
    SubscriptionTrigger,
    subscription_transition,
)

T = SubscriptionTrigger
P, A, U, F = (
    SubscriptionStatus.PENDING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.UNSUBSCRIBING,
    SubscriptionStatus.FAILED,
)
STATUSES: list[SubscriptionStatus | None] = [None, *SubscriptionStatus]


def test_every_status_and_trigger_is_either_in_the_table_or_refused() -> None:
    for status, trigger in itertools.product(STATUSES, SubscriptionTrigger):
        if (status, trigger) in SUBSCRIPTION_TRANSITIONS:
            assert (
                subscription_transition(status, trigger)
                is SUBSCRIPTION_TRANSITIONS[(status, trigger)]
            )
        else:
            with pytest.raises(LocalProtocolError, match=trigger.value):
                subscription_transition(status, trigger)


def test_kraken_and_the_clock_can_never_be_refused() -> None:
    """Remote answers, timeouts and connection loss apply to a record in any status."""
    for trigger in (T.ACKED, T.REFUSED, T.TIMED_OUT, T.UNSUBSCRIBED, T.CONNECTION_LOST):
        for status in SubscriptionStatus:
            assert (status, trigger) in SUBSCRIPTION_TRANSITIONS


def test_what_the_user_asked_to_stop_never_comes_back_by_itself() -> None:
    """From UNSUBSCRIBING only the end of the subscription leads anywhere else."""
    for (status, trigger), target in SUBSCRIPTION_TRANSITIONS.items():
        if status is U:
            assert target in (U, None), trigger
    assert (U, T.RESYNC) not in SUBSCRIPTION_TRANSITIONS
    assert (U, T.RESUBSCRIBE) not in SUBSCRIPTION_TRANSITIONS
    assert subscription_transition(U, T.CONNECTION_LOST) is None


def test_a_record_is_born_pending_or_adopted_active_and_ends_unsubscribed() -> None:
    assert Subscription("trade", "BTC/USD", {}, None).status is P
    adopted = Subscription("trade", "BTC/USD", {}, None, T.ADOPT)
    assert adopted.status is A
    assert adopted.move(T.UNSUBSCRIBE) is U and adopted.status is U
    assert adopted.move(T.UNSUBSCRIBED) is None
    assert adopted.status is U  # the record is forgotten as it was
    with pytest.raises(LocalProtocolError, match="'subscribe' is not possible"):
        adopted.move(T.SUBSCRIBE)


def test_only_failures_are_resubscribed_by_the_user_or_a_new_connection() -> None:
    for status in SubscriptionStatus:
        allowed = (status, T.SUBSCRIBE) in SUBSCRIPTION_TRANSITIONS
        assert allowed is (status is F)
    assert {s for s, t in SUBSCRIPTION_TRANSITIONS if t is T.RESUBSCRIBE} == {P, F}


# --------------------------------------------------------------------------- the machine

SYMBOLS = ("BTC/USD", "ETH/USD")
CHANNELS = ("book", "trade")
Key = tuple[str, str | None]
KEYS: list[Key] = [(c, s) for c in CHANNELS for s in SYMBOLS]
ALWAYS = {T.CONNECTION_LOST}  # a timer or a refused token may end the connection


def _reach(status: SubscriptionStatus | None, triggers: set[SubscriptionTrigger]) -> set[Any]:
    """Every status reachable from ``status`` in at most two moves by ``triggers``."""
    seen: set[Any] = {status}
    frontier = {status}
    for _ in range(2):
        step = set()
        for current in frontier:
            for trigger in triggers:
                if (current, trigger) in SUBSCRIPTION_TRANSITIONS:
                    step.add(SUBSCRIPTION_TRANSITIONS[(current, trigger)])
        frontier = step - seen
        seen |= step
    return seen


class SubscriptionMachine(RuleBasedStateMachine):
    """Drive a protocol with subscriptions, acks, refusals, book frames (resyncs), timers
    and connection drops in any order.

    After every input each subscription's status has moved only along table entries that
    the input can trigger; a book exists exactly while its subscription does; the
    connection is RESYNCING exactly while it is subscribed and a book is being rebuilt; a
    key the user unsubscribed is never subscribed again on the wire until the user asks;
    every call settles at most once, and all of them once the client closes.
    """

    def __init__(self) -> None:
        super().__init__()
        config = ClientConfig(
            ack_timeout=1.0,
            stale_timeout=1000.0,
            ping_interval=None,
            resync_max_attempts=2,
            resync_window=60.0,
            reconnect=ReconnectConfig(jitter=0.0, initial_delay=0.5),
            rng=random.Random(3),
        )
        self.proto = KrakenProtocol(config)
        self.now = 0.0
        self.requests: list[tuple[int, str, str, list[str]]] = []
        self.wanted: set[Key] = set()
        self.books = {symbol: NaiveBook(symbol) for symbol in SYMBOLS}
        self.calls: dict[int, int] = {}  # req_id -> SubscriptionResult count

    # -- plumbing

    def statuses(self) -> dict[Key, SubscriptionStatus]:
        view = self.proto.subscriptions
        found: dict[Key, SubscriptionStatus] = {}
        for group in (view.active, view.pending, view.failed, view.unsubscribing):
            for info in group:
                key = (info.channel, info.symbol)
                assert key not in found, f"{key} listed twice"
                found[key] = info.status
        return found

    def feed(
        self,
        triggers: set[SubscriptionTrigger],
        call: Any,
        *args: Any,
        keys: set[Key] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Make one input; check every status move against the table."""
        before = self.statuses()
        try:
            returned = call(*args, **kwargs)
        except LocalProtocolError:
            assert self.statuses() == before
            return None
        actions: list[Action] = returned[1] if isinstance(returned, tuple) else returned
        after = self.statuses()
        for key in KEYS:
            old, new = before.get(key), after.get(key)
            allowed = triggers | ALWAYS if keys is None or key in keys else ALWAYS
            assert new in _reach(old, allowed), (key, old, new, sorted(t.value for t in allowed))
        self.observe(actions)
        return returned

    def observe(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                message = json.loads(action.text)
                params = message.get("params") or {}
                if message["method"] in ("subscribe", "unsubscribe"):
                    symbols = params.get("symbol", [])
                    entry = (message["req_id"], message["method"], params["channel"], symbols)
                    self.requests.append(entry)
                    if message["method"] == "subscribe":
                        for symbol in symbols:
                            assert (params["channel"], symbol) in self.wanted, symbol
            elif isinstance(action, Emit) and isinstance(action.event, SubscriptionResult):
                req_id = action.event.req_id
                self.calls[req_id] = self.calls.get(req_id, 0) + 1

    # -- the connection

    @initialize(connected=st.booleans())
    def start(self, connected: bool) -> None:
        if connected:
            self.connect()
            self.connection_made()

    @rule()
    def connect(self) -> None:
        self.feed(set(), self.proto.connect, self.now)

    @rule()
    def connection_made(self) -> None:
        self.feed({T.RESUBSCRIBE}, self.proto.connection_made, self.now)

    @rule(code=st.sampled_from([None, 1006, 1008]))
    def connection_lost(self, code: int | None) -> None:
        self.feed({T.CONNECTION_LOST}, self.proto.connection_lost, self.now, close_code=code)

    @rule()
    def close(self) -> None:
        if self.feed({T.CONNECTION_LOST}, self.proto.close, self.now) is not None:
            assert self.proto.pending_calls == 0
            assert all(count == 1 for count in self.calls.values())

    @rule(dt=st.sampled_from([0.1, 0.4, 0.7, 1.5]))
    def timer(self, dt: float) -> None:
        self.now += dt
        triggers = {T.TIMED_OUT, T.UNSUBSCRIBED, T.RESUBSCRIBE}
        self.feed(triggers, self.proto.handle_timer, self.now)

    # -- the user

    @rule(key=st.sampled_from(KEYS))
    def subscribe(self, key: Key) -> None:
        channel, symbol = key
        wanted = key in self.wanted
        self.wanted.add(key)  # before: the request may leave at once
        returned = self.feed({T.SUBSCRIBE}, self.proto.subscribe, channel, [symbol], self.now)
        if returned is None:
            if not wanted:
                self.wanted.discard(key)
        else:
            self.calls.setdefault(returned[0], 0)

    @rule(key=st.sampled_from(KEYS))
    def unsubscribe(self, key: Key) -> None:
        channel, symbol = key
        triggers = {T.UNSUBSCRIBE, T.UNSUBSCRIBED}
        returned = self.feed(triggers, self.proto.unsubscribe, channel, [symbol], self.now)
        if returned is not None:
            self.wanted.discard(key)
            self.calls.setdefault(returned[0], 0)

    # -- Kraken

    @rule(data=st.data(), success=st.booleans())
    def answer(self, data: st.DataObject, success: bool) -> None:
        if not self.requests:
            return
        req_id, method, channel, symbols = data.draw(st.sampled_from(self.requests))
        symbol = data.draw(st.sampled_from(symbols))
        extra = {"depth": 10} if channel == "book" else {}
        if success:
            frame = ack(channel, symbol, req_id, method=method, **extra)
        else:
            frame = error("EGeneral:Invalid arguments", req_id, symbol, method=method)
        triggers = {T.ACKED, T.REFUSED, T.UNSUBSCRIBED}
        # A refusal names no channel: it may be matched to the one pending key of its symbol.
        keys = {(channel, symbol)} if success else {(c, symbol) for c in CHANNELS}
        self.feed(triggers, self.proto.receive_data, frame, self.now, keys=keys)

    @rule(symbol=st.sampled_from(SYMBOLS), good=st.booleans(), snapshot=st.booleans())
    def book_frame(self, symbol: str, good: bool, snapshot: bool) -> None:
        model = self.books[symbol] if good else copy.deepcopy(self.books[symbol])
        if snapshot:
            model = NaiveBook(symbol)
            if good:
                self.books[symbol] = model
            frame = model.frame(
                [("99.0", "1")], [("101.0", "2")], snapshot=True, checksum=None if good else 7
            )
        else:
            frame = model.frame([("98.5", "0.5")], [], checksum=None if good else 7)
        triggers = {T.RESYNC, T.GIVE_UP}
        self.feed(triggers, self.proto.receive_data, frame, self.now, keys={("book", symbol)})

    # -- invariants

    @invariant()
    def books_follow_their_subscriptions(self) -> None:
        statuses = self.statuses()
        for symbol in SYMBOLS:
            assert (self.proto.book(symbol) is not None) is (("book", symbol) in statuses)

    @invariant()
    def resyncing_means_a_book_is_being_rebuilt(self) -> None:
        state = self.proto.state
        rebuilding = any(
            book is not None and book.state is BookState.RESYNCING
            for book in map(self.proto.book, SYMBOLS)
        )
        if state is ConnectionState.RESYNCING:
            assert rebuilding
        if state is ConnectionState.SUBSCRIBED:
            assert not rebuilding

    @invariant()
    def no_call_settles_twice(self) -> None:
        assert all(count <= 1 for count in self.calls.values())


TestSubscriptionMachine = SubscriptionMachine.TestCase
TestSubscriptionMachine.settings = sized(50, 200, stateful_step_count=50)
