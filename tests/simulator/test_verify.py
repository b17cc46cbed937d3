"""The simulator's own checksum and signature code, and its independence from the client's.

The functions of :mod:`kraken_proto.simulator.verify` are pinned to Kraken's documented
vectors (``tests/data/doc-vectors.json``), and no module of the simulator may import the
client's :mod:`kraken_proto.checksum` or :mod:`kraken_proto.auth`, directly or through a
module that re-exports their names.
"""

from __future__ import annotations

import ast
import binascii
import importlib
import importlib.util
import json
import pkgutil
import random
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kraken_proto.simulator
from kraken_proto.simulator import FakeExchange, verify
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET, TOKEN_PATH, TokenIssuer
from kraken_proto.simulator.market import MarketModel
from kraken_proto.simulator.verify import (
    CHECKSUM_LEVELS,
    api_sign,
    book_checksum,
    decimal_text,
    digits,
    level3_checksum,
    units_checksum,
)

D = Decimal


def doc_vector(data_dir: Path, vector_id: str) -> dict[str, Any]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (found,) = [v for v in vectors if v["id"] == vector_id]
    assert isinstance(found, dict)
    return found


def pairs(levels: list[dict[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(D(level["price"]), D(level["qty"])) for level in levels]


def queues(orders: list[dict[str, Any]], descending: bool) -> list[tuple[Decimal, list[Decimal]]]:
    """Level3 orders grouped by price, queue order kept; prices sorted (bids descending)."""
    levels: dict[Decimal, list[Decimal]] = {}
    for order in orders:
        levels.setdefault(D(order["limit_price"]), []).append(D(order["order_qty"]))
    return [(price, levels[price]) for price in sorted(levels, reverse=descending)]


def one_order_each(levels: list[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, list[Decimal]]]:
    """A book as level3 levels of one order each."""
    return [(price, [qty]) for price, qty in levels]


# -- documented vectors -------------------------------------------------------------------------


def test_book_checksum_reproduces_the_documented_v2_vector(data_dir: Path) -> None:
    vector = doc_vector(data_dir, "book_v2_doc_guide_btcusd")
    given_input = vector["input"]
    assert (given_input["price_precision"], given_input["qty_precision"]) == (1, 8)
    asks, bids = pairs(given_input["asks"]), pairs(given_input["bids"])
    assert book_checksum(asks, bids, 1, 8) == vector["expected"] == 3310070434
    for levels, text in ((asks, given_input["asks_string"]), (bids, given_input["bids_string"])):
        assert "".join(digits(p, 1) + digits(q, 8) for p, q in levels) == text


def test_units_checksum_reproduces_the_documented_v2_vector(data_dir: Path) -> None:
    """The market model's path: the same book stored as whole numbers of precision units."""
    vector = doc_vector(data_dir, "book_v2_doc_guide_btcusd")
    asks, bids = (
        [(int(p.scaleb(1)), int(q.scaleb(8))) for p, q in pairs(vector["input"][side])]
        for side in ("asks", "bids")
    )
    assert asks[0] == (452852, 100000)
    assert units_checksum(asks, bids) == vector["expected"] == 3310070434


def test_book_checksum_reproduces_the_documented_v1_vector(data_dir: Path) -> None:
    """v1 uses the same T(x); its pair writes prices at 5 decimals, quantities at 8.

    The v1 wire differs from v2, but this is the only documented book with prices below 1.
    """
    vector = doc_vector(data_dir, "book_v1_doc_guide")
    state = vector["input"]["book_state"]
    asks = [(D(price), D(qty)) for price, qty, _ in state["as"]]
    bids = [(D(price), D(qty)) for price, qty, _ in state["bs"]]
    assert book_checksum(asks, bids, 5, 8) == vector["expected"] == 974947235
    # Prices below 1 lose their leading zeros: the same book through the other two paths.
    assert level3_checksum(one_order_each(asks), one_order_each(bids), 5, 8) == 974947235
    ask_units, bid_units = (
        [(int(p.scaleb(5)), int(q.scaleb(8))) for p, q in side] for side in (asks, bids)
    )
    assert units_checksum(ask_units, bid_units) == 974947235
    example = vector["input"]["single_level_example"]
    price, qty, _ = example["level"]
    assert digits(D(price), 5) + digits(D(qty), 8) == example["formatted"] == "5000304"


def test_level3_checksum_reproduces_the_documented_vector(data_dir: Path) -> None:
    vector = doc_vector(data_dir, "l3_v2_doc_guide_btcusd")
    given_input = vector["input"]
    asks = queues(given_input["asks"], descending=False)
    bids = queues(given_input["bids"], descending=True)
    assert len(asks) == len(bids) == CHECKSUM_LEVELS
    assert sum(len(q) for _, q in asks) == 14 and sum(len(q) for _, q in bids) == 21
    assert level3_checksum(asks, bids, 1, 8) == vector["expected"] == 1063832831
    # Levels past the 10th do not count.
    far = [(D("99999.9"), [D("1.00000000")])]
    assert level3_checksum(asks + far, bids, 1, 8) == 1063832831


def test_api_sign_reproduces_the_documented_vector(data_dir: Path) -> None:
    vector = doc_vector(data_dir, "rest_sign_doc_addorder")
    given_input = vector["input"]
    arguments = (given_input["uri_path"], given_input["post_data"])
    secret = given_input["api_secret_base64"]
    documented = (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )
    assert api_sign(*arguments, given_input["nonce"], secret) == vector["expected"] == documented
    assert api_sign(*arguments, int(given_input["nonce"]), secret) == documented


def test_api_sign_rejects_a_secret_that_is_not_base64() -> None:
    with pytest.raises(binascii.Error):
        api_sign(TOKEN_PATH, "nonce=1", 1, "not base64!")


# -- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        ("45285.2", 1, "452852"),
        ("0.00100000", 8, "100000"),
        ("45281.0", 1, "452810"),
        ("0.05000", 5, "5000"),
        ("0.5660", 4, "5660"),
        ("0.566", 4, "5660"),  # trimmed text is padded back to the precision
        ("63000", 1, "630000"),
        ("5E-8", 8, "5"),
        ("0E-8", 8, ""),
    ],
)
def test_digits_follows_the_documented_examples(value: str, precision: int, expected: str) -> None:
    assert digits(D(value), precision) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("63000.0", "63000.0"),
        ("0.00005100", "0.00005100"),
        ("0E-8", "0.00000000"),
        ("5E-8", "0.00000005"),
        ("5.0E-7", "0.00000050"),
        ("1E+2", "100"),
        ("-12.50", "-12.50"),
    ],
)
def test_decimal_text_never_uses_an_exponent(value: str, expected: str) -> None:
    assert decimal_text(D(value)) == expected


