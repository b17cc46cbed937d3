"""The compiled L2 update loop (src/kraken_proto/_speedups.c) against the Python reference loop.

Both loops get the same books and the same messages; after every message the two books must
be identical field by field (keys, tokens, fragments, truncation mark, checksum text,
scale) and return the same checksum, or raise the same error. The rest of
the book's behaviour is checked under both loops by ``test_book.py`` and ``test_replay.py``
(the ``book_loop`` fixture).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from budget import sized
from hypothesis import given
from hypothesis import strategies as st

import kraken_proto.book as book_module
from kraken_proto.book import OrderBook
from kraken_proto.events import BookLevel

D = Decimal
compiled = book_module._compiled
needs_compiled = pytest.mark.skipif(compiled is None, reason="kraken_proto._speedups not built")
python_loop = OrderBook._apply_update_py


def _state(book: OrderBook) -> tuple[Any, ...]:
    # Not ``side.prices``: a memo of OrderBook._price, which the compiled loop calls only
    # for the tokens it does not parse itself.
    sides = tuple(
        (side.keys, side.toks, side.frags, side.lo, side.text, side.deep)
        for side in (book._asks, book._bids)
    )
    return (*sides, book._ask_crc, book._scale, book._pdot, book._qdot, book.checksum())


def _apply(loop: Any, book: OrderBook, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> Any:
    try:
        return loop(book, bids, asks)
    except (ArithmeticError, ValueError) as exc:
        return type(exc)


def _pair(depth: int, pp: int | None, qp: int | None) -> tuple[OrderBook, OrderBook]:
    return (
        OrderBook("TST/USD", depth, price_precision=pp, qty_precision=qp),
        OrderBook("TST/USD", depth, price_precision=pp, qty_precision=qp),
    )


def _levels(*pairs: tuple[bytes, bytes]) -> list[BookLevel]:
    return [BookLevel(msgspec.Raw(p), msgspec.Raw(q)) for p, q in pairs]


# Prices on a small grid (so updates hit existing levels), padded or not, sometimes with more
# decimals than the book (a rescale in the middle of a message), sometimes in forms only the
# Python path handles, sometimes zero or negative (refused; padded ones too, which the
# compiled loop parses itself); quantities padded, short, zero in several spellings (-0
# too), negative or garbage.
PRICE_TOKENS = st.one_of(
    st.builds(lambda t: f"{t / 100:.2f}".encode(), st.integers(1, 80)),
    st.builds(lambda t: f"{t / 100:.2f}".encode(), st.integers(-5, 80)),
    st.builds(lambda t: f"{t / 1000:.3f}".encode(), st.integers(1, 800)),
    st.builds(lambda t: str(D(t).scaleb(-2).normalize()).encode(), st.integers(1, 80)),
    st.builds(lambda t: f"{t}".encode(), st.integers(1, 3)),
    st.builds(lambda t: f"{D(t).scaleb(-2):e}".encode(), st.integers(1, 80)),
    st.builds(lambda t: f'"{t / 100:.2f}"'.encode(), st.integers(1, 80)),
    # odd forms, garbage, or not positive
    st.sampled_from(
        b'-0.50 0.5.0 1e999 NaN "x" 00.10 0.00 -0.00 0 -1 "-1.5" -1.5e1 "0E-8"'.split()
    ),
)
QTY_TOKENS = st.one_of(
    st.builds(lambda n: f"{n / 10**8:.8f}".encode(), st.integers(-(10**8), 10**9)),
    st.builds(lambda n: f"{n / 10**8:.8f}".encode(), st.integers(1, 10**9)),
    st.builds(lambda n, p: f"{n / 10**p:.{p}f}".encode(), st.integers(0, 10**6), st.integers(0, 9)),
    # zeros (-0 too), odd forms, negative or garbage
    st.sampled_from(
        b'0 0.0 0E-8 "0.5" 1e-3 -1.0 0.0.1 x 007 -0 -0.0 -0.00000000 "-0.5" -5e-1'.split()
    ),
)
LEVEL = st.builds(lambda p, q: BookLevel(msgspec.Raw(p), msgspec.Raw(q)), PRICE_TOKENS, QTY_TOKENS)
LEVELS = st.lists(LEVEL, max_size=10)
SNAPSHOT_LEVELS = st.lists(
    st.builds(
        lambda t, n: BookLevel(
            msgspec.Raw(f"{t / 100:.2f}".encode()), msgspec.Raw(f"{n / 10**8:.8f}".encode())
        ),
        st.integers(1, 80),
        st.integers(1, 10**9),
    ),
    max_size=40,
)


@needs_compiled
@sized(100, 400)
@given(
    depth=st.sampled_from([1, 2, 10, 11, 30]),
    precisions=st.sampled_from([(None, None), (2, 8), (2, None), (None, 8), (3, 4), (0, 0)]),
    snapshot=st.tuples(SNAPSHOT_LEVELS, SNAPSHOT_LEVELS),
    updates=st.lists(st.tuples(LEVELS, LEVELS), max_size=30),
)
def test_compiled_loop_equals_python_loop(
    depth: int,
    precisions: tuple[int | None, int | None],
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    updates: list[tuple[list[BookLevel], list[BookLevel]]],
) -> None:
    _compare_loops(*_pair(depth, *precisions), snapshot, updates)


@needs_compiled
@sized(80, 300)
@given(
    depth=st.sampled_from([1, 2, 10, 11, 30]),
    listed=st.integers(0, 12),
    precisions=st.sampled_from([(None, None), (2, 8), (2, None), (None, 8), (3, 4), (0, 0)]),
    snapshot=st.tuples(SNAPSHOT_LEVELS, SNAPSHOT_LEVELS),
    updates=st.lists(
        st.tuples(st.lists(LEVEL, max_size=50), st.lists(LEVEL, max_size=50)), max_size=8
    ),
)
def test_the_loops_match_with_few_levels_listed(
    depth: int,
    listed: int,
    precisions: tuple[int | None, int | None],
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    updates: list[tuple[list[BookLevel], list[BookLevel]]],
) -> None:
    """As in a large message: most levels deep (``side.deep``), refused tokens among them."""
    fast, slow = _pair(depth, *precisions)
    fast._listed = slow._listed = listed
    _compare_loops(fast, slow, snapshot, updates)


def _compare_loops(
    fast: OrderBook,
    slow: OrderBook,
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    updates: list[tuple[list[BookLevel], list[BookLevel]]],
) -> None:
    assert fast.apply_snapshot(*snapshot) == slow.apply_snapshot(*snapshot)
    for bids, asks in updates:
        result = _apply(compiled, fast, bids, asks)
        assert result == _apply(python_loop, slow, bids, asks)
        assert _state(fast) == _state(slow)
        if isinstance(result, type):  # refused mid-message: the protocol resyncs from here
            fast.apply_snapshot(*snapshot)
            slow.apply_snapshot(*snapshot)


def _run_both(book_args: tuple[int, int | None, int | None], messages: list[Any]) -> None:
    fast, slow = _pair(*book_args)
    first_bids, first_asks = messages[0]
    fast.apply_snapshot(first_bids, first_asks)
    slow.apply_snapshot(first_bids, first_asks)
    for bids, asks in messages[1:]:
        assert _apply(compiled, fast, bids, asks) == _apply(python_loop, slow, bids, asks)
        assert _state(fast) == _state(slow)


@needs_compiled
@pytest.mark.parametrize("op", ["change", "delete", "insert"])
def test_each_rank_alone_matches(op: str) -> None:
    """One level per message at every rank: the checksum's edge (10th, 11th) included."""
    bids = _levels(*((f"{100 - 2 * k}.00".encode(), b"1.00000000") for k in range(14)))
    asks = _levels(*((f"{200 + 2 * k}.00".encode(), b"1.00000000") for k in range(14)))
    for rank in range(14):
        qty = {"change": b"2.00000000", "delete": b"0.00000000", "insert": b"3.00000000"}[op]
        shift = 1 if op == "insert" else 0
        bid = _levels((f"{100 - 2 * rank - shift}.00".encode(), qty))
        ask = _levels((f"{200 + 2 * rank + shift}.00".encode(), qty))
        _run_both((12, 2, 8), [(bids, asks), (bid, []), ([], ask), (bid, ask)])


