"""The L2 order book of one symbol, maintained from snapshots and updates, checksum-verified.

The book keeps the number tokens Kraken sent, never ``Decimal`` values: making two Decimals
per level would cost more than everything else the book does per message. Each side is
three parallel lists ordered from the worst level to the best, so that the busy end of a
deep book is the cheap end of a Python list:

- the sort keys, searched with :mod:`bisect`: each price as an ``int`` at the book's decimal
  *scale* (``63000.0`` at scale 1 is ``630000``), negated for asks;
- the ``(price, qty)`` token pairs as ``bytes`` (copies, so a long-lived book does not keep
  every frame's buffer alive);
- each level's checksum fragment ``T(price) + T(qty)`` (see :mod:`kraken_proto.checksum`) as
  ASCII bytes, ``b""`` where not computed yet.

Kraken pads every book number to the pair's precision, so a price token's text without its
``.`` is both its key and its checksum digits, and likewise for a quantity; a quantity whose
digits are all zeros deletes its level. Each side remembers the key and digits of the price
tokens it has seen. Any other token (another number of decimals, exponent form, a quoted
number) takes a slower path that is exact too, and a token that is no usable number raises
``ValueError`` or ``ArithmeticError``, naming the field: so does a price that is not
positive or a quantity below zero, which Kraken never sends (``-0`` is a zero: it deletes).
The fast paths take digits only, so a sign or a zero price always goes the slower way.
Tokens are expected to be valid JSON values, as decoded by msgspec or made by
:meth:`BookLevel.of <kraken_proto.events.BookLevel.of>`. The scale is the price precision
when known, else the decimals of the first price of the last snapshot; a price with more
decimals rescales the keys of the whole book.

The encoded top-10 text of each side is cached and rebuilt only for a side whose top 10 a
message changed, so a message's checksum is one small join plus a chained ``zlib.crc32``.
Fragments are computed when a level is set by an update, or when it enters the top 10;
levels of a snapshot deeper than that (most of a depth-1000 book) are formatted only then.
Levels truncated away are cut off logically at once and dropped from the lists in batches.

One message costs time linear in its level count, however many levels it carries: during a
message a side lists at most ``depth`` + :data:`_SPARE` levels (an insert into a list moves
every better level); the levels worse than all listed ones wait in a dict, and after the
message the best of them move into the lists as far as the depth has room (see
:meth:`OrderBook._update_side_py`).

The book does not compare checksums or resync by itself: :meth:`OrderBook.apply_snapshot`
and :meth:`OrderBook.apply_update` return the computed CRC32, the caller compares it with
the wire value and drives the state (:meth:`OrderBook.mark_resyncing` and friends).
Queries answer only while the book is :attr:`BookState.LIVE`; they build the
:class:`~kraken_proto.events.BookLevel` and ``Decimal`` values they return on demand,
except :meth:`OrderBook.top_tokens`, which hands out the tokens themselves to code that
reads the numbers its own way (:mod:`kraken_proto.analytics`).
"""

from __future__ import annotations

import enum
import heapq
import os
import zlib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

import msgspec

from kraken_proto.checksum import CHECKSUM_LEVELS, digits
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.events import BookLevel

__all__ = ["ACCELERATED", "BookBase", "BookState", "OrderBook", "apply_live_update"]

_MAX_PRECISION = 18
_MAX_SCALE = 64  # decimals (and digits before the point) of the most extreme price accepted
_TOP = CHECKSUM_LEVELS
_ZERO = Decimal(0)
_DOT = ord(".")
_NEVER = -(1 << 40)  # an index no token reaches: the fast path's check raises IndexError
_KNOWN_PRICES = 1024  # price tokens remembered per book side
_TENS: list[int] = [10**k for k in range(_MAX_SCALE + 1)]
_TRUNCATED = 64  # truncated entries a side keeps before dropping them in one go
_SPARE = 64  # levels a side may list beyond the depth during a message; more wait in ``deep``

_Tokens = tuple[bytes, bytes]
_decode_decimal = msgspec.json.Decoder(Decimal).decode


