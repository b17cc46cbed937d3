"""What the analytics modules share: the decimal contexts and the argument checks.

Arithmetic. Sums, differences and products of ``Decimal`` values are computed in
:data:`EXACT`, a context that cannot round (and traps ``Inexact``, so that a rounding could
never go unseen); a quotient is one division in :data:`QUOTIENT`, correctly rounded to
``QUOTIENT_DIGITS`` significant digits, half to even. The thread's decimal context is never
read nor changed.

Arguments (one policy for the whole package; each check raises
:class:`~kraken_proto.LocalProtocolError` naming the argument and what is allowed):

- a count (``n``, ``track_depth``, a weight) is an ``int`` (not a ``bool``);
- a quantity, a multiple, a threshold or a tick size is a ``Decimal``, an ``int`` or a
  numeric ``str`` (parsed exactly), positive and finite, between 1E-64 and 1E+64 (a price
  to look up: below 1E+256, the bound of every number an event carries). A float is
  refused, with a message saying what to write instead: ``0.1`` is not one tenth, and a
  bucket or a fill computed from it would be silently off. A ``bool`` is refused;
- a time (``now``, a clock reading) is an ``int`` or a ``float`` (not a ``bool``), finite
  as a float, and is handed back as a ``float``: times are measurements, not prices. A
  duration (a window, ``stale_after``) is such a number and > 0.
"""

from __future__ import annotations

import math
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from kraken_proto.book import OrderBook
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.events import MAX_NUMBER
from kraken_proto.level3 import L3Book

QUOTIENT_DIGITS = 28
"""Significant digits of every quotient the analytics return (``ROUND_HALF_EVEN``).

Sums, differences and products are exact; only a division rounds, once, to this many
digits. 28 is the precision of Python's default decimal context.
"""

EXACT = Context(
    prec=MAX_PREC,
    rounding=ROUND_HALF_EVEN,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
"""Sums, differences and products: a precision no result reaches, and ``Inexact`` trapped."""

QUOTIENT = Context(
    prec=QUOTIENT_DIGITS,
    rounding=ROUND_HALF_EVEN,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""Quotients: one division, correctly rounded to :data:`QUOTIENT_DIGITS` digits."""

_ZERO = Decimal(0)
MIN_QUANTITY = Decimal("1E-64")
MAX_QUANTITY = Decimal("1E+64")
_QUANTITY_RANGE = " between 1E-64 and 1E+64"
_PRICE_RANGE = f" below {MAX_NUMBER}"
_LOG10_2 = math.log10(2)


def shown(value: object) -> str:
    """``repr(value)`` for a message; an int of more than 100 digits is described instead
    (``repr`` of one of more than 4300 raises ``ValueError``)."""
    if isinstance(value, int) and value.bit_length() > 300:  # maybe more than 100 digits
        magnitude = abs(value)
        floor_log = int((magnitude.bit_length() - 1) * _LOG10_2)  # or one less
        digits = floor_log + (2 if magnitude >= 10 ** (floor_log + 1) else 1)
        if digits > 100:
            return f"an int of {digits} digits"
    return repr(value)


def check_book(book: object) -> None:
    """Raise unless ``book`` is a live L2 or level3 book (the type is checked first)."""
    if not isinstance(book, (OrderBook, L3Book)):
        raise LocalProtocolError(
            f"book must be an OrderBook or an L3Book, got {type(book).__name__}"
        )
    if not book.is_live:
        raise BookNotLiveError(book.symbol, book.state.value)


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LocalProtocolError(f"{name} must be an int >= {minimum}, got {shown(value)}")
    return value


def check_number(
    name: str, value: object, *, price: bool = False, alternative: str = ""
) -> Decimal:
    """``value`` as an exact positive finite ``Decimal``: a ``Decimal``, an ``int`` or a
    numeric ``str`` between 1E-64 and 1E+64 (a ``price``: below ``MAX_NUMBER``, the bound of
    every number an event carries). ``alternative`` (``"None"``, say) names what else the
    caller accepts, for the message."""
    allowed = (
        f"{name} must be {alternative + ' or ' if alternative else ''}a positive finite "
        f"Decimal, int or numeric str{_PRICE_RANGE if price else _QUANTITY_RANGE}"
    )
    if isinstance(value, float) and math.isfinite(value):
        text = str(value)
        raise LocalProtocolError(
            f"{allowed}, not a float (floats are inexact: write Decimal({text!r}) or "
            f"{text!r}), got {value!r}"
        )
    number: Decimal | None = None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            number = Decimal(value)
        except (ArithmeticError, ValueError):  # a malformed str, under a trapping context
            number = None
    if (
        number is None
        or not number.is_finite()
        or not (_ZERO < number < MAX_NUMBER if price else MIN_QUANTITY <= number <= MAX_QUANTITY)
    ):
        raise LocalProtocolError(f"{allowed}, got {shown(value)}")
    return number


def _seconds(value: object) -> float:
    """``value`` as a ``float`` if it is an ``int`` or a ``float`` (not a ``bool``) that is
    finite as a float; else NaN."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            return math.nan
        if math.isfinite(number):
            return number
    return math.nan


def check_time(name: str, value: object) -> float:
    """``value`` as a ``float``: an ``int`` or a ``float`` (not a ``bool``), finite."""
    number = _seconds(value)
    if math.isnan(number):  # refused
        raise LocalProtocolError(
            f"{name} must be a finite number of seconds (int or float), got {shown(value)}"
        )
    return number


def check_duration(name: str, value: object, unit: str = "seconds", alternative: str = "") -> float:
    """``value`` as a ``float`` > 0: an ``int`` or a ``float`` (not a ``bool``), finite;
    ``unit`` and ``alternative`` (what else the caller accepts) are for the message."""
    number = _seconds(value)
    if not number > 0:  # NaN too
        raise LocalProtocolError(
            f"{name} must be {alternative + ' or ' if alternative else ''}a finite number of "
            f"{unit} > 0 (int or float), got {shown(value)}"
        )
    return number
