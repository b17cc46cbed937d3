"""The simulator's own book checksums and ``API-Sign`` (KRAKEN-V2.md sections 6 and 7).

The fake exchange computes these with the plain code below and never with the client's
:mod:`kraken_proto.checksum` or :mod:`kraken_proto.auth`, so a bug in the client's
versions cannot be mirrored by the simulator and pass every client-against-simulator
test. Everything here is exact: numbers are :class:`~decimal.Decimal` values written with
:func:`format`, never floats.

The rules, from the protocol notes:

- ``T(x)``: ``x`` written with exactly the pair's number of decimals, the ``.`` removed,
  leading ``0`` characters stripped (``0.00100000`` at 8 decimals gives ``100000``).
- Book checksum: the top :data:`CHECKSUM_LEVELS` asks (lowest price first), then the top
  :data:`CHECKSUM_LEVELS` bids (highest price first), ``T(price) + T(qty)`` per level,
  concatenated; ``zlib.crc32`` of the ASCII text.
- Level3 checksum: the same over the top :data:`CHECKSUM_LEVELS` *price levels* per side,
  where every order of a level, in queue order, adds ``T(price) + T(order qty)``.
- ``API-Sign``: ``base64(HMAC-SHA512(key=base64decode(secret),
  msg=path + SHA256(str(nonce) + post_data)))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal

__all__ = [
    "CHECKSUM_LEVELS",
    "api_sign",
    "book_checksum",
    "decimal_text",
    "digits",
    "level3_checksum",
    "units_checksum",
]

CHECKSUM_LEVELS = 10
"""How many levels (price levels for level3) per side a checksum covers, whatever the depth."""


def decimal_text(value: Decimal) -> str:
    """``value`` written out with all its digits and no exponent: ``format(value, "f")``.

    ``str(Decimal)`` is about three times faster and gives the same text whenever it has no
    exponent; it uses one for tiny or scaled values (``Decimal("0.00000000")`` prints
    ``0E-8``), and only then is ``format`` called. Every number the simulator sends goes
    through here.
    """
    text = str(value)
    if "E" in text:
        return format(value, "f")
    return text


def digits(value: Decimal, precision: int) -> str:
    """``T(value)``: ``value`` at ``precision`` decimals, without ``.`` and leading zeros."""
    return format(value, f".{precision}f").replace(".", "").lstrip("0")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("ascii"))


def book_checksum(
    asks: Sequence[tuple[Decimal, Decimal]],
    bids: Sequence[tuple[Decimal, Decimal]],
    price_precision: int,
    qty_precision: int,
) -> int:
    """The checksum of a book given as ``(price, qty)`` levels, best first on each side.

    Only the first :data:`CHECKSUM_LEVELS` levels of each side count.
    """
    text = ""
    for levels in (asks[:CHECKSUM_LEVELS], bids[:CHECKSUM_LEVELS]):
        for price, qty in levels:
            text += digits(price, price_precision) + digits(qty, qty_precision)
    return _crc(text)


def level3_checksum(
    asks: Sequence[tuple[Decimal, Iterable[Decimal]]],
    bids: Sequence[tuple[Decimal, Iterable[Decimal]]],
    price_precision: int,
    qty_precision: int,
) -> int:
    """The level3 checksum of ``(price, order quantities in queue order)`` levels, best first.

    Only the first :data:`CHECKSUM_LEVELS` price levels of each side count, with all their
    orders.
    """
    price_format = f".{price_precision}f"
    qty_format = f".{qty_precision}f"
    parts: list[str] = []
    for levels in (asks[:CHECKSUM_LEVELS], bids[:CHECKSUM_LEVELS]):
        for price, quantities in levels:
            price_digits = format(price, price_format).replace(".", "").lstrip("0")
            for qty in quantities:
                parts.append(price_digits + format(qty, qty_format).replace(".", "").lstrip("0"))
    return _crc("".join(parts))


def units_checksum(
    asks: Sequence[tuple[int, int]],
    bids: Sequence[tuple[int, int]],
) -> int:
    """The book checksum of levels given as whole numbers of precision units, best first.

    A price or quantity of ``n`` units of ``10**-precision`` (``n`` > 0) written at that
    precision, without the ``.`` and leading zeros, is just ``str(n)``: ``45285.2`` at one
    decimal is 452852 units and ``T`` gives ``"452852"``. So this is :func:`book_checksum`
    for a book stored in units, as the market model stores it, without any Decimal work.
    Prices and quantities must be positive (a book level never has a zero price or size).
    """
    parts = [f"{price}{qty}" for price, qty in asks[:CHECKSUM_LEVELS]]
    parts += [f"{price}{qty}" for price, qty in bids[:CHECKSUM_LEVELS]]
    return _crc("".join(parts))


def api_sign(uri_path: str, post_data: str, nonce: int | str, api_secret: str) -> str:
    """The ``API-Sign`` header value Kraken expects for one private REST request.

    ``post_data`` is the exact body sent, ``uri_path`` starts at ``/0/private/`` and
    ``api_secret`` is the base64 secret (``binascii.Error`` if it is not valid base64).
    """
    key = base64.b64decode(api_secret, validate=True)
    message = uri_path.encode() + hashlib.sha256((str(nonce) + post_data).encode()).digest()
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode("ascii")