class BookState(enum.Enum):
    """Whether a book's levels can be trusted."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"
    """Created or reset; no snapshot applied since."""
    LIVE = "live"
    """A snapshot was applied, and every update since; queries are served."""
    RESYNCING = "resyncing"
    """A checksum failed; a fresh snapshot has been requested."""
    FAILED = "failed"
    """Resyncing was given up; the book stays unusable until a new snapshot."""


_LIVE = BookState.LIVE


def _check_precision(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"{name} must be None or an int, got {value!r}")
    if not 0 <= value <= _MAX_PRECISION:
        raise LocalProtocolError(f"{name} must be between 0 and {_MAX_PRECISION}, got {value}")


def _number(token: bytes, field: str) -> Decimal:
    """The exact value of a number token (quoted or exponent forms too); raises on garbage."""
    try:
        value = _decode_decimal(token)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{field} {token[:40]!r} is not a number") from exc
    if not value.is_finite() or abs(value.adjusted()) > _MAX_SCALE:
        # No price or quantity looks so; writing 1E+999999999 out would exhaust memory.
        raise InvalidOperation(f"{field} {token[:40]!r} is no usable number")
    return value


def _split(token: bytes) -> tuple[int, int]:
    """A price token as ``(n, d)`` with value ``n / 10**d``, exactly, and ``n > 0``.

    Raises ``ValueError`` for a price that is not positive, which Kraken never sends: a
    sign is no digit, so it takes the exact path (ask keys are negated prices, but only as
    ints, after this).
    """
    dot = token.find(b".")
    text = token.replace(b".", b"", 1)
    if text.isdigit():  # a plain decimal
        n = int(text)
        if n:
            return n, len(token) - dot - 1 if dot >= 0 else 0
    else:
        sign, coefficient, exponent = _number(token, "price").as_tuple()
        assert isinstance(exponent, int)  # finite
        significant = "".join(map(str, coefficient)).rstrip("0")
        if significant and not sign:
            exponent += len(coefficient) - len(significant)
            n = int(significant)
            if exponent >= 0:
                return n * _TENS[exponent], 0  # exponent <= adjusted <= _MAX_SCALE
            return n, -exponent
    raise ValueError(f"price {token[:40]!r} is not positive")


def _trim(n: int, d: int, scale: int) -> tuple[int, int]:
    """``(n, d)`` with trailing zero decimals dropped while there are more than ``scale``."""
    while d > scale and not n % 10:
        n //= 10
        d -= 1
    return n, d


def _decimals(token: bytes) -> int:
    dot = token.find(b".")
    return len(token) - dot - 1 if dot >= 0 else 0


def _digits(token: bytes, precision: int | None) -> bytes:
    """``T(x)`` of a number token: its own digits if it is written at ``precision``."""
    text = token.replace(b".", b"")
    if text.isdigit() and (precision is None or _decimals(token) == precision):
        return text.lstrip(b"0")
    return digits(_number(token, "number"), precision).encode()


def _nonzero(token: bytes) -> bool:
    """Whether a quantity token is not zero (a zero, ``-0`` too, deletes its level).

    Raises ``ValueError`` for a negative quantity, as for any unusable one.
    """
    text = token.replace(b".", b"")
    if text.isdigit():
        return bool(text.lstrip(b"0"))
    value = _number(token, "qty")
    if value < 0:
        raise ValueError(f"qty {token[:40]!r} is negative")
    return bool(value)


def _level(tokens: _Tokens) -> BookLevel:
    return BookLevel(msgspec.Raw(tokens[0]), msgspec.Raw(tokens[1]))


class _Side:
    """One side of a book, as parallel lists in which the best level comes last.

    ``keys`` ascend towards the best level: a bid's key is its price, an ask's key its
    negated price. Entries before ``lo`` were truncated away; they are dropped in batches,
    since deleting at the front of a depth-1000 list moves the whole list. ``deep`` holds,
    during a message only, the levels worse than every listed one that did not fit in the
    lists, by key: ``((price, qty), fragment)``.
    """

    __slots__ = ("deep", "frags", "keys", "lo", "prices", "sign", "text", "toks")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.toks: list[_Tokens] = []
        # b"" = not computed; never the case within the top 10 (the last 10 live entries).
        self.frags: list[bytes] = []
        self.lo = 0
        self.deep: dict[int, tuple[_Tokens, bytes]] = {}
        # price token -> (key, T(price)) at the book's scale and precision: most updates
        # move prices near the spread, so most tokens were seen before.
        self.prices: dict[bytes, tuple[int, bytes]] = {}
        self.text = b""  # the checksum text of the top 10, best first

    def compact(self) -> None:
        """Drop the truncated entries."""
        lo = self.lo
        del self.keys[:lo]
        del self.toks[:lo]
        del self.frags[:lo]
        self.lo = 0

    def best(self, n: int) -> list[_Tokens]:
        """The tokens of the best ``n`` levels, best first."""
        toks = self.toks
        return toks[max(self.lo, len(toks) - n) :][::-1]

    def set_text(self) -> None:
        frags = self.frags
        self.text = b"".join(frags[max(self.lo, len(frags) - _TOP) :][::-1])


class BookBase:
    """What an L2 :class:`OrderBook` and an L3 book share: identity, precisions, state.

    Queries of a subclass call :meth:`_require_live` first, so a book that is not live
    refuses to answer instead of serving stale levels.
    """

    __slots__ = ("_depth", "_price_precision", "_qty_precision", "_state", "_symbol")

    def __init__(
        self, symbol: str, depth: int, price_precision: int | None, qty_precision: int | None
    ) -> None:
        _check_precision("price_precision", price_precision)
        _check_precision("qty_precision", qty_precision)
        self._symbol = symbol
        self._depth = depth
        self._price_precision = price_precision
        self._qty_precision = qty_precision
        self._state = BookState.AWAITING_SNAPSHOT

    @property
    def symbol(self) -> str:
        """The pair this book belongs to, e.g. ``"BTC/USD"``."""
        return self._symbol

    @property
    def depth(self) -> int:
        """The subscribed depth: each side holds at most this many price levels."""
        return self._depth

    @property
    def state(self) -> BookState:
        """The book's current :class:`BookState`."""
        return self._state

    @property
    def is_live(self) -> bool:
        """True when the book is :attr:`BookState.LIVE` and queries are served."""
        return self._state is _LIVE

    @property
    def price_precision(self) -> int | None:
        """Decimals of prices used by the checksum, or ``None`` for the values' own digits."""
        return self._price_precision

    @property
    def qty_precision(self) -> int | None:
        """Decimals of quantities used by the checksum, or ``None`` for the values' own digits."""
        return self._qty_precision

    def _set_precisions(self, price_precision: int | None, qty_precision: int | None) -> None:
        _check_precision("price_precision", price_precision)
        _check_precision("qty_precision", qty_precision)
        self._price_precision = price_precision
        self._qty_precision = qty_precision

    def mark_resyncing(self) -> None:
        """Mark the book as being rebuilt; queries refuse until the next snapshot."""
        self._state = BookState.RESYNCING

    def mark_failed(self) -> None:
        """Mark the book as given up; queries refuse until a snapshot is applied."""
        self._state = BookState.FAILED

    def mark_awaiting_snapshot(self) -> None:
        """Mark the book as waiting for a snapshot (e.g. after a reconnect)."""
        self._state = BookState.AWAITING_SNAPSHOT

    def _require_live(self) -> None:
        if self._state is not _LIVE:
            raise BookNotLiveError(self._symbol, self._state.value)


