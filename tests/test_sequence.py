"""The sequence gate of private streams: snapshots, duplicates, gaps under each GapPolicy."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.config import GapPolicy
from kraken_proto.sequence import GateResult, SequenceGate

Frame = tuple[int, int]  # (sequence, arrival index): tells copies of a sequence apart

IGNORE, RESYNC, BUFFER = GapPolicy.IGNORE, GapPolicy.RESYNC, GapPolicy.BUFFER


def gate(policy: GapPolicy, size: int = 3, timeout: float = 1.0) -> SequenceGate[str]:
    return SequenceGate(policy, size, timeout)


def started(policy: GapPolicy, snapshot: int = 1, **kw: Any) -> SequenceGate[str]:
    g = gate(policy, **kw)
    assert g.accept(snapshot, "snap", True, 0.0) == GateResult(("snap",))
    return g


# -- construction, snapshot, in-order, duplicates ---------------------------------------------


def test_construction_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"buffer_size must be >= 1, got 0"):
        SequenceGate(BUFFER, 0, 1.0)
    with pytest.raises(ValueError, match=r"buffer_timeout must be >= 0 seconds, got -1\.0"):
        SequenceGate(BUFFER, 1, -1.0)
    with pytest.raises(ValueError, match="buffer_timeout"):
        SequenceGate(BUFFER, 1, float("nan"))
    g = SequenceGate[str](IGNORE, 1, 0.0)
    assert (g.policy, g.expected, g.waiting_for_snapshot, g.held) == (IGNORE, None, False, 0)
    assert g.next_deadline() is None


def test_gate_result_defaults_to_nothing() -> None:
    assert GateResult() == GateResult((), (), False)
    assert GateResult[int]((1,), ((2, 3),), True).gaps == ((2, 3),)


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_snapshot_starts_the_stream_and_updates_follow_in_order(policy: GapPolicy) -> None:
    g = gate(policy)
    assert g.expected is None
    assert g.accept(1, "s1", True, 0.0) == GateResult(("s1",))
    assert g.expected == 2
    assert g.accept(2, "u2", False, 0.1) == GateResult(("u2",))
    assert g.accept(3, "u3", False, 0.2) == GateResult(("u3",))
    assert g.expected == 4


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_duplicates_and_old_frames_are_dropped_silently(policy: GapPolicy) -> None:
    g = started(policy, snapshot=5)
    assert g.accept(6, "u6", False, 0.0).released == ("u6",)
    for old in (6, 5, 1, 0, -3):
        assert g.accept(old, "old", False, 0.0) == GateResult()
    assert g.expected == 7
    assert g.accept(7, "u7", False, 0.0).released == ("u7",)


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_updates_before_any_snapshot_are_released_and_the_first_sets_expected(
    policy: GapPolicy,
) -> None:
    g = gate(policy)
    assert g.accept(40, "u40", False, 0.0) == GateResult(("u40",))
    assert g.expected == 41
    assert g.accept(41, "u41", False, 0.0) == GateResult(("u41",))
    assert g.accept(39, "old", False, 0.0) == GateResult()


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_a_snapshot_restarts_the_stream_at_any_sequence(policy: GapPolicy) -> None:
    g = started(policy, snapshot=10)
    assert g.accept(11, "u11", False, 0.0).released == ("u11",)
    # a new subscription's snapshot starts again at 1: lower than expected, still taken
    assert g.accept(1, "s1", True, 0.0) == GateResult(("s1",))
    assert g.expected == 2
    assert g.accept(2, "u2", False, 0.0).released == ("u2",)


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_reset_forgets_the_stream(policy: GapPolicy) -> None:
    g = started(policy, snapshot=10)
    g.accept(13, "u13", False, 0.0)
    g.reset()
    assert (g.expected, g.waiting_for_snapshot, g.held) == (None, False, 0)
    assert g.next_deadline() is None
    # a new subscription without snapshot: its sequence restarts and is released
    assert g.accept(1, "u1", False, 0.0) == GateResult(("u1",))
    assert g.expected == 2


# -- IGNORE ----------------------------------------------------------------------------------


def test_ignore_reports_the_gap_and_carries_on() -> None:
    g = started(IGNORE)
    assert g.accept(4, "u4", False, 0.0) == GateResult(("u4",), ((2, 4),))
    assert g.expected == 5
    assert g.accept(2, "late", False, 0.0) == GateResult()  # too late: dropped
    assert g.accept(5, "u5", False, 0.0) == GateResult(("u5",))
    assert g.accept(9, "u9", False, 0.0) == GateResult(("u9",), ((6, 9),))
    assert not g.waiting_for_snapshot and g.next_deadline() is None


# -- RESYNC ----------------------------------------------------------------------------------


def test_resync_drops_the_frame_and_waits_for_a_snapshot() -> None:
    g = started(RESYNC)
    assert g.accept(2, "u2", False, 0.0).released == ("u2",)
    assert g.accept(5, "u5", False, 0.0) == GateResult((), ((3, 5),), resync=True)
    assert g.waiting_for_snapshot and g.expected is None
    # nothing released and no further gap until the snapshot
    for seq in (3, 4, 6, 100):
        assert g.accept(seq, "x", False, 0.0) == GateResult()
    assert g.handle_timer(1e9) == GateResult()
    assert g.accept(1, "snap", True, 0.0) == GateResult(("snap",))
    assert not g.waiting_for_snapshot
    assert g.accept(2, "u2", False, 0.0).released == ("u2",)


# -- BUFFER ----------------------------------------------------------------------------------


def test_buffer_holds_until_the_hole_fills_then_releases_in_order() -> None:
    g = started(BUFFER, size=5)
    assert g.accept(4, "u4", False, 0.0) == GateResult((), ((2, 4),))
    assert g.accept(3, "u3", False, 0.1) == GateResult()  # inside the known hole: no new gap
    assert g.accept(4, "dup", False, 0.2) == GateResult()  # already held: dropped
    assert g.held == 2 and g.expected == 2
    assert g.accept(2, "u2", False, 0.3) == GateResult(("u2", "u3", "u4"))
    assert g.held == 0 and g.expected == 5
    assert g.next_deadline() is None


def test_buffer_reports_each_hole_once() -> None:
    g = started(BUFFER, snapshot=4, size=10)
    assert g.accept(7, "u7", False, 0.0).gaps == ((5, 7),)
    assert g.accept(8, "u8", False, 0.0).gaps == ()  # contiguous with what is held
    assert g.accept(10, "u10", False, 0.0).gaps == ((9, 10),)
    assert g.accept(6, "u6", False, 0.0) == GateResult()
    assert g.accept(9, "u9", False, 0.0) == GateResult()
    assert g.accept(5, "u5", False, 0.0) == GateResult(("u5", "u6", "u7", "u8", "u9", "u10"))
    assert g.expected == 11


def test_buffer_releases_up_to_the_next_hole() -> None:
    g = started(BUFFER, size=10)
    g.accept(3, "u3", False, 0.0)
    g.accept(5, "u5", False, 0.0)
    assert g.accept(2, "u2", False, 0.0) == GateResult(("u2", "u3"))
    assert (g.expected, g.held) == (4, 1)
    assert g.accept(4, "u4", False, 0.0) == GateResult(("u4", "u5"))


def test_buffer_overflow_asks_for_a_resync() -> None:
    g = started(BUFFER, size=2)
    assert g.accept(3, "u3", False, 0.0).gaps == ((2, 3),)
    assert g.accept(4, "u4", False, 0.0) == GateResult()
    assert g.held == 2
    # a third frame to hold: the buffer would overflow
    assert g.accept(6, "u6", False, 0.0) == GateResult((), ((5, 6),), resync=True)
    assert (g.held, g.expected, g.waiting_for_snapshot) == (0, None, True)
    assert g.next_deadline() is None
    assert g.accept(2, "u2", False, 0.0) == GateResult()  # the hole filling is too late
    assert g.accept(1, "snap", True, 0.0) == GateResult(("snap",))


def test_buffer_overflow_inside_a_known_hole_reports_no_new_gap() -> None:
    g = started(BUFFER, size=1)
    assert g.accept(4, "u4", False, 0.0).gaps == ((2, 4),)
    assert g.accept(3, "u3", False, 0.0) == GateResult(resync=True)


def test_buffer_timeout_asks_for_a_resync() -> None:
    g = started(BUFFER, size=5, timeout=2.0)
    assert g.next_deadline() is None
    assert g.handle_timer(100.0) == GateResult()
    g.accept(3, "u3", False, 10.0)
    g.accept(5, "u5", False, 11.0)
    assert g.next_deadline() == 12.0  # the oldest held frame arrived at 10.0
    assert g.handle_timer(11.999) == GateResult()
    assert g.held == 2
    assert g.handle_timer(12.0) == GateResult(resync=True)
    assert (g.held, g.waiting_for_snapshot, g.next_deadline()) == (0, True, None)
    assert g.accept(2, "u2", False, 12.5) == GateResult()


def test_buffer_deadline_follows_the_oldest_frame_still_held() -> None:
    g = started(BUFFER, size=5, timeout=2.0)
    g.accept(3, "u3", False, 10.0)
    g.accept(5, "u5", False, 11.0)
    g.accept(2, "u2", False, 11.5)  # releases 2, 3; 5 stays behind the hole at 4
    assert g.next_deadline() == 13.0
    assert g.handle_timer(12.5) == GateResult()
    assert g.accept(4, "u4", False, 12.6) == GateResult(("u4", "u5"))
    assert g.next_deadline() is None


def test_a_snapshot_clears_the_buffer() -> None:
    g = started(BUFFER, size=5)
    g.accept(3, "u3", False, 0.0)
    assert g.held == 1
    assert g.accept(20, "snap", True, 0.5) == GateResult(("snap",))
    assert (g.held, g.expected, g.next_deadline()) == (0, 21, None)
    assert g.accept(3, "old", False, 0.6) == GateResult()


# -- properties --------------------------------------------------------------------------------


def run(
    g: SequenceGate[Frame], seqs: list[int], *, snapshot: bool = True
) -> tuple[list[Frame], list[tuple[int, int]], int]:
    """Feed ``seqs`` (the first as a snapshot if asked): released, gaps, resync count."""
    released: list[Frame] = []
    gaps: list[tuple[int, int]] = []
    resyncs = 0
    for index, seq in enumerate(seqs):
        result = g.accept(seq, (seq, index), snapshot and index == 0, float(index))
        released.extend(result.released)
        gaps.extend(result.gaps)
        resyncs += result.resync
    return released, gaps, resyncs


def contiguous(seqs: list[int]) -> bool:
    return all(b == a + 1 for a, b in pairwise(seqs))


def disjoint(gaps: list[tuple[int, int]]) -> bool:
    missing = [n for e, r in gaps for n in range(e, r)]
    return len(missing) == len(set(missing))


arbitrary = st.lists(st.integers(1, 40), max_size=60)  # loss, duplication, any order


@given(
    seqs=arbitrary,
    policy=st.sampled_from(list(GapPolicy)),
    size=st.integers(1, 8),
    snapshot=st.booleans(),
)
def test_released_frames_are_strictly_increasing(
    seqs: list[int], policy: GapPolicy, size: int, snapshot: bool
) -> None:
    released, gaps, _ = run(SequenceGate(policy, size, 5.0), seqs, snapshot=snapshot)
    order = [seq for seq, _ in released]
    assert order == sorted(set(order))
    assert all(expected < received for expected, received in gaps)
    assert disjoint(gaps)  # each missing sequence is reported at most once
    if policy is not IGNORE:
        assert contiguous(order)  # nothing is ever released past a hole
    if seqs:
        assert released[0] == (seqs[0], 0)  # the first frame always starts the stream


@given(seqs=arbitrary, snapshot=st.booleans())
def test_ignore_loses_nothing_newer(seqs: list[int], snapshot: bool) -> None:
    released, gaps, resyncs = run(SequenceGate(IGNORE, 1, 0.0), seqs, snapshot=snapshot)
    # exactly the frames newer than everything before them are released, first copy wins
    model: list[Frame] = []
    for index, seq in enumerate(seqs):
        if not model or seq > model[-1][0]:
            model.append((seq, index))
    assert released == model
    order = [seq for seq, _ in released]
    assert gaps == [(a + 1, b) for a, b in pairwise(order) if b > a + 1]
    assert resyncs == 0


@given(seqs=arbitrary)
def test_resync_releases_a_contiguous_run_until_the_first_gap(seqs: list[int]) -> None:
    released, gaps, resyncs = run(SequenceGate(RESYNC, 1, 0.0), seqs)
    model: list[Frame] = []
    model_gaps: list[tuple[int, int]] = []
    for index, seq in enumerate(seqs):
        if not model or seq == model[-1][0] + 1:
            model.append((seq, index))
        elif seq > model[-1][0] + 1:
            model_gaps.append((model[-1][0] + 1, seq))
            break
    assert released == model
    assert gaps == model_gaps
    assert resyncs == len(model_gaps) <= 1


@st.composite
def shuffled_stream(draw: st.DrawFn) -> list[int]:
    """Updates 2..n in any order, with duplicates inserted after their first copy."""
    n = draw(st.integers(1, 30))
    order: list[int] = draw(st.permutations(list(range(2, n + 1))))
    for _ in range(draw(st.integers(0, 10))):
        if not order:
            break
        at = draw(st.integers(0, len(order) - 1))
        later = draw(st.integers(at + 1, len(order)))
        order.insert(later, order[at])
    return order


def most_held(updates: list[int], first: int = 2) -> int:
    """The most frames a perfect buffer would hold at once (naively, by set arithmetic)."""
    seen: set[int] = set()
    worst = 0
    for seq in updates:
        seen.add(seq)
        expected = first
        while expected in seen:
            expected += 1
        worst = max(worst, sum(1 for s in seen if s > expected))
    return worst


@given(updates=shuffled_stream(), spare=st.integers(0, 3))
def test_buffer_restores_any_permutation_that_fits(updates: list[int], spare: int) -> None:
    size = max(1, most_held(updates) + spare)
    g: SequenceGate[Frame] = SequenceGate(BUFFER, size, 1e9)
    released, gaps, resyncs = run(g, [1, *updates])
    assert [seq for seq, _ in released] == sorted({1, *updates})  # no loss, no duplicate
    first_copy = {seq: index for index, seq in reversed(list(enumerate([1, *updates])))}
    assert released == [(seq, first_copy[seq]) for seq in sorted(first_copy)]
    assert resyncs == 0
    assert all(e < r for e, r in gaps) and disjoint(gaps)
    assert (g.held, g.next_deadline(), g.expected) == (0, None, max([1, *updates]) + 1)
    if updates == sorted(set(updates)):
        assert gaps == []


@given(updates=shuffled_stream())
def test_buffer_too_small_resyncs_after_a_clean_prefix(updates: list[int]) -> None:
    need = most_held(updates)
    if need < 2:
        return
    g: SequenceGate[Frame] = SequenceGate(BUFFER, need - 1, 1e9)
    released, _, resyncs = run(g, [1, *updates])
    order = [seq for seq, _ in released]
    assert resyncs == 1
    assert order == list(range(1, len(order) + 1))
    assert len(order) < len(set(updates)) + 1
    assert g.waiting_for_snapshot and g.held == 0


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("update"), st.integers(1, 25)),
            st.tuples(st.just("snapshot"), st.integers(1, 25)),
            st.tuples(st.just("tick"), st.integers(0, 3)),
            st.tuples(st.just("reset"), st.just(0)),
        ),
        max_size=60,
    ),
    policy=st.sampled_from(list(GapPolicy)),
    size=st.integers(1, 5),
)
def test_any_input_keeps_the_gate_consistent(
    ops: list[tuple[str, int]], policy: GapPolicy, size: int
) -> None:
    g: SequenceGate[int] = SequenceGate(policy, size, 2.0)
    now = 0.0
    segment: list[int] = []  # released since the last snapshot or reset
    for op, value in ops:
        if op == "tick":
            now += value
            deadline = g.next_deadline()
            result = g.handle_timer(now)
            assert result.released == () and result.gaps == ()
            assert result.resync == (deadline is not None and now >= deadline)
        elif op == "reset":
            g.reset()
            segment = []
        else:
            result = g.accept(value, value, op == "snapshot", now)
            if op == "snapshot":
                assert result == GateResult((value,))
                segment = []
            segment.extend(result.released)
            assert segment == sorted(set(segment))
        assert g.held <= size
        assert (g.next_deadline() is not None) == (g.held > 0)
        if g.waiting_for_snapshot:
            assert g.expected is None and g.held == 0
        if policy is not BUFFER:
            assert g.held == 0
