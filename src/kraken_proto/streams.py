"""The private streams part: ``executions`` and ``balances``, sequence-checked under the
configured :class:`~kraken_proto.config.GapPolicy`.

:class:`PrivateStreams` keeps one :class:`~kraken_proto.sequence.SequenceGate` per stream,
emits what a gate releases (one ``Execution`` or ``Balance`` per entry, numbered), reports
each hole once as ``GapDetected``, and when a gate can no longer trust its stream has the
:class:`~kraken_proto.subscriber.Subscriber` resubscribe it for a fresh snapshot (within the
resync budget). Executions are also handed to the trading part, which ages orders from them.
Gaps are counted in the protocol's :class:`~kraken_proto.counters.Tally`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from kraken_proto.actions import Action, Emit
from kraken_proto.config import ClientConfig
from kraken_proto.counters import Tally
from kraken_proto.events import Balance, Execution, GapDetected, ProtocolError
from kraken_proto.private import BalancesFrame, ExecutionsFrame
from kraken_proto.sequence import GateResult, SequenceGate
from kraken_proto.subscriber import Subscriber
from kraken_proto.wire import balance_problem, execution_problem

__all__ = ["PrivateFrame", "PrivateStreams"]

PrivateFrame = ExecutionsFrame | BalancesFrame
"""A data frame of a sequenced private stream."""
_set = msgspec.structs.force_setattr


class PrivateStreams:
    """The sequence gates of one private connection (see the module docstring)."""

    __slots__ = ("_config", "_gates", "_silence", "_subscriber", "_tally", "_track")

    def __init__(
        self,
        config: ClientConfig,
        subscriber: Subscriber,
        track_executions: Callable[[Sequence[Execution], float], None],
        tally: Tally,
    ) -> None:
        self._config = config
        self._tally = tally
        self._subscriber = subscriber
        self._track = track_executions
        self._silence = config.silent_subscription_timeout is not None
        self._gates: dict[str, SequenceGate[PrivateFrame]] = {}

    def on_frame(self, frame: PrivateFrame, now: float) -> list[Action]:
        """One ``executions`` or ``balances`` frame."""
        channel = "executions" if type(frame) is ExecutionsFrame else "balances"
        problem_of: Callable[[Any], str | None] = (
            execution_problem if channel == "executions" else balance_problem
        )
        for index, entry in enumerate(frame.data):
            problem = problem_of(entry)
            if problem is not None:
                # Dropped whole, like a frame that does not decode: delivering the rest
                # would hide a hole in the sequenced stream; the gate sees this one.
                problem = (
                    f"Kraken sent an unusable {channel} message (sequence {frame.sequence}, "
                    f"data[{index}]): {problem}; the message is dropped"
                )
                return [Emit(ProtocolError(problem, "", now))]
        gate = self._gates.get(channel)
        if gate is None:
            config = self._config
            gate = SequenceGate(
                config.gap_policy, config.gap_buffer_size, config.gap_buffer_timeout
            )
            self._gates[channel] = gate
        actions: list[Action] = []
        result = gate.accept(frame.sequence, frame, frame.type == "snapshot", now)
        self._release(channel, result, actions, now)
        if self._silence:
            self._subscriber.heard_stream(channel, now)
        return actions

    def deadline(self, best: float) -> float:
        """The earliest of ``best`` and the timeouts of holes held under
        ``GapPolicy.BUFFER``."""
        for gate in self._gates.values():
            deadline = gate.next_deadline()
            if deadline is not None and deadline < best:
                best = deadline
        return best

    def timers(self, actions: list[Action], now: float) -> None:
        """Give up on holes that stayed open ``gap_buffer_timeout`` seconds."""
        for channel, gate in list(self._gates.items()):
            deadline = gate.next_deadline()
            if deadline is not None and now >= deadline:
                self._release(channel, gate.handle_timer(now), actions, now)

    def reset(self) -> None:
        """The connection is gone: every stream starts again from its next snapshot."""
        for gate in self._gates.values():
            gate.reset()

    def _release(
        self, channel: str, result: GateResult[PrivateFrame], actions: list[Action], now: float
    ) -> None:
        """Emit what a sequence gate released, report its gaps, resync if it asks."""
        policy = self._config.gap_policy.value
        for expected, received in result.gaps:
            actions.append(Emit(GapDetected(channel, expected, received, policy, now)))
            self._tally.gap(channel)
        for frame in result.released:
            snapshot = frame.type == "snapshot"
            entry: Execution | Balance
            for entry in frame.data:
                _set(entry, "sequence", frame.sequence)
                _set(entry, "snapshot", snapshot)
                _set(entry, "received_at", now)
                actions.append(Emit(entry))
            if type(frame) is ExecutionsFrame:
                self._track(frame.data, now)
        if result.resync:
            self._resync(channel, actions, now)

    def _resync(self, channel: str, actions: list[Action], now: float) -> None:
        """Resubscribe a stream for a fresh snapshot after a sequence gap."""
        key = (channel, None)
        subscriber = self._subscriber
        gate = self._gates[channel]
        attempt = subscriber.spend_resync(key, now, active_only=True)
        if attempt is None:  # not active: its next snapshot restarts it anyway
            gate.reset()
        elif attempt > subscriber.resync_budget:
            subscriber.give_up(key, "sequence gaps", actions, now)
        elif not subscriber.resubscribe(key, actions, now):
            gate.reset()  # no snapshot will come: the next update restarts the stream