scaled = st.builds(
    lambda coefficient, exponent: D(coefficient).scaleb(exponent),
    st.integers(-(10**20), 10**20),
    st.integers(-30, 30),
)


@given(st.one_of(scaled, st.decimals(allow_nan=False, allow_infinity=False)))
def test_decimal_text_is_format_f(value: Decimal) -> None:
    assert decimal_text(value) == format(value, "f")


levels = st.lists(
    st.tuples(st.integers(1, 10**9), st.integers(1, 10**12)), max_size=2 * CHECKSUM_LEVELS
)


@given(levels, levels, st.integers(0, 8), st.integers(0, 12))
def test_the_three_checksums_agree(
    asks: list[tuple[int, int]], bids: list[tuple[int, int]], pp: int, qp: int
) -> None:
    """Units, Decimal levels and level3 with one order per level give the same CRC."""

    def decimals(side: list[tuple[int, int]]) -> list[tuple[Decimal, Decimal]]:
        return [(D(p).scaleb(-pp), D(q).scaleb(-qp)) for p, q in side]

    expected = units_checksum(asks, bids)
    assert book_checksum(decimals(asks), decimals(bids), pp, qp) == expected
    as_orders = one_order_each(decimals(asks)), one_order_each(decimals(bids))
    assert level3_checksum(*as_orders, pp, qp) == expected


