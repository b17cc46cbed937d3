"""What holds across kraken_proto.analytics: one argument policy, times as floats, the
package's face (``__all__``, docstrings, reprs), and inputs at the edges of every module."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import math
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import msgspec
import pytest

import kraken_proto.analytics as analytics
from kraken_proto import BookLevel, LocalProtocolError, OrderBook, Trade
from kraken_proto.analytics import (
    LargeOrderThreshold,
    LatencyHistogram,
    LatencySampler,
    LatencyTracker,
    MarketHealthTracker,
    OrderFlowTracker,
    PressureThresholds,
    TradesByPriceLevel,
    aggregate,
    depth_ladder,
    fill_estimate,
)
from kraken_proto.analytics._common import shown

D = Decimal
HUGE = 10**400  # an int no float can hold
VAST = 10**5000  # an int whose repr() raises ValueError (more than 4300 digits)


def book() -> OrderBook:
    book = OrderBook("BTC/USD", 10)
    book.apply_snapshot(
        [BookLevel.of("100", "1"), BookLevel.of("99", "2")], [BookLevel.of("101", "3")]
    )
    return book


def trade() -> Trade:
    return Trade("BTC/USD", "buy", D(100), D(1), "limit", 1, "2026-01-01T00:00:00Z")


# Every argument that is a time or a duration in seconds, with a huge int in it.
HUGE_TIMES: list[tuple[str, Callable[[], object]]] = [
    ("now", lambda: OrderFlowTracker(D(1)).track_update(book(), HUGE)),
    ("window", lambda: TradesByPriceLevel(HUGE)),
    ("now", lambda: TradesByPriceLevel(60).add_trade(trade(), HUGE)),
    ("now", lambda: TradesByPriceLevel(60).overlay("BTC/USD", HUGE)),
    ("stale_after", lambda: MarketHealthTracker(HUGE, HUGE)),
    ("now", lambda: MarketHealthTracker().check("BTC/USD", HUGE)),
    ("highest", lambda: LatencyHistogram(highest=HUGE)),
    ("value", lambda: LatencyHistogram().record(HUGE)),
    ("rate", lambda: LatencySampler(HUGE)),
    ("wall", lambda: LatencyTracker().wall_clock(HUGE, 0.0)),
]


@pytest.mark.parametrize(("name", "call"), HUGE_TIMES)
def test_a_huge_int_time_is_refused_not_overflowed(name: str, call: Callable[[], object]) -> None:
    """float(10**400) raises OverflowError: each check used to let it through to there."""
    with pytest.raises(LocalProtocolError, match=f"^{name} must be .*, got an int of 401 digits$"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: aggregate(book(), VAST),
        lambda: fill_estimate(book(), "buy", VAST),
        lambda: PressureThresholds(weak=VAST),
        lambda: LargeOrderThreshold.relative(VAST),
        lambda: OrderFlowTracker(VAST),
        lambda: TradesByPriceLevel(60, tick_size=VAST),
        lambda: TradesByPriceLevel(VAST),
    ],
)
def test_a_vast_int_is_described_not_printed(call: Callable[[], object]) -> None:
    """repr() of an int of more than 4300 digits raises ValueError: a message quoting the
    argument used to raise that instead of the LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=r"got an int of 5001 digits$"):
        call()


def test_times_handed_back_are_floats() -> None:
    """An int ``now`` is accepted everywhere and handed back as the float it stands for."""
    (event,) = OrderFlowTracker(D(3)).track_update(book(), 3)
    assert type(event.at) is float
    health = MarketHealthTracker()
    health.observe(trade(), 1)
    assert type(health.time_since_update("BTC/USD", 4)) is float
    assert type(health.check("BTC/USD", 4).at) is float
    assert type(TradesByPriceLevel(60).overlay("BTC/USD", 4).at) is float


def test_depth_ladder_of_a_huge_n_is_the_whole_book() -> None:
    assert len(depth_ladder(book(), HUGE).bids) == 2


# -- the package's face ----------------------------------------------------------------------

MODULES: list[ModuleType] = [
    importlib.import_module(f"kraken_proto.analytics.{name}")
    for name in ("depth", "fill", "flow", "trades", "health", "latency")
]


def test_the_package_exports_every_modules_names_once() -> None:
    exported = [name for module in MODULES for name in module.__all__]
    assert len(exported) == len(set(exported))
    assert sorted(analytics.__all__) == sorted(exported)
    for name in analytics.__all__:
        assert getattr(analytics, name) is getattr(
            next(m for m in MODULES if name in m.__all__), name
        )


def _public_members(obj: type) -> list[tuple[str, Any]]:
    return [
        (name, member)
        for name, member in vars(obj).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, (property, classmethod)))
    ]


