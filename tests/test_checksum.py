"""Checksum formatting and CRC against Kraken's documented vectors and the edge cases of T(x)."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from kraken_proto.checksum import (
    CHECKSUM_LEVELS,
    book_checksum,
    digits,
    level_fragment,
    plain,
)


def _vector(data_dir: Path, vector_id: str) -> dict[str, Any]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (found,) = [v for v in vectors if v["id"] == vector_id]
    assert isinstance(found, dict)
    return found


def _pairs(levels: list[dict[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(level["price"]), Decimal(level["qty"])) for level in levels]


# -- documented vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(("price_precision", "qty_precision"), [(1, 8), (None, None)])
def test_v2_doc_vector(
    data_dir: Path, price_precision: int | None, qty_precision: int | None
) -> None:
    vector = _vector(data_dir, "book_v2_doc_guide_btcusd")
    asks = _pairs(vector["input"]["asks"])
    bids = _pairs(vector["input"]["bids"])
    assert vector["expected"] == 3310070434
    assert book_checksum(asks, bids, price_precision, qty_precision) == 3310070434
    text = "".join(level_fragment(p, q, price_precision, qty_precision) for p, q in asks)
    assert text == vector["input"]["asks_string"]
    text = "".join(level_fragment(p, q, price_precision, qty_precision) for p, q in bids)
    assert text == vector["input"]["bids_string"]


def test_v2_doc_vector_through_float_repr_is_wrong(data_dir: Path) -> None:
    """The note in the vector: going through float repr loses the padding and the CRC."""
    vector = _vector(data_dir, "book_v2_doc_guide_btcusd")
    asks = [
        (Decimal(repr(float(p))), Decimal(repr(float(q))))
        for p, q in _pairs(vector["input"]["asks"])
    ]
    bids = [
        (Decimal(repr(float(p))), Decimal(repr(float(q))))
        for p, q in _pairs(vector["input"]["bids"])
    ]
    assert book_checksum(asks, bids, None, None) == 1604409348
    assert book_checksum(asks, bids, 1, 8) == 3310070434


@pytest.mark.parametrize(("price_precision", "qty_precision"), [(1, 8), (None, None)])
def test_l3_doc_vector_formatting(
    data_dir: Path, price_precision: int | None, qty_precision: int | None
) -> None:
    """Formatting check of ``digits`` only: every order of the top 10 price levels, in order."""
    vector = _vector(data_dir, "l3_v2_doc_guide_btcusd")

    def side_text(orders: list[dict[str, str]]) -> str:
        parts: list[str] = []
        seen: list[str] = []
        for order in orders:
            if order["limit_price"] not in seen:
                seen.append(order["limit_price"])
            if len(seen) > CHECKSUM_LEVELS:
                break
            parts.append(digits(Decimal(order["limit_price"]), price_precision))
            parts.append(digits(Decimal(order["order_qty"]), qty_precision))
        return "".join(parts)

    asks = side_text(vector["input"]["asks"])
    bids = side_text(vector["input"]["bids"])
    assert asks == vector["input"]["asks_string"]
    assert bids == vector["input"]["bids_string"]
    assert zlib.crc32((asks + bids).encode()) == vector["expected"] == 1063832831


def test_v1_doc_vector(data_dir: Path) -> None:
    vector = _vector(data_dir, "book_v1_doc_guide")
    state = vector["input"]["book_state"]
    text = "".join(
        digits(Decimal(price), 5) + digits(Decimal(qty), 8)
        for price, qty, _timestamp in state["as"] + state["bs"]
    )
    assert text == vector["input"]["checksum_input_string"]
    assert text == "".join(vector["input"]["checksum_input_string_as_printed_in_docs"])
    assert zlib.crc32(text.encode()) == 974947235
    asks = [(Decimal(p), Decimal(q)) for p, q, _ in state["as"]]
    bids = [(Decimal(p), Decimal(q)) for p, q, _ in state["bs"]]
    assert book_checksum(asks, bids, 5, 8) == 974947235
    price, qty, _ = vector["input"]["single_level_example"]["level"]
    assert level_fragment(Decimal(price), Decimal(qty), 5, 8) == "5000304"


def test_real_capture_first_snapshot(real_capture_paths: dict[str, Path]) -> None:
    """The first btcusd_l2 snapshot checksums to 2531248887 (the digest's table), tokens kept."""
    with real_capture_paths["btcusd_l2"].open() as lines:
        text = next(
            t for t in (json.loads(line)["text"] for line in lines) if '"type":"snapshot"' in t
        )
    entry = json.loads(text, parse_float=Decimal)["data"][0]
    asks = [(level["price"], level["qty"]) for level in entry["asks"]]
    bids = [(level["price"], level["qty"]) for level in entry["bids"]]
    assert entry["checksum"] == 2531248887
    assert book_checksum(asks, bids, None, None) == 2531248887
    assert book_checksum(asks, bids, 1, 8) == 2531248887


# -- plain -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.00000005", "0.00000005"),  # str() would give 5E-8
        ("5E-8", "0.00000005"),
        ("0.00000050", "0.00000050"),  # str() would give 5.0E-7
        ("0E-8", "0.00000000"),
        ("1E+3", "1000"),
        ("63000.0", "63000.0"),
        ("0.566", "0.566"),
        ("123", "123"),
    ],
)
def test_plain(value: str, expected: str) -> None:
    assert plain(Decimal(value)) == expected