def test_a_level3_level_with_several_orders_repeats_its_price() -> None:
    asks = [(D("10.0"), [D("1.00"), D("0.50")])]
    bids = [(D("9.5"), [D("2.00")])]
    text = "100" + "100" + "100" + "50" + "95" + "200"
    assert level3_checksum(asks, bids, 1, 2) == zlib.crc32(text.encode("ascii"))
    assert units_checksum([(100, 100), (100, 50)], [(95, 200)]) == zlib.crc32(text.encode())


# -- the simulator uses these functions ---------------------------------------------------------


def test_the_market_checksum_is_the_checksum_of_its_book() -> None:
    market = MarketModel(
        "BTC/USD",
        rng=random.Random(4),
        price_precision=1,
        qty_precision=8,
        mid=D("63000.0"),
        tick=D("0.1"),
    )
    for step in range(50):
        market.step(float(step))
        bids, asks = market.book(CHECKSUM_LEVELS)
        expected = book_checksum(
            [(level.price, level.qty) for level in asks],
            [(level.price, level.qty) for level in bids],
            1,
            8,
        )
        assert market.checksum() == expected


def test_the_level3_checksum_is_the_checksum_of_its_snapshot() -> None:
    exchange = FakeExchange(seed=3, idle_timeout=None)
    exchange.advance(2.0)
    book = exchange.level3_book("BTC/USD")
    text = book.frame("snapshot", 1000)
    assert text is not None
    (entry,) = json.loads(text, parse_float=D)["data"]
    expected = level3_checksum(
        queues(entry["asks"], descending=False),
        queues(entry["bids"], descending=True),
        1,
        8,
    )
    assert book.checksum() == entry["checksum"] == expected


def test_the_token_issuer_verifies_with_api_sign() -> None:
    issuer = TokenIssuer(seed=1, api_key=SIM_API_KEY, api_secret=SIM_API_SECRET)
    headers = {"API-Key": SIM_API_KEY, "API-Sign": api_sign(TOKEN_PATH, "nonce=7", 7, "")}
    bad = issuer.handle(TOKEN_PATH, headers, b"nonce=7", 0.0)
    assert json.loads(bad[1]) == {"error": ["EAPI:Invalid signature"]}
    headers["API-Sign"] = api_sign(TOKEN_PATH, "nonce=7", 7, SIM_API_SECRET)
    status, body = issuer.handle(TOKEN_PATH, headers, b"nonce=7", 0.0)
    assert status == 200 and json.loads(body)["error"] == []
    assert TOKEN_PATH == "/0/private/GetWebSocketsToken"


# -- independence from the client's modules -----------------------------------------------------

FORBIDDEN = ("kraken_proto.checksum", "kraken_proto.auth")
PACKAGE = "kraken_proto.simulator"
SIMULATOR_DIR = Path(kraken_proto.simulator.__file__).resolve().parent


def _is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def imported_names(source: str, package: str = PACKAGE) -> Iterator[tuple[str, str | None]]:
    """``(module, name)`` for every import in ``source`` (``name`` is None for ``import m``).

    Relative imports are resolved against ``package``; imports inside functions or
    ``if TYPE_CHECKING:`` blocks count too.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                yield module, alias.name


def violations(source: str, package: str = PACKAGE) -> list[str]:
    """What in ``source`` reaches the client's checksum or auth module by name."""
    found: list[str] = []
    for module, name in imported_names(source, package):
        if _is_forbidden(module) or (name is not None and _is_forbidden(f"{module}.{name}")):
            found.append(f"import of {module}" + ("" if name is None else f".{name}"))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _is_forbidden(node.value):  # importlib.import_module("kraken_proto.auth")
                found.append(f"module name {node.value!r}")
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is not None and _is_forbidden(dotted):
                found.append(f"attribute {dotted}")
    return found