@needs_compiled
@pytest.mark.parametrize(
    ("price", "qty"),
    [
        (b"0.00", b"1.0"),  # zero at the book's scale: a form the compiled loop parses
        (b"-0.00", b"1.0"),
        (b"-1.00", b"1.0"),
        (b"-1.0", b"1.0"),
        (b'"-1.00"', b"1.0"),
        (b"1.00", b"-1.0"),
        (b"1.00", b"-0.5"),
        (b"1.00", b'"-1"'),
    ],
)
def test_signed_and_zero_tokens_are_refused_alike(price: bytes, qty: bytes) -> None:
    """Refused by both loops at the same level, the levels before it applied alike."""
    fast, slow = _pair(5, 2, 1)
    first = (_levels((b"9.00", b"1.0"), (b"8.00", b"1.0")), _levels((b"11.00", b"1.0")))
    fast.apply_snapshot(*first)
    slow.apply_snapshot(*first)
    side = _levels((b"8.50", b"2.0"), (price, qty), (b"7.00", b"1.0"))
    for bids, asks in ((side, []), ([], side), (side, side)):
        with pytest.raises(ValueError) as refused:
            compiled(fast, bids, asks)
        with pytest.raises(ValueError) as also:
            python_loop(slow, bids, asks)
        assert str(refused.value) == str(also.value)
        assert _state(fast) == _state(slow)


