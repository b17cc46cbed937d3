"""The sequence gate: in-order delivery of a private stream under a :class:`GapPolicy`.

Kraken numbers every message of a private subscription (``executions``, ``balances``) with
a top-level ``sequence`` that goes up by one per message. One :class:`SequenceGate` per
subscription checks it and decides, for each frame, whether it is processed now, dropped,
held back (``GapPolicy.BUFFER``) or whether the stream must be resubscribed for a fresh
snapshot. The gate is generic over the frame type and never looks inside a frame.

Rules:

- A snapshot (re)starts the stream: it is released, the buffer is cleared and the next
  sequence expected is the snapshot's plus one.
- Before any snapshot (right after construction or :meth:`SequenceGate.reset`), updates
  are released as they come and the first one fixes the next sequence expected (Kraken
  sends updates first when the subscription asked for no snapshot).
- The frame expected is released; under ``BUFFER``, held frames that now follow it without
  a hole are released after it, in order.
- A duplicate or old frame (below the sequence expected, or already held) is dropped
  silently.
- A newer frame opens a hole. Each hole is reported once, as ``(expected, received)``,
  when it is detected: its first missing sequence and the frame that revealed it. Then:
  ``IGNORE`` releases the frame and carries on after it; ``RESYNC`` drops it and asks for
  a resync; ``BUFFER`` holds it until the hole fills, and asks for a resync when the buffer
  would exceed its size or the oldest hole stays open ``buffer_timeout`` seconds.
- After a resync is asked for, everything is dropped until the next snapshot, and no
  further gap is reported. The caller resubscribes and calls :meth:`SequenceGate.reset`
  if the new subscription will send no snapshot.
"""

from __future__ import annotations

import heapq
from typing import Any, Generic, TypeVar

import msgspec

from kraken_proto.config import GapPolicy

__all__ = ["GateResult", "SequenceGate"]

T = TypeVar("T")


class GateResult(msgspec.Struct, Generic[T], frozen=True):
    """What one input to a :class:`SequenceGate` decided.

    ``released``: the frames to process now, in sequence order. ``gaps``: one
    ``(expected, received)`` pair per hole detected by this input. ``resync``: the stream
    can no longer be trusted; resubscribe it for a fresh snapshot (the gate drops every
    frame until that snapshot arrives).
    """

    released: tuple[T, ...] = ()
    gaps: tuple[tuple[int, int], ...] = ()
    resync: bool = False


_NOTHING: GateResult[Any] = GateResult()


class SequenceGate(Generic[T]):
    """Sequence checking for one private subscription (see the module docstring).

    ``policy`` is the :class:`GapPolicy`; ``buffer_size`` (>= 1) bounds the frames held
    under ``BUFFER``; ``buffer_timeout`` (seconds, >= 0) is how long ``BUFFER`` waits for a
    hole to fill. Time only comes in through ``now`` (the driver's monotonic clock).
    """

    def __init__(self, policy: GapPolicy, buffer_size: int, buffer_timeout: float) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if not buffer_timeout >= 0:
            raise ValueError(f"buffer_timeout must be >= 0 seconds, got {buffer_timeout!r}")
        self._policy = policy
        self._buffer_size = buffer_size
        self._buffer_timeout = buffer_timeout
        self._expected: int | None = None
        self._waiting = False  # a resync was asked for: drop all until a snapshot
        # BUFFER: held frames by sequence, with their arrival times.
        self._held: dict[int, tuple[T, float]] = {}
        self._order: list[int] = []  # a heap of the held sequences
        self._top = 0  # the highest sequence seen so far (held or released)

    @property
    def policy(self) -> GapPolicy:
        """The gap policy this gate applies."""
        return self._policy

    @property
    def expected(self) -> int | None:
        """The next sequence expected; ``None`` before a snapshot (or the first update)."""
        return self._expected

    @property
    def waiting_for_snapshot(self) -> bool:
        """Whether a resync was asked for and every frame is dropped until a snapshot."""
        return self._waiting

    @property
    def held(self) -> int:
        """How many frames ``BUFFER`` holds while waiting for a hole to fill."""
        return len(self._held)

    def reset(self) -> None:
        """Start over for a new subscription: forget everything, expect a snapshot again.

        Updates that arrive before a snapshot are then released as they come (the first
        fixes the sequence expected), as right after construction.
        """
        self._expected = None
        self._waiting = False
        self._clear()

    def accept(self, sequence: int, frame: T, snapshot: bool, now: float) -> GateResult[T]:
        """Take one frame of the stream; return what to process now and what was detected."""
        if snapshot:
            self._waiting = False
            self._clear()
            self._expected = sequence + 1
            self._top = sequence
            return GateResult((frame,))
        if self._waiting:
            return _NOTHING
        expected = self._expected
        if expected is None:
            self._expected = sequence + 1
            self._top = sequence
            return GateResult((frame,))
        if sequence == expected:
            return self._release_from(frame, sequence)
        if sequence < expected or sequence in self._held:
            return _NOTHING
        return self._out_of_order(sequence, frame, expected, now)

    def next_deadline(self) -> float | None:
        """When the oldest open hole times out under ``BUFFER`` (``None``: nothing held)."""
        if not self._held:
            return None
        oldest = min(arrived for _, arrived in self._held.values())
        return oldest + self._buffer_timeout

    def handle_timer(self, now: float) -> GateResult[T]:
        """Give up on a hole that stayed open ``buffer_timeout`` seconds: ask for a resync."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return _NOTHING
        return self._give_up()

    # ------------------------------------------------------------------------- internals

    def _clear(self) -> None:
        self._held.clear()
        self._order.clear()

    def _give_up(self) -> GateResult[T]:
        self._waiting = True
        self._expected = None
        self._clear()
        return GateResult(resync=True)

    def _release_from(self, frame: T, sequence: int) -> GateResult[T]:
        """Release the expected frame, then every held frame that follows it contiguously."""
        released = [frame]
        following = sequence + 1
        order = self._order
        held = self._held
        while order and order[0] == following:
            heapq.heappop(order)
            released.append(held.pop(following)[0])
            following += 1
        self._expected = following
        self._top = max(self._top, sequence)
        return GateResult(tuple(released))

    def _out_of_order(self, sequence: int, frame: T, expected: int, now: float) -> GateResult[T]:
        """A frame beyond the sequence expected: report a new hole, then apply the policy."""
        top = max(self._top, expected - 1)
        gaps = ((top + 1, sequence),) if sequence > top + 1 else ()
        self._top = max(top, sequence)
        policy = self._policy
        if policy is GapPolicy.IGNORE:
            self._expected = sequence + 1
            return GateResult((frame,), gaps)
        if policy is GapPolicy.BUFFER and len(self._held) < self._buffer_size:
            self._held[sequence] = (frame, now)
            heapq.heappush(self._order, sequence)
            return GateResult((), gaps)
        self._give_up()
        return GateResult((), gaps, resync=True)