@pytest.mark.parametrize("value", ["1E+999999999", "1E-100"])
def test_plain_refuses_what_cannot_be_written_out(value: str) -> None:
    with pytest.raises(InvalidOperation):
        plain(Decimal(value))


# -- digits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        # the digest's examples
        ("45285.2", 1, "452852"),
        ("0.00100000", 8, "100000"),
        ("45281.0", 1, "452810"),
        ("0.05000", 5, "5000"),
        # unpadded text (re-serialized numbers) is padded to the precision
        ("0.566", 4, "5660"),
        ("63000", 1, "630000"),
        ("0.000051", 8, "5100"),
        # exponent-form input
        ("5E-8", 8, "5"),
        ("5.1E-5", 8, "5100"),
        ("1E-8", 8, "1"),
        ("5E-8", None, "5"),
        ("5.0E-7", None, "50"),
        # zero: no digits at all once leading zeros are gone
        ("0E-8", 8, ""),
        ("0E-8", None, ""),
        ("0.00000000", 8, ""),
        ("0", 0, ""),
        # precision None keeps the token's own digits, padding included
        ("63000.0", None, "630000"),
        ("0.00005100", None, "5100"),
        ("0.566", None, "566"),
        ("1.08100", None, "108100"),
        # more decimals than the precision: quantized (half-even) to it
        ("0.123456789", 8, "12345679"),
        ("63000.05", 1, "630000"),
        ("63000.15", 1, "630002"),
        ("2.5", 0, "2"),
        # large positive exponent
        ("1E+3", 1, "10000"),
        ("1E+3", 0, "1000"),
        ("1E+3", None, "1000"),
        # precision 0 with an integer value
        ("1000", 0, "1000"),
    ],
)
def test_digits(value: str, precision: int | None, expected: str) -> None:
    assert digits(Decimal(value), precision) == expected


def test_digits_precision_beyond_the_cached_quanta() -> None:
    assert digits(Decimal("1.5"), 20) == "1" + "5" + "0" * 19


def test_digits_keeps_own_digits_when_quantize_overflows() -> None:
    """More integer digits than the decimal context holds at that precision: token kept."""
    value = Decimal("1" * 27 + ".5")
    assert digits(value, 8) == "1" * 27 + "5"


def test_level_fragment_is_price_then_qty() -> None:
    assert level_fragment(Decimal("63005.0"), Decimal("2.07265551"), 1, 8) == "630050207265551"
    assert level_fragment(Decimal("1.081"), Decimal("2819.16582633"), 5, 8) == (
        "108100" + "281916582633"
    )


def test_book_checksum_uses_ten_levels_per_side() -> None:
    asks = [(Decimal(100 + i), Decimal("1.0")) for i in range(15)]
    bids = [(Decimal(99 - i), Decimal("2.0")) for i in range(15)]
    expected_text = "".join(f"{100 + i}10" for i in range(10)) + "".join(
        f"{99 - i}20" for i in range(10)
    )
    assert book_checksum(asks, bids, None, None) == zlib.crc32(expected_text.encode())
    assert book_checksum(asks, bids, None, None) == book_checksum(asks[:10], bids[:10], None, None)
    assert book_checksum([], [], None, None) == 0