@needs_compiled
@pytest.mark.parametrize("zero", [b"-0", b"-0.0", b'"-0"', b"-0E-1"])
def test_a_negative_zero_quantity_deletes_alike(zero: bytes) -> None:
    first = (_levels((b"9.00", b"1.0"), (b"8.00", b"1.0")), _levels((b"11.00", b"1.0")))
    _run_both((5, 2, 1), [first, (_levels((b"9.00", zero)), _levels((b"11.00", zero)))])


@needs_compiled
def test_truncated_slots_reuse_and_compaction_match() -> None:
    """Depth 3, a new worst level every message: slot reuse, then batch compaction (lo > 64)."""
    messages: list[Any] = [(_levels((b"9.00", b"1.0")), _levels((b"11.00", b"1.0")))]
    for step in range(300):
        messages.append(
            (
                _levels((f"{8 - step / 100:.2f}".encode(), b"2.0"), (b"9.50", b"1.5")),
                _levels((f"{12 + step / 100:.2f}".encode(), b"2.0"), (b"10.50", b"0")),
            )
        )
    _run_both((3, 2, 1), messages)


@needs_compiled
def test_a_delete_in_the_top_lifts_an_unformatted_deep_level_alike() -> None:
    """A deep snapshot formats only its top 10; deleting from the top lifts level 11 in."""
    bids = _levels(*((f"{100 - k}.00".encode(), b"1.00000000") for k in range(40)))
    deletes = [_levels((f"{100 - k}.00".encode(), b"0.00000000")) for k in range(30)]
    _run_both((40, 2, 8), [(bids, []), *((d, []) for d in deletes)])


@needs_compiled
def test_many_distinct_prices_match() -> None:
    """More distinct prices than the Python loop's memo holds (1024 per side)."""
    messages: list[Any] = [([], [])]
    for step in range(1100):
        price = f"{1000 + step}.{step % 10}".encode()
        messages.append((_levels((price, b"1.5")), _levels((b"5000.0", f"{step}.5".encode()))))
    _run_both((5, 1, 1), messages)