class OrderBook(BookBase):
    """The L2 book of one symbol at a subscribed ``depth``, queried up to ``view_depth``.

    ``depth`` is what was subscribed: each side is truncated to it after every message, as
    Kraken requires for the checksum. ``view_depth`` (default ``depth``) is what the user
    asked for; queries never show more, which lets the protocol subscribe deeper than the
    user's depth. ``price_precision``/``qty_precision`` are the pair's decimals used by the
    checksum; ``None`` means the digits of each value as received.
    """

    __slots__ = (
        "_ask_crc",
        "_asks",
        "_bids",
        "_listed",
        "_pdot",
        "_qdot",
        "_scale",
        "_view_depth",
    )

    def __init__(
        self,
        symbol: str,
        depth: int,
        *,
        view_depth: int | None = None,
        price_precision: int | None = None,
        qty_precision: int | None = None,
    ) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise LocalProtocolError(f"depth must be an int >= 1, got {depth!r}")
        if view_depth is None:
            view_depth = depth
        elif (
            isinstance(view_depth, bool)
            or not isinstance(view_depth, int)
            or not 1 <= view_depth <= depth
        ):
            raise LocalProtocolError(
                f"view_depth must be an int between 1 and depth ({depth}), got {view_depth!r}"
            )
        super().__init__(symbol, depth, price_precision, qty_precision)
        self._view_depth = view_depth
        # The most levels a side lists during a message (see _update_side_py).
        self._listed = depth + _SPARE
        self._asks = _Side(-1)
        self._bids = _Side(1)
        self._ask_crc = 0
        self._scale = 0
        self._pdot = self._qdot = _NEVER
        self._set_scale(price_precision or 0)

    # -- attributes ---------------------------------------------------------------------------

    @property
    def view_depth(self) -> int:
        """The user's depth (``<= depth``): queries never return more levels than this."""
        return self._view_depth

    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None:
        """Change the checksum precisions and recompute the cached fragments with them."""
        self._set_precisions(price_precision, qty_precision)
        asks, bids = self._asks, self._bids
        asks.compact()
        bids.compact()
        base = self._scale if price_precision is None else price_precision
        ask_keys, bids.keys, scale = self._keys(asks.toks, bids.toks, base)
        asks.keys = [-key for key in ask_keys]
        self._set_scale(scale)
        self._reset_fragments()

    # -- applying messages --------------------------------------------------------------------

    def apply_snapshot(self, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
        """Replace the whole book with a snapshot, make it live and return its checksum.

        Levels are applied in order (a qty of 0 deletes, so it is ignored here), then each
        side is truncated to ``depth``. The returned CRC32 is for the caller to compare with
        the checksum the snapshot carried. Allowed in any state; raises ``ValueError`` or
        ``ArithmeticError`` (the book is then unchanged) for a token that is no usable number,
        a price that is not positive or a negative qty.
        """
        ask_toks = [(b"" + level.price_text, b"" + level.qty_text) for level in asks]
        bid_toks = [(b"" + level.price_text, b"" + level.qty_text) for level in bids]
        base = self._price_precision
        if base is None:
            first = ask_toks or bid_toks
            base = _decimals(first[0][0]) if first else 0
        ask_keys, bid_keys, scale = self._keys(ask_toks, bid_toks, base)
        depth = self._depth
        ask_keys, ask_toks = _sorted_side([-key for key in ask_keys], ask_toks)
        bid_keys, bid_toks = _sorted_side(bid_keys, bid_toks)
        # Every token is checked by now: the book changes only from here on.
        for side, keys, toks in (
            (self._asks, ask_keys, ask_toks),
            (self._bids, bid_keys, bid_toks),
        ):
            del keys[:-depth]
            del toks[:-depth]
            side.keys = keys
            side.toks = toks
            side.lo = 0
        self._set_scale(scale)
        self._reset_fragments()
        self._state = _LIVE
        return zlib.crc32(self._bids.text, self._ask_crc)

    def apply_update(self, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
        """Apply an update's levels in order, truncate to ``depth``, return the checksum.

        A qty of 0 deletes the level (a no-op for a price the book does not hold); a price
        may appear several times in one message. Raises
        :class:`~kraken_proto.errors.LocalProtocolError` unless the book is live, and
        ``ValueError`` or ``ArithmeticError`` for a token that is no usable number, a price
        that is not positive or a negative qty (the levels before it are applied: resync the
        book).
        """
        if self._state is not _LIVE:
            raise LocalProtocolError(
                f"book {self._symbol} is {self._state.value}: apply a snapshot before updates"
            )
        return apply_live_update(self, bids, asks)

    def checksum(self) -> int:
        """The CRC32 of the current levels, whatever the state."""
        return zlib.crc32(self._bids.text, self._ask_crc)

    # -- keys and fragments -------------------------------------------------------------------

    def _set_scale(self, scale: int) -> None:
        """Use ``scale`` for keys; arm the fast paths where they give the right digits."""
        self._scale = scale
        self._asks.prices.clear()
        self._bids.prices.clear()
        pp = self._price_precision
        # A price whose "." is at index -scale - 1 has its digits as key and checksum text;
        # right only at the pair's precision (or with none known).
        self._pdot = -scale - 1 if scale and (pp is None or pp == scale) else _NEVER
        qp = self._qty_precision
        # 0 skips the quantity's padding check; _NEVER sends every quantity the slow way.
        self._qdot = 0 if qp is None else -qp - 1 if qp else _NEVER

    def _keys(
        self, asks: list[_Tokens], bids: list[_Tokens], base: int
    ) -> tuple[list[int], list[int], int]:
        """The keys of both sides' prices at ``base`` decimals or more, and that scale."""
        ask_parts = [_split(price) for price, _ in asks]
        bid_parts = [_split(price) for price, _ in bids]
        scale = base
        for parts in (ask_parts, bid_parts):
            for index, (n, d) in enumerate(parts):
                if d > base:
                    parts[index] = trimmed = _trim(n, d, base)
                    scale = max(scale, trimmed[1])
        if scale > _MAX_SCALE:
            raise InvalidOperation(f"a price of the {self._symbol} book has {scale} decimals")
        return (
            [n * _TENS[scale - d] for n, d in ask_parts],
            [n * _TENS[scale - d] for n, d in bid_parts],
            scale,
        )

    def _key(self, token: bytes) -> int:
        """The key of any price token; rescales the book if it has more decimals than it."""
        scale = self._scale
        n, d = _trim(*_split(token), scale)
        if d > scale:
            if d > _MAX_SCALE:
                raise InvalidOperation(f"a price of the {self._symbol} book has {d} decimals")
            factor = _TENS[d - scale]
            for side in (self._asks, self._bids):
                # In place: the update loop holds these lists and dicts.
                side.keys[:] = [key * factor for key in side.keys]
                deep = {key * factor: entry for key, entry in side.deep.items()}
                side.deep.clear()
                side.deep.update(deep)
            self._set_scale(d)
            return n
        return n * _TENS[scale - d]

    def _price(self, side: _Side, token: bytes) -> tuple[int, bytes]:
        """A price token's key on ``side`` and ``T(price)``, remembered for the next time."""
        try:
            if token[self._pdot] != _DOT:
                raise ValueError
            digits = token.replace(b".", b"")
            key = int(digits)
            if key <= 0:
                raise ValueError  # a sign, or zero: _split refuses it
            price_digits = digits.lstrip(b"0")
        except (IndexError, ValueError):  # not padded to the scale, or no plain decimal
            key = self._key(token)
            price_digits = _digits(token, self._price_precision)
        prices = side.prices
        if len(prices) >= _KNOWN_PRICES:
            prices.clear()
        prices[token] = entry = key * side.sign, price_digits
        return entry

    def _fragment(self, price: bytes, qty: bytes) -> bytes:
        """``T(price) + T(qty)`` of any level, at the book's precisions."""
        return _digits(price, self._price_precision) + _digits(qty, self._qty_precision)

    def _qty_fragment(self, price_digits: bytes, qty: bytes) -> bytes | None:
        """The fragment of a level whose qty is not padded (``None`` if the qty is 0)."""
        if not _nonzero(qty):
            return None
        return price_digits + _digits(qty, self._qty_precision)

    def _reset_fragments(self) -> None:
        """Compute the top-10 fragments of both sides afresh, forget the others."""
        fragment = self._fragment
        for side in (self._asks, self._bids):
            toks = side.toks
            start = max(side.lo, len(toks) - _TOP)
            side.frags = [b""] * start + [fragment(price, qty) for price, qty in toks[start:]]
            side.set_text()
        self._ask_crc = zlib.crc32(self._asks.text)

    # The update loop is the hot path. Its fast path is the padded wire format: a price seen
    # before (its key and digits remembered), a quantity padded to its precision or zero;
    # ``b"" + raw`` is the cheapest way to copy a token into bytes. The loop keeps the
    # invariant that every level within the top 10 has its fragment: a level set by an
    # update gets one at once; when a delete in the top 10 lifts the 11th level in, that one
    # is formatted if it has none.
    #
    # One message may carry any number of levels, and inserting into a list moves every
    # level better than the new one, so the lists of a side hold at most ``_listed`` (depth
    # + _SPARE) live levels during a message. The others wait in ``side.deep``, by key: a
    # level worse than every listed one goes there when the lists are full or ``deep``
    # already holds levels, and an insert that overfills the lists moves the worst listed
    # level there. So every deep level is worse than every listed one, which makes the
    # lists and ``deep`` together exactly the book the message would build in one list:
    # a level's key is either listed (found by the search) or below the worst listed key
    # (the search lands on ``lo``: then it is deep, if anywhere). Nothing is dropped during
    # the message, so a delete can lift any deep level; a listed level's rank is its rank
    # in the whole book, since all better levels are listed. After the message,
    # ``_settle_deep`` moves the best deep levels into the lists, as many as the depth has
    # room for: the truncation to depth would drop the rest; those entering the top 10 get
    # their fragments there, and count as a change of the top 10. Each level costs a search
    # and at most ``_listed`` moves (truncated entries are dropped during the message too,
    # so the lists never exceed ``_listed + _TRUNCATED``), the settling a heap selection of
    # at most depth out of ``deep``: the message costs time linear in its length. (A price
    # with more decimals than the book rescales every key, the deep ones too; the scale
    # only grows, to _MAX_SCALE at most.)
    #
    # kraken_proto/_speedups.c is the same loop compiled, step for step, reading and writing
    # the same slots (``_Side``'s and these: ``_asks``, ``_bids``, ``_ask_crc``, ``_qdot``,
    # ``_pdot``, ``_depth``, ``_listed``). It parses the padded tokens itself instead of
    # consulting ``_Side.prices`` and calls back into ``_price``, ``_qty_fragment``,
    # ``_fragment``, ``_settle_deep`` and ``_Side.compact`` off the fast path. Change one,
    # change both: tests/test_speedups.py compares them field by field.

    def _apply_update_py(self, bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
        """Apply an update to the live book, return the checksum (see :meth:`apply_update`).

        The reference form of the compiled ``apply_update``, used when that is not built.
        """
        if asks and self._update_side_py(self._asks, asks):
            self._ask_crc = zlib.crc32(self._asks.text)
        if bids:
            self._update_side_py(self._bids, bids)
        return zlib.crc32(self._bids.text, self._ask_crc)

    def _update_side_py(self, side: _Side, updates: Sequence[BookLevel]) -> bool:
        """Apply one side of an update; True (and ``side.text`` rebuilt) if its top 10 moved."""
        keys = side.keys
        toks = side.toks
        frags = side.frags
        deep = side.deep
        known = side.prices.get
        lo = side.lo
        listed = self._listed
        qdot = self._qdot
        qend = qdot + 1
        dirty = False
        try:
            for level in updates:
                price = b"" + level.price_text
                qty = b"" + level.qty_text
                key, price_digits = known(price) or self._price(side, price)
                qty_digits = qty.replace(b".", b"").lstrip(b"0")
                if not qty_digits:
                    frag = None
                elif qty_digits.isdigit() and (not qdot or qty[qdot:qend] == b"."):
                    frag = price_digits + qty_digits
                else:
                    frag = self._qty_fragment(price_digits, qty)
                i = bisect_left(keys, key, lo)
                # How many levels are better than one inserted at i (0 = it would be the
                # best); the level already at i, if any, has rank - 1 better ones.
                rank = len(keys) - i
                if rank and keys[i] == key:
                    if frag is not None:
                        toks[i] = (price, qty)
                        frags[i] = frag
                        if rank <= _TOP:
                            dirty = True
                    else:
                        del keys[i]
                        del toks[i]
                        del frags[i]
                        if rank <= _TOP:
                            dirty = True
                            if len(frags) - lo >= _TOP and not frags[-_TOP]:
                                frags[-_TOP] = self._fragment(*toks[-_TOP])
                elif i == lo and (deep or rank >= listed):
                    # Worse than every listed level, which are too many or have deep ones
                    # below them: the level is deep, if it is anywhere.
                    if frag is None:
                        deep.pop(key, None)
                    else:
                        deep[key] = ((price, qty), frag)
                elif frag is not None:
                    if i == lo and lo:
                        # The new worst level: it takes the last truncated slot, where
                        # inserting would move every other entry.
                        side.lo = lo = lo - 1
                        keys[lo] = key
                        toks[lo] = (price, qty)
                        frags[lo] = frag
                    else:
                        keys.insert(i, key)
                        toks.insert(i, (price, qty))
                        frags.insert(i, frag)
                        if len(keys) - lo > listed:
                            # One too many listed: the worst goes deep.
                            deep[keys[lo]] = (toks[lo], frags[lo])
                            side.lo = lo = lo + 1
                            if lo > _TRUNCATED:
                                side.compact()
                                lo = 0
                    if rank < _TOP:
                        dirty = True
        finally:
            # Also when a token is refused: the levels before it are applied, none is lost.
            if deep:
                dirty = self._settle_deep(side) or dirty
                lo = side.lo
        excess = len(keys) - lo - self._depth
        if excess > 0:
            lo += excess
        side.lo = lo
        if lo > _TRUNCATED:
            side.compact()
            lo = 0
        if dirty:
            side.text = b"".join(frags[max(lo, len(frags) - _TOP) :][::-1])
        return dirty

    def _settle_deep(self, side: _Side) -> bool:
        """After a message: list the best deep levels the depth has room for, forget the rest.

        They are worse than every listed level, so they take the slots before the listed
        ones; True if one of them enters the top 10 (where each gets its fragment).
        """
        deep = side.deep
        lo = side.lo
        keys = side.keys
        listed = len(keys) - lo
        room = self._depth - listed
        entered = False
        if room > 0:
            best = heapq.nlargest(room, deep)[::-1]
            entries = [deep[key] for key in best]
            keys[:lo] = best
            toks, frags = side.toks, side.frags
            toks[:lo] = [tokens for tokens, _ in entries]
            frags[:lo] = [frag for _, frag in entries]
            side.lo = 0
            for index in range(max(0, len(keys) - _TOP), len(best)):
                entered = True
                if not frags[index]:
                    frags[index] = self._fragment(*toks[index])
        deep.clear()
        return entered

    # -- queries ------------------------------------------------------------------------------

    def _limit(self, n: int | None) -> int:
        if n is None:
            return self._view_depth
        if n < 0:
            raise LocalProtocolError(f"n must be None or >= 0, got {n}")
        return min(n, self._view_depth)

    def best_bid(self) -> BookLevel | None:
        """The highest bid, or ``None`` if there are no bids."""
        self._require_live()
        best = self._bids.best(1)
        return _level(best[0]) if best else None

    def best_ask(self) -> BookLevel | None:
        """The lowest ask, or ``None`` if there are no asks."""
        self._require_live()
        best = self._asks.best(1)
        return _level(best[0]) if best else None

    def spread(self) -> Decimal | None:
        """Best ask price minus best bid price, or ``None`` if a side is empty."""
        self._require_live()
        ask, bid = self._asks.best(1), self._bids.best(1)
        if not ask or not bid:
            return None
        return _decode_decimal(ask[0][0]) - _decode_decimal(bid[0][0])

    def mid_price(self) -> Decimal | None:
        """The exact mean of the best bid and best ask prices, or ``None`` if a side is empty."""
        self._require_live()
        ask, bid = self._asks.best(1), self._bids.best(1)
        if not ask or not bid:
            return None
        return (_decode_decimal(ask[0][0]) + _decode_decimal(bid[0][0])) / 2

    def bids(self, n: int | None = None) -> list[BookLevel]:
        """The best ``n`` bids (up to ``view_depth``; all of those if ``n`` is None), best first."""
        self._require_live()
        return [_level(tokens) for tokens in self._bids.best(self._limit(n))]

    def asks(self, n: int | None = None) -> list[BookLevel]:
        """The best ``n`` asks (up to ``view_depth``; all of those if ``n`` is None), best first."""
        self._require_live()
        return [_level(tokens) for tokens in self._asks.best(self._limit(n))]

    def top_tokens(self, n: int | None = None) -> tuple[list[_Tokens], list[_Tokens]]:
        """The best ``n`` bids and asks as Kraken's own number text: ``(bids, asks)``.

        Each side is a new list, best level first, of ``(price, qty)`` pairs of ``bytes``:
        the exact tokens Kraken sent for the level, as :attr:`BookLevel.price_text
        <kraken_proto.events.BookLevel.price_text>` and ``qty_text`` hold them (copied out
        of the frame). A token is a JSON number, nearly always plain digits padded to the
        pair's precision (``b"63418.3"``, ``b"0.10493453"``), but any form the book accepts
        may occur (``b"1.5E-3"``, a quoted ``b'"0.5"'``); the value is what
        :attr:`BookLevel.qty <kraken_proto.events.BookLevel.qty>` decodes. Quantities are
        never zero (a zero deletes its level).

        The same levels as :meth:`bids` and :meth:`asks`: up to ``view_depth`` per side, all
        of those if ``n`` is None; but no level object or ``Decimal`` is made, so this is
        the cheap read for code that parses the numbers itself (as
        :mod:`kraken_proto.analytics` does). Raises
        :class:`~kraken_proto.errors.BookNotLiveError` unless the book is live, and
        :class:`~kraken_proto.errors.LocalProtocolError` for ``n < 0``.
        """
        if self._state is not _LIVE:
            raise BookNotLiveError(self._symbol, self._state.value)
        view = self._view_depth
        if n is None or n > view:
            n = view
        elif n < 0:
            raise LocalProtocolError(f"n must be None or >= 0, got {n}")
        # What _Side.best(n) returns, for both sides, in fewer steps (this is the cheap
        # read): the last n live entries reversed, toks[max(lo, start):][::-1], copied in
        # one go as toks[:max(lo, start) - 1:-1], except from 0 (a stop of -1 would mean
        # the last entry).
        side = self._bids
        toks, lo = side.toks, side.lo
        start = len(toks) - n
        bids = toks[: start - 1 : -1] if start > lo else toks[: lo - 1 : -1] if lo else toks[::-1]
        side = self._asks
        toks, lo = side.toks, side.lo
        start = len(toks) - n
        asks = toks[: start - 1 : -1] if start > lo else toks[: lo - 1 : -1] if lo else toks[::-1]
        return bids, asks

    def bid_volume(self) -> Decimal:
        """Total quantity of the bids within ``view_depth``."""
        self._require_live()
        levels = self._bids.best(self._view_depth)
        return sum([_decode_decimal(qty) for _, qty in levels], _ZERO)

    def ask_volume(self) -> Decimal:
        """Total quantity of the asks within ``view_depth``."""
        self._require_live()
        levels = self._asks.best(self._view_depth)
        return sum([_decode_decimal(qty) for _, qty in levels], _ZERO)

    def __repr__(self) -> str:
        ask, bid = self._asks.best(1), self._bids.best(1)
        best_bid = _decode_decimal(bid[0][0]) if bid else None
        best_ask = _decode_decimal(ask[0][0]) if ask else None
        asks, bids = self._asks, self._bids
        return (
            f"<OrderBook {self._symbol} {self._state.value} bid={best_bid} ask={best_ask} "
            f"levels={len(bids.keys) - bids.lo}/{len(asks.keys) - asks.lo}>"
        )


def _sorted_side(keys: list[int], toks: list[_Tokens]) -> tuple[list[int], list[_Tokens]]:
    """A snapshot side applied in order, as parallel key and token lists, keys ascending."""
    by_key: dict[int, _Tokens] = {}
    for key, tokens in zip(keys, toks, strict=True):
        if _nonzero(tokens[1]):
            by_key[key] = tokens
        else:
            by_key.pop(key, None)
    ordered = sorted(by_key)
    return ordered, [by_key[key] for key in ordered]


_ApplyUpdate = Callable[[OrderBook, Sequence[BookLevel], Sequence[BookLevel]], int]


def _compiled_apply_update() -> _ApplyUpdate | None:
    """The compiled update loop, unless it was not built or ``KRAKEN_WS_PURE_PYTHON`` is set."""
    if os.environ.get("KRAKEN_WS_PURE_PYTHON"):
        return None
    try:
        from kraken_proto._speedups import apply_update  # noqa: PLC0415
    except ImportError:
        return None
    return apply_update


_compiled = _compiled_apply_update()
apply_live_update: _ApplyUpdate = _compiled or OrderBook._apply_update_py
"""``apply_live_update(book, bids, asks)``: :meth:`OrderBook.apply_update` for a book known
to be live (the protocol's hot path; the check is the caller's), compiled when available."""

ACCELERATED = _compiled is not None
"""Whether books update through the compiled loop (``kraken_proto._speedups``).

It is built at install time when a C compiler is present, and skipped otherwise (or with
``KRAKEN_WS_PURE_PYTHON=1`` in the environment at import); results are identical either way.
"""
