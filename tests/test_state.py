"""The transition table, on its own and as exercised through every protocol input."""

from __future__ import annotations

import itertools

import pytest
from budget import sized
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kraken_proto import (
    ClientConfig,
    ConnectionState,
    Emit,
    KrakenProtocol,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
)
from kraken_proto.state import TRANSITIONS, Trigger, transition

S = ConnectionState


def test_every_state_and_trigger_is_either_in_the_table_or_refused() -> None:
    for state, trigger in itertools.product(ConnectionState, Trigger):
        if (state, trigger) in TRANSITIONS:
            assert transition(state, trigger) is TRANSITIONS[(state, trigger)]
        else:
            with pytest.raises(LocalProtocolError, match=trigger.value):
                transition(state, trigger)


def test_table_has_no_self_loops_and_close_reaches_closed_from_everywhere() -> None:
    assert all(state is not target for (state, _), target in TRANSITIONS.items())
    for state in ConnectionState:
        if state is not S.CLOSED:
            assert transition(state, Trigger.CLOSE) is S.CLOSED


def test_documented_happy_path() -> None:
    path = [
        (S.DISCONNECTED, Trigger.CONNECT, S.CONNECTING),
        (S.CONNECTING, Trigger.OPENED_PRIVATE, S.AUTHENTICATING),
        (S.AUTHENTICATING, Trigger.AUTHENTICATED, S.SUBSCRIBING),
        (S.SUBSCRIBING, Trigger.SETTLED, S.SUBSCRIBED),
        (S.SUBSCRIBED, Trigger.RESYNC_STARTED, S.RESYNCING),
        (S.RESYNCING, Trigger.RESYNC_FINISHED, S.SUBSCRIBED),
        (S.SUBSCRIBED, Trigger.FAILED, S.DEGRADED),
        (S.DEGRADED, Trigger.RETRY, S.CONNECTING),
        (S.CONNECTING, Trigger.GIVE_UP, S.CLOSED),
        (S.CLOSED, Trigger.CONNECT, S.CONNECTING),
    ]
    for state, trigger, target in path:
        assert transition(state, trigger) is target


ACK = (
    '{"method":"subscribe","result":{"channel":"ticker","snapshot":true,"symbol":"%s"},'
    '"success":true,"req_id":%d}'
)


class ProtocolStates(RuleBasedStateMachine):
    """Drive a protocol with every input in any order; check the emitted transitions.

    Each input either raises LocalProtocolError and changes nothing, or returns actions
    whose StateChanged events chain from the previous state to the current one, each
    step being an entry of the table.
    """

    def __init__(self) -> None:
        super().__init__()
        config = ClientConfig(
            api_key="key",
            api_secret="c2VjcmV0",
            ack_timeout=2.0,
            stale_timeout=3.0,
            ping_interval=1.0,
            reconnect=ReconnectConfig(max_attempts=3, jitter=0.0),
        )
        self.private = False
        self.proto = KrakenProtocol(config)
        self.now = 0.0
        self.req_id = 0

    def check(self, call: object, *args: object, **kwargs: object) -> None:
        before = self.proto.state
        try:
            actions = call(*args, **kwargs)  # type: ignore[operator]
        except LocalProtocolError:
            assert self.proto.state is before
            return
        state = before
        for action in actions:
            if isinstance(action, Emit) and isinstance(action.event, StateChanged):
                event = action.event
                assert event.old == state.value
                target = ConnectionState(event.new)
                assert any(TRANSITIONS.get((state, trigger)) is target for trigger in Trigger), (
                    state,
                    target,
                )
                state = target
        assert state is self.proto.state

    @rule(dt=st.floats(min_value=0.0, max_value=5.0))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.check(self.proto.handle_timer, self.now)

    @rule()
    def fire_deadline(self) -> None:
        deadline = self.proto.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)
            self.check(self.proto.handle_timer, self.now)

    @rule()
    def connect(self) -> None:
        self.check(self.proto.connect, self.now)

    @rule()
    def connection_made(self) -> None:
        self.check(self.proto.connection_made, self.now)

    @rule(code=st.sampled_from([None, 1000, 1001, 1006, 1008]))
    def connection_lost(self, code: int | None) -> None:
        self.check(self.proto.connection_lost, self.now, close_code=code)

    @rule()
    def close(self) -> None:
        self.check(self.proto.close, self.now)

    @rule(token=st.sampled_from(["tok", ""]))
    def token(self, token: str) -> None:
        self.check(self.proto.token_received, token, self.now)

    @rule(symbol=st.sampled_from(["BTC/USD", "ETH/USD"]))
    def subscribe(self, symbol: str) -> None:
        self.check(self.proto.subscribe, "ticker", [symbol], self.now)

    @rule(symbol=st.sampled_from(["BTC/USD", "ETH/USD"]))
    def unsubscribe(self, symbol: str) -> None:
        self.check(self.proto.unsubscribe, "ticker", [symbol], self.now)

    @rule(symbol=st.sampled_from(["BTC/USD", "ETH/USD"]), req_id=st.integers(1, 6))
    def ack(self, symbol: str, req_id: int) -> None:
        self.check(self.proto.receive_data, ACK % (symbol, req_id), self.now)

    @rule()
    def heartbeat(self) -> None:
        self.check(self.proto.receive_data, '{"channel":"heartbeat"}', self.now)

    @invariant()
    def deadline_is_consistent(self) -> None:
        state = self.proto.state
        deadline = self.proto.next_deadline()
        if state in (S.CONNECTING, S.DEGRADED):
            assert deadline is not None
        if state in (S.DISCONNECTED, S.CLOSED):
            assert deadline is None


class PrivateProtocolStates(ProtocolStates):
    """The same, on a private connection (AUTHENTICATING on the way)."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = KrakenProtocol(self.proto.config, private=True)


TestProtocolStates = ProtocolStates.TestCase
TestProtocolStates.settings = sized(60, 150, stateful_step_count=40)
TestPrivateProtocolStates = PrivateProtocolStates.TestCase
TestPrivateProtocolStates.settings = sized(40, 100, stateful_step_count=40)