@needs_compiled
def test_a_large_message_matches() -> None:
    """5000 levels per side, ever worse, ever better, deleted again: deep levels, evictions."""
    first = (
        _levels(*((f"{100 - k}.00".encode(), b"1.00000000") for k in range(12))),
        _levels(*((f"{200 + k}.00".encode(), b"1.00000000") for k in range(12))),
    )
    worse = (
        _levels(*((f"{88 - k / 1000:.3f}".encode(), b"2.0000000") for k in range(5000))),
        _levels(*((f"{212 + k / 1000:.3f}".encode(), b"2.00000000") for k in range(5000))),
    )
    better = (
        _levels(*((f"{100 + k / 1000:.3f}".encode(), b"3.00000000") for k in range(1, 5000))),
        _levels(*((f"{200 - k / 1000:.3f}".encode(), b"3.0") for k in range(1, 5000))),
    )
    gone = tuple(_levels(*((level.price_text, b"0") for level in side[::-1])) for side in better)
    lifted = (worse[0] + gone[0], worse[1] + gone[1])
    _run_both((12, 2, 8), [first, worse, better, lifted, (gone[0] + better[0], worse[1])])


class _RefusedError(Exception):
    pass


@needs_compiled
@pytest.mark.parametrize("loop", [compiled, python_loop], ids=["compiled", "python"])
def test_an_error_while_settling_after_an_error_is_raised_with_the_first(loop: Any) -> None:
    """The loops settle the deep levels even when a token is refused, as ``finally`` does."""
    book = OrderBook("TST/USD", 2, price_precision=2, qty_precision=8)
    book.apply_snapshot([], _levels((b"1.00", b"1.0"), (b"1.01", b"1.0")))
    book._listed = 2
    asks = _levels((b"1.05", b"1.0"), (b'"NaN"', b"1.0"))

    def refuse(self: OrderBook, side: Any) -> bool:
        raise _RefusedError

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OrderBook, "_settle_deep", refuse)
        with pytest.raises(_RefusedError) as info:
            loop(book, [], asks)
    assert isinstance(info.value.__context__, ArithmeticError)
    with pytest.raises(ArithmeticError):  # no error while settling: the token's
        loop(book, [], asks)
    assert book._asks.deep == {}
    assert book.asks() == _levels((b"1.00", b"1.0"), (b"1.01", b"1.0"))


@needs_compiled
def test_the_compiled_loop_has_the_same_limits() -> None:
    from kraken_proto import _speedups  # noqa: PLC0415

    assert _speedups.TOP == book_module._TOP == 10
    assert _speedups.TRUNCATED == book_module._TRUNCATED


class _NoIter:
    def __len__(self) -> int:
        return 1


@needs_compiled
def test_the_compiled_loop_refuses_bad_arguments() -> None:
    assert compiled is not None
    book = OrderBook("TST/USD", 10)
    book.apply_snapshot([], [])
    with pytest.raises(TypeError, match="3 arguments"):
        compiled(book, [])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="has no len"):
        compiled(book, 5, 6)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="levels must be a sequence"):
        compiled(book, [], _NoIter())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compiled(book, [BookLevel(1, 2)], [])  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        compiled(object(), [], _levels((b"1.0", b"1.0")))  # type: ignore[arg-type]
    book._asks.deep = []  # type: ignore[assignment]
    with pytest.raises(TypeError, match="must be a dict"):
        compiled(book, [], _levels((b"1.0", b"1.0")))


def test_the_compiled_loop_is_chosen_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("kraken_proto._speedups")
    fake.apply_update = python_loop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kraken_proto._speedups", fake)
    monkeypatch.delenv("KRAKEN_WS_PURE_PYTHON", raising=False)
    assert book_module._compiled_apply_update() is python_loop
    monkeypatch.setenv("KRAKEN_WS_PURE_PYTHON", "1")
    assert book_module._compiled_apply_update() is None
    monkeypatch.delenv("KRAKEN_WS_PURE_PYTHON")
    monkeypatch.setitem(sys.modules, "kraken_proto._speedups", None)
    assert book_module._compiled_apply_update() is None
