"""Kraken's book checksum: the digit formatting ``T(x)`` and the CRC32 over the top levels.

The rule (KRAKEN-V2.md section 6): write each price and quantity at the pair's fixed
precision, drop the ``.``, strip leading ``0`` characters; concatenate the top 10 asks
(ascending) then the top 10 bids (descending), ``price`` then ``qty`` per level; CRC32.
When the precision is unknown, the value's own digits are used (the wire pads them).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

__all__ = ["CHECKSUM_LEVELS", "book_checksum", "digits", "level_fragment", "plain"]

CHECKSUM_LEVELS = 10
"""How many levels per side the checksum covers, whatever the subscribed depth."""

_MAX_MAGNITUDE = 64
_QUANTS: dict[int, Decimal] = {p: Decimal(1).scaleb(-p) for p in range(0, 19)}


def plain(value: Decimal) -> str:
    """Write ``value`` in positional notation with all its digits (``format(value, "f")``).

    ``str(Decimal)`` switches to exponent notation for tiny or scaled values
    (``Decimal("0.00000005")`` prints ``5E-8``), which would corrupt a checksum. It is three
    times faster than ``format`` though, and this runs for every level of every book message,
    so the exponent form is detected and only then formatted the slow, always-right way.
    """
    text = str(value)
    if "E" in text:
        if not value.is_finite() or abs(value.adjusted()) > _MAX_MAGNITUDE:
            # Writing 1E+999999999 out would exhaust memory; no price or quantity looks so.
            raise InvalidOperation(f"{text} cannot be written out for a checksum")
        return format(value, "f")
    return text


def _quantum(precision: int) -> Decimal:
    quant = _QUANTS.get(precision)
    if quant is None:
        quant = Decimal(1).scaleb(-precision)
    return quant


def digits(value: Decimal, precision: int | None) -> str:
    """``T(value)``: the value at ``precision`` decimals, without ``.`` and leading zeros.

    With ``precision=None`` the value's own digits are used as they are.
    """
    text = plain(value)
    if precision is not None:
        dot = text.find(".")
        decimals = 0 if dot < 0 else len(text) - dot - 1
        if decimals != precision:
            # Too many integer digits for the context at this precision: keep the value's own
            # digits rather than fail; the checksum comparison then decides.
            with contextlib.suppress(InvalidOperation):
                text = format(value.quantize(_quantum(precision)), "f")
    return text.replace(".", "").lstrip("0")


def level_fragment(
    price: Decimal, qty: Decimal, price_precision: int | None, qty_precision: int | None
) -> str:
    """The checksum text one level contributes: ``T(price) + T(qty)``."""
    return digits(price, price_precision) + digits(qty, qty_precision)


def book_checksum(
    asks: Iterable[tuple[Decimal, Decimal]],
    bids: Iterable[tuple[Decimal, Decimal]],
    price_precision: int | None,
    qty_precision: int | None,
) -> int:
    """CRC32 of a book given best-first ``(price, qty)`` levels per side.

    ``asks`` must be in ascending price order and ``bids`` in descending order; only the
    first :data:`CHECKSUM_LEVELS` of each are used. This is the reference implementation
    (the simulator and tests use it); :class:`~kraken_proto.book.OrderBook` computes the
    same value incrementally from cached fragments.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for index, (price, qty) in enumerate(side):
            if index == CHECKSUM_LEVELS:
                break
            parts.append(level_fragment(price, qty, price_precision, qty_precision))
    return zlib.crc32("".join(parts).encode("ascii"))