@pytest.mark.parametrize("module", [analytics, *MODULES], ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module: ModuleType) -> None:
    assert module.__doc__
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{module.__name__}.{name}"
        if inspect.isclass(obj):
            for attr, member in _public_members(obj):
                assert getattr(member, "__doc__", None), f"{module.__name__}.{name}.{attr}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_field_of_a_value_and_every_enum_member_is_documented(module: ModuleType) -> None:
    """Each field of a public value class and each member of a public enum is followed by
    its docstring, which states what it is."""
    tree = ast.parse(inspect.getsource(module))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name in module.__all__:
        obj = getattr(module, name)
        is_value = inspect.isclass(obj) and (
            issubclass(obj, (msgspec.Struct, enum.Enum)) or dataclasses.is_dataclass(obj)
        )
        if not is_value:
            continue
        body = classes[name].body
        for index, node in enumerate(body):
            field = None
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                field = node.target.id
            elif isinstance(node, ast.Assign) and issubclass(obj, enum.Enum):
                field = ast.unparse(node.targets[0])
            if field is None or field.startswith("_"):
                continue
            following = body[index + 1] if index + 1 < len(body) else None
            assert (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ), f"{module.__name__}.{name}.{field}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_values_are_frozen_and_enums_lower_case(module: ModuleType) -> None:
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, msgspec.Struct):
            assert obj.__struct_config__.frozen, name
        elif dataclasses.is_dataclass(obj):
            assert getattr(obj, "__dataclass_params__").frozen, name  # noqa: B009
        elif inspect.isclass(obj) and issubclass(obj, enum.Enum):
            assert all(member.value == member.name.lower() for member in obj), name


def test_trackers_show_their_settings_and_state() -> None:
    flow = OrderFlowTracker(5, track_depth=10, per_symbol={"DOGE/USD": "100"})
    flow.track_update(book(), 0.0)
    assert repr(flow) == (
        "<OrderFlowTracker large_order_threshold=LargeOrderThreshold(kind=<ThresholdKind."
        "ABSOLUTE: 'absolute'>, value=Decimal('5')) track_depth=10 per_symbol={'DOGE/USD': "
        "LargeOrderThreshold(kind=<ThresholdKind.ABSOLUTE: 'absolute'>, value=Decimal('100'))}"
        " symbols=['BTC/USD']>"
    )
    assert "per_symbol" not in repr(OrderFlowTracker(5))
    trades = TradesByPriceLevel(60, tick_size="0.5")
    trades.add_trade(trade(), 0.0)
    assert repr(trades) == (
        "<TradesByPriceLevel window=60.0 tick_size=Decimal('0.5') trades=1 symbols=['BTC/USD']>"
    )
    health = MarketHealthTracker()
    health.observe(trade(), 0.0)
    assert repr(health) == (
        "<MarketHealthTracker stale_after=5.0 halted_after=30.0 system=None connection=None "
        "symbols=['BTC/USD']>"
    )
    histogram = LatencyHistogram()
    histogram.record(0.25)
    assert repr(histogram) == (
        "<LatencyHistogram lowest=2**-20 highest=2**7 sub_buckets=64 count=1 min=0.25 max=0.25>"
    )
    assert repr(LatencySampler()) == "<LatencySampler rate=500.0 every=1 left=1>"
    tracker = LatencyTracker()
    tracker.record_delivery(trade(), 0.5)
    tracker.wall_clock(1_700_000_000.0, 0.0)
    assert repr(tracker) == (
        "<LatencyTracker channels=['trade'] clock=ClockOffset(offset=1700000000.0, "
        "source='wall', bound=None, rtt=None, samples=0)>"
    )


# -- one argument policy ---------------------------------------------------------------------

# Every argument that is a quantity, a multiple, a threshold, a tick size or a price: a
# call taking it, what to read back, and whether None is allowed too. Each accepts a Decimal,
# an int and a numeric str alike, and refuses a float, saying why and what to write, and a
# bool. (``weak`` is checked as ``strong`` is, but no int is < 1.)
QUANTITIES: list[tuple[str, Callable[[Any], Any], Callable[[Any], Decimal | None], bool]] = [
    ("tick_size", lambda x: aggregate(book(), x), lambda r: r.tick_size, False),
    ("qty", lambda x: fill_estimate(book(), "sell", x), lambda r: r.requested_qty, False),
    ("strong", lambda x: PressureThresholds(weak="0.1", strong=x), lambda r: r.strong, False),
    ("qty", LargeOrderThreshold.absolute, lambda r: r.value, False),
    ("multiple", LargeOrderThreshold.relative, lambda r: r.value, False),
    ("large_order_threshold", OrderFlowTracker, lambda r: r.large_order_threshold.value, False),
    (
        "per_symbol['BTC/USD']",
        lambda x: OrderFlowTracker(1, per_symbol={"BTC/USD": x}),
        lambda r: r.threshold_for("BTC/USD").value,
        False,
    ),
    ("tick_size", lambda x: TradesByPriceLevel(60, tick_size=x), lambda r: r.tick_size, True),
    (
        "price",
        lambda x: TradesByPriceLevel(60).trades_at_price("BTC/USD", x),
        lambda r: D(1) if r == () else None,
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "read", "optional"), QUANTITIES, ids=[q[0] for q in QUANTITIES]
)
def test_quantities_are_decimals_ints_or_numeric_strs(
    name: str, call: Callable[[Any], Any], read: Callable[[Any], Decimal | None], optional: bool
) -> None:
    assert read(call(D(1))) == read(call(1)) == read(call("1")) == read(call(" 1.0 ")) == 1
    prefix = f"^{name}".replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(LocalProtocolError, match=prefix) as raised:
        call(0.5)
    assert str(raised.value).endswith(
        ", not a float (floats are inexact: write Decimal('0.5') or '0.5'), got 0.5"
    )
    if optional:
        assert read(call(None)) is None
    for bad in (True, math.nan, math.inf, "0x10", D("NaN"), 0, -1, *([] if optional else [None])):
        with pytest.raises(LocalProtocolError, match=prefix) as raised:
            call(bad)
        message = str(raised.value)
        assert f"must be {'None or ' if optional else ''}" in message
        assert "a positive finite Decimal, int or numeric str" in message
        assert message.endswith(f", got {bad!r}")