def _forbidden_objects(*, constants: bool) -> list[object]:
    """The public objects of the client's checksum and auth modules.

    Small ints are shared objects and never count; with ``constants=False`` neither do other
    immutable values (an equal string may be the same interned object by chance).
    """
    skipped: tuple[type, ...] = (int,) if constants else (int, float, str, bytes, tuple)
    objects: list[object] = []
    for name in FORBIDDEN:
        module = importlib.import_module(name)
        for attribute in module.__all__:
            value = getattr(module, attribute)
            if not isinstance(value, skipped):
                objects.append(value)
    return objects


def simulator_modules() -> list[ModuleType]:
    names = [PACKAGE] + [
        f"{PACKAGE}.{info.name}" for info in pkgutil.iter_modules([str(SIMULATOR_DIR)])
    ]
    return [importlib.import_module(name) for name in names]


def test_every_simulator_module_is_checked() -> None:
    files = sorted(path.name for path in SIMULATOR_DIR.glob("*.py"))
    assert {"auth.py", "frames.py", "level3.py", "market.py", "verify.py"} <= set(files)
    assert len(simulator_modules()) == len(files)


@pytest.mark.parametrize(
    "path", sorted(SIMULATOR_DIR.glob("*.py")), ids=lambda path: str(path.name)
)
def test_no_simulator_module_imports_the_client_checksum_or_auth(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "path", sorted(SIMULATOR_DIR.glob("*.py")), ids=lambda path: str(path.name)
)
def test_no_simulator_module_imports_a_re_export_of_them(path: Path) -> None:
    """A name imported from another kraken_proto module is not one of theirs either."""
    forbidden = _forbidden_objects(constants=True)
    for module, name in imported_names(path.read_text(encoding="utf-8")):
        if name is None or not module.startswith("kraken_proto"):
            continue
        value = getattr(importlib.import_module(module), name)
        assert getattr(value, "__module__", None) not in FORBIDDEN, (module, name)
        assert not any(value is other for other in forbidden), (module, name)


def test_no_simulator_module_holds_a_client_checksum_or_auth_object() -> None:
    forbidden = _forbidden_objects(constants=False)
    assert forbidden  # functions and classes, at least
    for module in simulator_modules():
        for name, value in vars(module).items():
            where = f"{module.__name__}.{name}"
            if isinstance(value, ModuleType):
                assert not _is_forbidden(value.__name__), where
            else:
                assert getattr(value, "__module__", None) not in FORBIDDEN, where
            assert not any(value is other for other in forbidden), where


@pytest.mark.parametrize(
    "source",
    [
        "from kraken_proto.checksum import plain",
        "from kraken_proto.auth import TOKEN_PATH, sign",
        "import kraken_proto.auth",
        "import kraken_proto.checksum as c",
        "from kraken_proto import checksum",
        "from .. import auth",
        "from ..checksum import digits",
        "def f():\n    from kraken_proto.auth import sign\n",
        "import importlib\nimportlib.import_module('kraken_proto.checksum')",
        "import kraken_proto\nkraken_proto.auth.sign",
    ],
)
def test_the_import_check_catches_every_form(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from kraken_proto.simulator import verify",
        "from . import verify",
        "from .verify import api_sign",
        "from kraken_proto.actions import Send",
        "import zlib",
        '"""Not the client\'s kraken_proto.checksum module."""',
    ],
)
def test_the_import_check_allows_the_simulators_own_code(source: str) -> None:
    assert violations(source) == []


def test_verify_is_public_and_documented() -> None:
    for name in verify.__all__:
        value = getattr(verify, name)
        if callable(value):
            assert value.__doc__, name
    assert verify.__doc__
