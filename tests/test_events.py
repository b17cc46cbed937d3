"""Events whose numbers are kept as wire tokens: BookLevel and Ticker, their Decimals and repr."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from kraken_proto.events import (
    MAX_NUMBER,
    NON_NEGATIVE,
    POSITIVE,
    SIGNED,
    BookLevel,
    Ticker,
    number_problem,
)
from kraken_proto.wire import decode_data_frame

D = Decimal
_levels = msgspec.json.Decoder(list[BookLevel])

TICKER_VALUES = ("1.08106", "6255.26178818", "1.08107", "1497.5", "1.08106", "69084794.8")
TICKER_VALUES += ("1.08100", "1.03214", "1.10262", "-0.02730", "2.59")
TICKER_TEXT = (
    '{"channel":"ticker","type":"update","data":[{"symbol":"XRP/USD","bid":1.08106,'
    '"bid_qty":6255.26178818,"ask":1.08107,"ask_qty":1497.5,"last":1.08106,'
    '"volume":69084794.8,"vwap":1.08100,"low":1.03214,"high":1.10262,"change":-0.02730,'
    '"change_pct":2.59,"trades":148779,"timestamp":"2026-08-01T00:00:00.050000Z"}]}'
)


# -- BookLevel -----------------------------------------------------------------------------------


def test_book_level_numbers_are_exact_decimals_of_the_wire_tokens() -> None:
    level, quoted, exponent = _levels.decode(
        b'[{"price":63000.0,"qty":0.00005100},{"price":"63000.1","qty":"2"},'
        b'{"price":6.30002e4,"qty":5.1e-05}]'
    )
    assert (level.price, level.qty) == (D("63000.0"), D("0.00005100"))
    assert isinstance(level.price, Decimal) and isinstance(level.qty, Decimal)
    assert format(level.qty, "f") == "0.00005100"  # the padding is kept
    assert bytes(level.price_text) == b"63000.0" and bytes(level.qty_text) == b"0.00005100"
    assert (quoted.price, quoted.qty) == (D("63000.1"), D(2))
    assert (exponent.price, exponent.qty) == (D("63000.2"), D("0.000051"))
    # encoding writes the tokens back as they came
    assert msgspec.json.encode(level) == b'{"price":63000.0,"qty":0.00005100}'


@pytest.mark.parametrize(
    ("price", "qty", "tokens"),
    [
        ("63000.0", "0.00005100", (b"63000.0", b"0.00005100")),
        (D("63000.0"), D("5E-8"), (b"63000.0", b"0.00000005")),  # positional, never 5E-8
        (63000, 0, (b"63000", b"0")),
        (D("1E+3"), D("-0.5"), (b"1000", b"-0.5")),
    ],
)
def test_book_level_of_values(
    price: Decimal | str | int, qty: Decimal | str | int, tokens: tuple[bytes, bytes]
) -> None:
    level = BookLevel.of(price, qty)
    assert (bytes(level.price_text), bytes(level.qty_text)) == tokens
    assert (level.price, level.qty) == (D(price), D(qty))


@pytest.mark.parametrize(
    ("price", "error"),
    [(0.5, TypeError), ("NaN", ValueError), (D("-Infinity"), ValueError), ("x", ArithmeticError)],
)
def test_book_level_of_refuses_inexact_or_non_finite_values(
    price: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        BookLevel.of(price, "1")  # type: ignore[arg-type]


def test_book_levels_compare_and_hash_by_value() -> None:
    level = BookLevel.of("1.0", "2")
    assert level == BookLevel.of("1.0", "2")  # same tokens
    assert level == BookLevel.of("1.00", "2.000")  # same values, other text
    assert hash(level) == hash(BookLevel.of("1.00", "2.000"))
    assert len({level, BookLevel.of("1.00", "2"), BookLevel.of("1.1", "2")}) == 2
    assert level != BookLevel.of("1.0", "3")
    assert level != BookLevel.of("1.5", "2")
    assert level != (D("1.0"), D(2))
    assert level.__eq__((D("1.0"), D(2))) is NotImplemented


def test_book_level_repr_shows_decimals() -> None:
    level = BookLevel.of("63000.0", "0.50")
    assert repr(level) == "BookLevel(price=Decimal('63000.0'), qty=Decimal('0.50'))"
    assert list(level.__rich_repr__()) == [("price", D("63000.0")), ("qty", D("0.50"))]
    # a level made by hand from something that is no number still has a repr
    odd = BookLevel(msgspec.Raw(b"true"), msgspec.Raw(b"1"))
    assert repr(odd) == "BookLevel(price=b'true', qty=Decimal('1'))"


# -- Ticker --------------------------------------------------------------------------------------


def test_ticker_numbers_are_exact_decimals_of_the_wire_tokens() -> None:
    (ticker,) = decode_data_frame(TICKER_TEXT).data  # type: ignore[union-attr]
    assert isinstance(ticker, Ticker)
    names = ("bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap", "low", "high")
    names += ("change", "change_pct")
    for name, value in zip(names, TICKER_VALUES, strict=True):
        number = getattr(ticker, name)
        assert isinstance(number, Decimal)
        assert str(number) == value, name
    assert (ticker.symbol, ticker.trades) == ("XRP/USD", 148779)
    assert ticker.timestamp == "2026-08-01T00:00:00.050000Z"
    assert msgspec.json.encode(ticker).startswith(b'{"symbol":"XRP/USD","bid":1.08106,')


def test_ticker_of_values_equals_the_decoded_one() -> None:
    (decoded,) = decode_data_frame(TICKER_TEXT).data  # type: ignore[union-attr]
    ticker = Ticker.of("XRP/USD", *TICKER_VALUES, "2026-08-01T00:00:00.050000Z", 148779)
    assert ticker == decoded and hash(ticker) == hash(decoded)
    # equal values written otherwise are equal too; any other field makes them differ
    padded = Ticker.of("XRP/USD", "1.081060", *TICKER_VALUES[1:], decoded.timestamp, 148779)
    assert padded == decoded and hash(padded) == hash(decoded)
    assert Ticker.of("XRP/USD", *TICKER_VALUES) != decoded  # no timestamp, no trades
    assert Ticker.of("XBT/USD", "1.0810600", *TICKER_VALUES[1:], decoded.timestamp, 148779) != (
        decoded
    )
    assert Ticker.of("XRP/USD", *TICKER_VALUES, received_at=2.5).received_at == 2.5


def test_ticker_repr_shows_decimals() -> None:
    ticker = Ticker.of("XRP/USD", *TICKER_VALUES)
    text = repr(ticker)
    assert text.startswith("Ticker(symbol='XRP/USD', bid=Decimal('1.08106'), bid_qty=")
    assert text.endswith(
        "change_pct=Decimal('2.59'), timestamp=None, trades=None, received_at=0.0)"
    )
    assert "Raw" not in text
    assert dict(ticker.__rich_repr__())["vwap"] == D("1.08100")


def test_ticker_accepts_quoted_numbers_and_refuses_anything_else() -> None:
    quoted = TICKER_TEXT.replace('"high":1.10262', '"high":"1.10262"')
    (ticker,) = decode_data_frame(quoted).data  # type: ignore[union-attr]
    assert isinstance(ticker, Ticker)
    assert ticker.high == D("1.10262")
    for value in ("true", "null", '"abc"', "[1.5]", '{"a":1}'):
        bad = TICKER_TEXT.replace('"low":1.03214', f'"low":{value}')
        with pytest.raises(msgspec.ValidationError, match=r"Expected a number for `low`.*\$\.data"):
            decode_data_frame(bad)
    with pytest.raises(ValueError, match="`bid`"):
        Ticker("XRP/USD", msgspec.Raw(b'"x"'), *(msgspec.Raw(b"1") for _ in range(10)))


def test_ticker_numbers_are_checked_when_it_is_made() -> None:
    """Issue 9, item 6: a ticker holds finite numbers below 1E+256; only change and
    change_pct may be negative; zero is fine anywhere (no volume in 24 h)."""
    values = list(TICKER_VALUES)
    Ticker.of("XRP/USD", *["0"] * 9, "-1.5", "-0.5")
    for index, name in enumerate(
        ["bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap", "low", "high"]
    ):
        bad = [*values[:index], "-0.1", *values[index + 1 :]]
        with pytest.raises(
            ValueError, match=rf"^ticker\.{name}: '-0\.1' is not a finite non-negative"
        ):
            Ticker.of("XRP/USD", *bad)
    huge = msgspec.Raw(b"1e256")
    with pytest.raises(ValueError, match=r"^ticker\.change: '1E\+256' is out of range"):
        Ticker("XRP/USD", *(msgspec.Raw(b"1") for _ in range(9)), huge, msgspec.Raw(b"1"))
    nan = msgspec.Raw(b'"NaN"')
    with pytest.raises(ValueError, match=r"^ticker\.change_pct: 'NaN' is not a finite number$"):
        Ticker("XRP/USD", *(msgspec.Raw(b"1") for _ in range(10)), nan)


@pytest.mark.parametrize(
    ("value", "sign", "problem"),
    [
        ("1", "positive", None),
        ("0", "positive", "x.y: '0' is not a finite positive number"),
        ("-0", "non-negative", None),
        ("-1E-9", "non-negative", "x.y: '-1E-9' is not a finite non-negative number"),
        ("-9.9E+255", "", None),
        ("-1E+256", "", "x.y: '-1E+256' is out of range (not below 1E+256)"),
        ("sNaN", "", "x.y: 'sNaN' is not a finite number"),
        ("-Infinity", "non-negative", "x.y: '-Infinity' is not a finite non-negative number"),
    ],
)
def test_number_problem(value: str, sign: str, problem: str | None) -> None:
    assert number_problem("x.y", Decimal(value), sign) == problem
    assert (POSITIVE, NON_NEGATIVE, SIGNED) == ("positive", "non-negative", "")
    assert Decimal("1E+256") == MAX_NUMBER