# Every argument that is a time in seconds (``now``, a clock reading) or a duration (> 0):
# a call taking it, whether it is a duration, and whether None is its default.
TIMES: list[tuple[str, Callable[[Any], object], bool, bool]] = [
    ("now", lambda x: OrderFlowTracker(1).track_update(book(), x), False, False),
    ("now", lambda x: TradesByPriceLevel(60).add_trade(trade(), x), False, False),
    ("now", lambda x: TradesByPriceLevel(60).overlay("BTC/USD", x), False, False),
    ("now", lambda x: TradesByPriceLevel(60).expire(x), False, False),
    ("now", lambda x: TradesByPriceLevel(60).trades_at_price("BTC/USD", 1, now=x), False, True),
    ("now", lambda x: MarketHealthTracker().observe(trade(), x), False, False),
    ("now", lambda x: MarketHealthTracker().heartbeat(x), False, False),
    ("now", lambda x: MarketHealthTracker().time_since_update("BTC/USD", x), False, False),
    ("now", lambda x: MarketHealthTracker().check("BTC/USD", x), False, False),
    ("value", lambda x: LatencyHistogram().record(x), False, False),
    ("wall", lambda x: LatencyTracker().wall_clock(x, 0.0), False, False),
    ("now", lambda x: LatencyTracker().wall_clock(0.0, x), False, False),
    ("sent", lambda x: LatencyTracker().clock_sample(x, 2.0, "x", "x"), False, False),
    ("received", lambda x: LatencyTracker().clock_sample(0.0, x, "x", "x"), False, False),
    ("window", TradesByPriceLevel, True, False),
    ("stale_after", lambda x: MarketHealthTracker(x, 100), True, False),
    ("halted_after", lambda x: MarketHealthTracker(0.5, x), True, False),
    ("lowest", lambda x: LatencyHistogram(lowest=x, highest=10), True, False),
    ("highest", lambda x: LatencyHistogram(lowest=0.5, highest=x), True, False),
    ("rate", LatencySampler, True, True),
]


@pytest.mark.parametrize(("name", "call", "positive", "none_ok"), TIMES, ids=[t[0] for t in TIMES])
def test_times_are_finite_ints_or_floats(
    name: str, call: Callable[[Any], object], positive: bool, none_ok: bool
) -> None:
    call(1)
    call(1.5)
    bad: list[Any] = [True, "1", D(1), math.nan, math.inf, -math.inf]
    if positive:
        bad += [0, -1.0]
    if none_ok:
        call(None)
    else:
        bad.append(None)
    for value in bad:
        with pytest.raises(LocalProtocolError, match=f"^{name} must be ") as raised:
            call(value)
        message = str(raised.value)
        assert "finite number of" in message
        assert "(int or float)" in message
        assert ("> 0" in message) is positive
        assert message.endswith(f", got {value!r}")


# Every count.
COUNTS: list[tuple[str, Callable[[Any], object]]] = [
    ("n", lambda x: depth_ladder(book(), x)),
    ("track_depth", lambda x: OrderFlowTracker(1, track_depth=x)),
    ("window", lambda x: LatencyTracker(window=x)),
    ("count", lambda x: LatencyHistogram().record(0.1, x)),
    ("weight", lambda x: LatencyTracker().record_delivery(trade(), 0.5, x)),
]


@pytest.mark.parametrize(("name", "call"), COUNTS, ids=[c[0] for c in COUNTS])
def test_counts_are_ints(name: str, call: Callable[[Any], object]) -> None:
    call(1)
    for value in (0, -1, True, 1.0, "1", None, D(1)):
        with pytest.raises(LocalProtocolError) as raised:
            call(value)
        assert str(raised.value) == f"{name} must be an int >= 1, got {value!r}"


def test_a_long_int_is_described_only_beyond_a_hundred_digits() -> None:
    assert shown(2**301) == repr(2**301)  # 91 digits
    assert shown(10**100 - 1) == repr(10**100 - 1)
    assert shown(10**100) == "an int of 101 digits"
    assert shown(-(10**100)) == "an int of 101 digits"
    assert shown("x") == "'x'"
