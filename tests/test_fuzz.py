"""Fuzzing ``KrakenProtocol.receive_data``: bad remote input never raises.

A protocol in SUBSCRIBED state with a live BTC/USD book (the first frames of the real
``btcusd_l2`` capture) is fed arbitrary bytes, text, JSON values, frame-shaped objects and
mutated real frames. Every input must return actions (never raise); a frame that does not
decode as a data frame or a response must produce at least one ``ProtocolError``; and the
protocol must keep working afterwards.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kraken_proto.actions import Action, Emit, Send
from kraken_proto.config import ClientConfig
from kraken_proto.events import (
    BookResync,
    BookUpdate,
    ProtocolError,
    StateChanged,
    SubscriptionFailed,
    SystemStatus,
)
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import replay
from kraken_proto.state import ConnectionState
from kraken_proto.wire import decode_data_frame, decode_response

NOW = 5.0
PREFIX_LINES = 10  # status, ack, snapshot, heartbeats, updates: t <= 3.1 s
HEARTBEAT = '{"channel":"heartbeat"}'
STATUS = (
    '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online",'
    '"api_version":"v2","connection_id":18125794168470749634}]}'
)
OPEN = {ConnectionState.SUBSCRIBED, ConnectionState.RESYNCING, ConnectionState.SUBSCRIBING}
NUMBER_RE = re.compile(r"(?<=[:\[,])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,\]}])")
MUTATIONS = ("truncate", "flip", "number", "drop")
KNOWN_CHANNELS = ["book", "ticker", "trade", "ohlc", "status", "instrument", "heartbeat"]

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class L2:
    """The btcusd_l2 capture, with a short repr (hypothesis prints fixture arguments)."""

    def __init__(self, path: Path) -> None:
        self.lines = path.read_text(encoding="utf-8").splitlines()
        texts = [json.loads(line)["text"] for line in self.lines]
        self.frames = list(dict.fromkeys(texts))  # every distinct frame, in capture order
        self.book_frames = [f for f in self.frames if f.startswith('{"channel":"book"')]
        self.after_prefix = texts[PREFIX_LINES:]

    def live(self) -> KrakenProtocol:
        """A protocol in SUBSCRIBED state with a live BTC/USD book."""
        proto = replay(self.lines[:PREFIX_LINES]).protocol
        assert proto.state is ConnectionState.SUBSCRIBED
        book = proto.book("BTC/USD")
        assert book is not None
        assert book.is_live
        return proto

    def __repr__(self) -> str:
        return "<btcusd_l2>"


@pytest.fixture(scope="module")
def l2(real_capture_paths: dict[str, Path]) -> L2:
    return L2(real_capture_paths["btcusd_l2"])


def events_of(actions: list[Action]) -> list[Any]:
    return [a.event for a in actions if isinstance(a, Emit)]


def protocol_errors(actions: list[Action]) -> list[ProtocolError]:
    return [e for e in events_of(actions) if isinstance(e, ProtocolError)]


UNDECODABLE = (msgspec.DecodeError, UnicodeError, RecursionError)


def decodes(payload: bytes | str) -> bool:
    """Whether the payload is a valid data frame or method response."""
    try:
        decode_data_frame(payload)
    except UNDECODABLE:
        pass
    else:
        return True
    try:
        decode_response(payload)
    except UNDECODABLE:
        return False
    return True


def feed_bad(proto: KrakenProtocol, payload: bytes | str, now: float = NOW) -> list[Action]:
    """Feed one frame: it must not raise, and a bad frame must yield a ProtocolError."""
    actions = proto.receive_data(payload, now)
    assert isinstance(actions, list)
    errors = protocol_errors(actions)
    if not decodes(payload):
        assert errors, f"no ProtocolError for {payload!r:.300}"
    for error in errors:
        assert error.received_at == now
        assert len(error.payload) <= 200
        assert error.error
    assert proto.state in OPEN
    return actions


def assert_keeps_working(proto: KrakenProtocol, now: float = NOW + 1.0) -> None:
    assert proto.receive_data(HEARTBEAT, now) == []
    assert proto.receive_data(STATUS, now + 0.5) == [
        Emit(SystemStatus("online", "2.0.10", "v2", 18125794168470749634, now + 0.5))
    ]


# ----------------------------------------------------------------------------- arbitrary input


@FUZZ
@given(payload=st.binary(max_size=1500))
def test_arbitrary_bytes_never_raise(l2: L2, payload: bytes) -> None:
    proto = l2.live()
    feed_bad(proto, payload)
    assert_keeps_working(proto)


@FUZZ
@given(payload=st.text(max_size=1500))
def test_arbitrary_text_never_raises(l2: L2, payload: str) -> None:
    # st.text() yields valid Unicode only (no lone surrogates), which is all a WebSocket text
    # frame can carry; lone surrogates are test_lone_surrogate_in_text_is_a_protocol_error.
    proto = l2.live()
    feed_bad(proto, payload)
    assert_keeps_working(proto)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


@FUZZ
@given(value=json_values)
def test_arbitrary_json_values_never_raise(l2: L2, value: Any) -> None:
    proto = l2.live()
    payload = json.dumps(value)
    actions = feed_bad(proto, payload)
    if not isinstance(value, dict):
        assert [e.error for e in protocol_errors(actions)] == [
            f"expected a JSON object, got {type(value).__name__}"
        ]
    assert_keeps_working(proto)


frame_shaped = st.fixed_dictionaries(
    {"channel": st.sampled_from([*KNOWN_CHANNELS, "level4", ""])},
    optional={
        "type": st.sampled_from(["snapshot", "update"]) | json_scalars,
        "data": json_values
        | st.lists(
            st.fixed_dictionaries(
                {"symbol": st.sampled_from(["BTC/USD", "ETH/USD"])},
                optional={
                    "bids": json_values,
                    "asks": json_values,
                    "checksum": json_scalars,
                    "timestamp": json_scalars,
                    "system": json_scalars,
                },
            ),
            max_size=2,
        ),
        "timestamp": json_scalars,
    },
)


@FUZZ
@given(value=frame_shaped)
def test_frame_shaped_json_never_raises(l2: L2, value: dict[str, Any]) -> None:
    proto = l2.live()
    actions = feed_bad(proto, json.dumps(value))
    events = events_of(actions)
    for resync in (e for e in events if isinstance(e, BookResync)):
        book = proto.book(resync.symbol)  # a resynced book waits for a fresh snapshot
        assert book is not None
        assert not book.is_live
    assert_keeps_working(proto)


# ----------------------------------------------------------------------------- mutated real frames


def replacement_tokens() -> st.SearchStrategy[str]:
    strings = st.text(max_size=12) | st.sampled_from(
        ["", "abc", "63000.0", "0.00000000", "-1", "1e-08", "\u0661\u0662", "NaN", "sNaN",
         "-Infinity", "1e999999999999999999", "1e100000000"]
    )  # fmt: skip
    return strings.map(json.dumps) | st.sampled_from(
        ["true", "false", "null", "{}", "[]", "1e999999999999999999"]
    )


@st.composite
def mutated_frames(
    draw: st.DrawFn, frames: list[str], kinds: tuple[str, ...] = MUTATIONS, max_byte: int = 0x7F
) -> bytes | str:
    """A real frame truncated, with one byte flipped, a number replaced or a key dropped.

    Flipped bytes stay ASCII by default: a non-UTF-8 byte inside a JSON string is a known
    bug (test_invalid_utf8_bytes_are_a_protocol_error / test_flipped_bytes_never_raise).
    """
    text = draw(st.sampled_from(frames))
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "flip":
        raw = bytearray(text.encode())
        index = draw(st.integers(0, len(raw) - 1))
        raw[index] = draw(st.integers(0, max_byte).filter(lambda b: b != raw[index]))
        return bytes(raw)
    if kind == "number":
        tokens = list(NUMBER_RE.finditer(text))
        if not tokens:
            return text[:-1]
        match = draw(st.sampled_from(tokens))
        return text[: match.start()] + draw(replacement_tokens()) + text[match.end() :]
    # drop one key anywhere in the frame, keeping the exact number tokens of the rest
    obj = msgspec.json.Decoder(float_hook=Decimal).decode(text)
    paths: list[tuple[Any, str]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                paths.append((node, key))
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(obj)
    if not paths:
        return "{}"
    parent, key = draw(st.sampled_from(paths))
    del parent[key]
    return msgspec.json.Encoder(decimal_format="number").encode(obj).decode()


@FUZZ
@given(data=st.data())
def test_mutated_real_frames_never_raise(l2: L2, data: st.DataObject) -> None:
    proto = l2.live()
    frames = data.draw(st.lists(mutated_frames(l2.frames), min_size=1, max_size=4))
    for offset, payload in enumerate(frames):
        feed_bad(proto, payload, NOW + offset / 10)
    assert_keeps_working(proto, NOW + 1.0)


@FUZZ
@given(data=st.data())
def test_mutated_book_frames_on_the_live_book(l2: L2, data: st.DataObject) -> None:
    proto = l2.live()
    payload = data.draw(mutated_frames(l2.book_frames))
    actions = feed_bad(proto, payload)
    events = events_of(actions)
    if any(isinstance(e, BookResync) for e in events):
        # the book stopped being trusted: it is rebuilt with an unsubscribe then a subscribe
        sent = [a.text for a in actions if isinstance(a, Send)]
        assert [json.loads(s)["method"] for s in sent] == ["unsubscribe", "subscribe"]
        assert all(json.loads(s)["params"]["depth"] == 10 for s in sent)
        book = proto.book("BTC/USD")
        assert book is not None
        assert not book.is_live
    assert_keeps_working(proto)


# ----------------------------------------------------------------------------- explicit cases


def test_real_prefix_reaches_a_live_book(l2: L2) -> None:
    proto = l2.live()
    book = proto.book("BTC/USD")
    assert book is not None
    best_bid = book.best_bid()
    assert best_bid is not None
    assert best_bid.price == Decimal("63004.9")
    assert decodes(HEARTBEAT)
    assert decodes(STATUS)
    assert not decodes("{")
    assert not decodes('{"channel":"level4"}')


def test_oversized_message_is_a_protocol_error() -> None:
    proto = KrakenProtocol(ClientConfig(ping_interval=None, max_message_size=1024))
    proto.connect(0.0)
    proto.connection_made(0.0)
    exact = '{"channel":"heartbeat","pad":"' + "x" * (1024 - 32) + '"}'
    assert len(exact) == 1024
    assert proto.receive_data(exact, 1.0) == []  # at the limit: accepted
    for payload in (exact[:-2] + 'xx"}', (exact[:-2] + 'xx"}').encode()):
        actions = proto.receive_data(payload, 2.0)
        assert actions == [
            Emit(
                ProtocolError(
                    "message of 1026 bytes exceeds max_message_size (1024)",
                    '{"channel":"heartbeat","pad":"' + "x" * 170,
                    2.0,
                )
            )
        ]
        assert "max_message_size" in protocol_errors(actions)[0].error
    assert_keeps_working(proto, 3.0)


def test_exceeded_msg_rate_is_a_protocol_error(l2: L2) -> None:
    proto = l2.live()
    payload = '{"Error":"Exceeded msg rate"}'
    actions = proto.receive_data(payload, NOW)
    assert actions == [Emit(ProtocolError("Kraken error: Exceeded msg rate", payload, NOW))]
    assert "Exceeded msg rate" in protocol_errors(actions)[0].error
    lower = proto.receive_data('{"error":"EGeneral:Internal error"}', NOW)
    assert [e.error for e in protocol_errors(lower)] == ["Kraken error: EGeneral:Internal error"]
    assert_keeps_working(proto)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [("[]", "list"), ('[{"channel":"heartbeat"}]', "list"), ("42", "int"), ('"x"', "str")],
)
def test_json_that_is_not_an_object_is_a_protocol_error(l2: L2, payload: str, kind: str) -> None:
    proto = l2.live()
    actions = proto.receive_data(payload, NOW)
    assert actions == [Emit(ProtocolError(f"expected a JSON object, got {kind}", payload, NOW))]
    assert_keeps_working(proto)


def test_unknown_channel_is_a_protocol_error_naming_it(l2: L2) -> None:
    proto = l2.live()
    payload = '{"channel":"level4","type":"update","data":[{"symbol":"BTC/USD"}]}'
    actions = proto.receive_data(payload, NOW)
    assert actions == [Emit(ProtocolError("unknown channel 'level4'", payload, NOW))]
    assert_keeps_working(proto)


def test_frame_without_channel_or_method_is_a_protocol_error(l2: L2) -> None:
    proto = l2.live()
    actions = proto.receive_data('{"type":"update"}', NOW)
    assert [e.error for e in protocol_errors(actions)] == [
        "frame has neither a channel nor a method"
    ]
    malformed = proto.receive_data(b"\xff{", NOW)
    (error,) = protocol_errors(malformed)
    assert error.error.startswith("malformed JSON: ")
    assert error.payload == "\ufffd{"


def test_invalid_book_frame_for_live_symbol_resyncs_it(l2: L2) -> None:
    proto = l2.live()
    payload = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],'
        '"checksum":"abc"}]}'
    )
    actions = proto.receive_data(payload, NOW)
    events = events_of(actions)
    errors = protocol_errors(actions)
    assert len(errors) == 1
    assert errors[0].error.startswith("invalid book frame: ")
    assert "checksum" in errors[0].error
    resyncs = [e for e in events if isinstance(e, BookResync)]
    assert [(r.symbol, r.attempt) for r in resyncs] == [("BTC/USD", 1)]
    assert resyncs[0].reason.startswith("invalid book frame: ")
    assert [a.text for a in actions if isinstance(a, Send)] == [
        '{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":1}',
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":2}',
    ]
    changes = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert changes == [("subscribed", "resyncing")]
    assert proto.state is ConnectionState.RESYNCING
    book = proto.book("BTC/USD")
    assert book is not None
    assert not book.is_live
    # a second bad frame while resyncing is reported but does not start another resync
    again = proto.receive_data(payload, NOW + 0.1)
    assert len(protocol_errors(again)) == 1
    assert not [e for e in events_of(again) if isinstance(e, BookResync)]
    assert_keeps_working(proto)


def test_invalid_book_frame_for_unknown_symbol_only_reports(l2: L2) -> None:
    proto = l2.live()
    payload = '{"channel":"book","type":"update","data":[{"symbol":"ETH/USD","checksum":1}]}'
    actions = proto.receive_data(payload, NOW)
    assert len(actions) == 1
    (error,) = protocol_errors(actions)
    assert error.error.startswith("invalid book frame: ")
    assert proto.state is ConnectionState.SUBSCRIBED


@pytest.mark.parametrize("qty", ["true", '"abc"', "{}", '"NaN"', "1e999999999"])
def test_book_with_an_unusable_quantity_is_rejected_and_resynced(l2: L2, qty: str) -> None:
    proto = l2.live()
    payload = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],'
        f'"asks":[{{"price":63010.0,"qty":{qty}}}],"checksum":1}}]}}'
    )
    actions = feed_bad(proto, payload)
    (error,) = protocol_errors(actions)
    assert error.error.startswith("unusable number in the BTC/USD book: ")
    assert [e.symbol for e in events_of(actions) if isinstance(e, BookResync)] == ["BTC/USD"]
    assert_keeps_working(proto)


@pytest.mark.parametrize("value", ["true", '"abc"', "null", "[1]", '{"a":1}'])
def test_ticker_with_a_value_that_is_no_number_is_a_protocol_error(l2: L2, value: str) -> None:
    proto = l2.live()
    payload = (
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":63000.0,'
        '"bid_qty":1.5,"ask":63000.1,"ask_qty":2.0,"last":63000.0,"volume":10.0,'
        f'"vwap":62000.0,"low":61000.0,"high":{value},"change":1.0,"change_pct":0.1}}]}}'
    )
    actions = feed_bad(proto, payload)
    (error,) = protocol_errors(actions)
    assert error.error.startswith(
        "Kraken sent an unusable ticker entry: data[0]: Expected a number for `high`"
    )
    assert [
        a for a in actions if isinstance(a, Emit) and not isinstance(a.event, ProtocolError)
    ] == []
    assert_keeps_working(proto)


def test_book_update_without_snapshot_is_a_protocol_error(l2: L2) -> None:
    proto = l2.live()
    payload = (
        '{"channel":"book","type":"update","data":[{"symbol":"ETH/USD","bids":[],'
        '"asks":[{"price":1877.47,"qty":1.00000000}],"checksum":1}]}'
    )
    actions = proto.receive_data(payload, NOW)
    assert actions == [Emit(ProtocolError("book update for ETH/USD without a snapshot", "", NOW))]


def test_valid_frames_after_garbage_are_processed(l2: L2) -> None:
    proto = l2.live()
    for junk in (b"", b"\x00", "{", "null", '{"method":5}', '{"channel":"book","data":7}'):
        assert protocol_errors(proto.receive_data(junk, NOW))
    # the next real update still applies and verifies against the live book
    # the first book message after the prefix (only heartbeats may come before it)
    next_update = next(t for t in l2.after_prefix if t.startswith('{"channel":"book"'))
    assert next_update.startswith('{"channel":"book","type":"update"')
    events = events_of(proto.receive_data(next_update, NOW + 1))
    assert [type(e) for e in events] == [BookUpdate]
    assert_keeps_working(proto, NOW + 2)


# ----------------------------------------------------------------------------- found by fuzzing
# These raised out of receive_data before the core validated ack results and guarded the
# book against NaN and absurd exponents; they stay as regression tests.

BAD_SUCCESS_ACKS = [
    pytest.param(
        '{"method":"subscribe","result":{"channel":"book","symbol":["BTC/USD"]},"success":true}',
        id="symbol-list",
    ),
    pytest.param(
        '{"method":"subscribe","result":{"channel":["book"],"symbol":"BTC/USD"},"success":true}',
        id="channel-list",
    ),
    pytest.param(
        '{"method":"subscribe","result":{"channel":"book","depth":"x","symbol":"ETH/USD"},'
        '"success":true}',
        id="depth-string",
    ),
    pytest.param(
        '{"method":"subscribe","result":{"channel":"book","depth":-5,"symbol":"ETH/USD"},'
        '"success":true}',
        id="depth-negative",
    ),
    pytest.param('{"method":"subscribe","result":[1],"success":true}', id="result-list"),
    pytest.param('{"method":"unsubscribe","success":true}', id="no-result"),
]


@pytest.mark.parametrize("payload", BAD_SUCCESS_ACKS)
def test_success_ack_with_malformed_result_is_a_protocol_error(l2: L2, payload: str) -> None:
    proto = l2.live()
    actions = proto.receive_data(payload, NOW)
    errors = protocol_errors(actions)
    assert len(errors) == 1
    assert "ack" in errors[0].error
    assert [e for e in events_of(actions) if not isinstance(e, ProtocolError)] == []
    book = proto.book("BTC/USD")
    assert book is not None
    assert book.is_live  # the live subscription was not touched
    assert proto.book("ETH/USD") is None  # nothing was adopted from a bad ack
    assert_keeps_working(proto)


def test_error_response_with_malformed_result_is_still_a_failure(l2: L2) -> None:
    proto = l2.live()
    payload = (
        '{"error":"x","method":"subscribe","result":{"channel":"book","symbol":{"a":1}},'
        '"success":false}'
    )
    events = events_of(proto.receive_data(payload, NOW))
    failed = [e for e in events if isinstance(e, SubscriptionFailed)]
    assert [(f.error, f.received_at) for f in failed] == [("x", NOW)]
    book = proto.book("BTC/USD")
    assert book is not None
    assert book.is_live
    assert_keeps_working(proto)


@pytest.mark.parametrize(
    ("kind", "symbol", "price"),
    [
        ("update", "BTC/USD", '"NaN"'),
        ("update", "BTC/USD", '"sNaN"'),
        ("update", "BTC/USD", "1e999999999999999999"),
        ("update", "BTC/USD", '"-Infinity"'),
        ("snapshot", "ETH/USD", '"NaN"'),
        ("snapshot", "ETH/USD", "1e100000000"),
        # book numbers are decoded as raw tokens: the book itself refuses what is no number
        ("update", "BTC/USD", "true"),
        ("update", "BTC/USD", '"abc"'),
        ("update", "BTC/USD", "[1.0]"),
        ("snapshot", "ETH/USD", "{}"),
        ("snapshot", "ETH/USD", "null"),
    ],
)
def test_book_with_unusable_numbers_is_rejected_and_resynced(
    l2: L2, kind: str, symbol: str, price: str
) -> None:
    proto = l2.live()
    payload = (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
        f'"bids":[{{"price":{price},"qty":1.0}},{{"price":2.0,"qty":1.0}}],"asks":[],'
        '"checksum":1}]}'
    )
    actions = feed_bad(proto, payload)
    events = events_of(actions)
    assert protocol_errors(actions) or any(isinstance(e, BookResync) for e in events)
    assert [e.symbol for e in events if isinstance(e, BookResync)] == [symbol]
    assert not [e for e in events if isinstance(e, BookUpdate)]
    book = proto.book(symbol)
    assert book is not None
    assert not book.is_live
    assert_keeps_working(proto)


@pytest.mark.parametrize("precision", [19, -1])
def test_instrument_with_out_of_range_precision_is_a_protocol_error(l2: L2, precision: int) -> None:
    proto = l2.live()
    payload = (
        '{"channel":"instrument","type":"update","data":{"pairs":[{"symbol":"BTC/USD",'
        '"base":"BTC","quote":"USD","status":"online","qty_precision":8,'
        f'"price_precision":{precision}}}]}}}}'
    )
    actions = proto.receive_data(payload, NOW)
    assert protocol_errors(actions)
    assert_keeps_working(proto)


@pytest.mark.parametrize(
    "payload",
    ["[" * 1000, '{"a":' * 1000, '{"method":"subscribe","result":' + "[" * 1000],
    ids=["array", "object", "in-response"],
)
def test_deeply_nested_json_is_a_protocol_error(l2: L2, payload: str) -> None:
    proto = l2.live()
    assert protocol_errors(proto.receive_data(payload, NOW))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":"\x80"}',
        b'"\x80"',
        b'{"channel":"\x80"}',
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD\xc3"}]}',
    ],
    ids=["value", "top-level-string", "channel", "book-symbol"],
)
def test_invalid_utf8_bytes_are_a_protocol_error(l2: L2, payload: bytes) -> None:
    proto = l2.live()
    assert protocol_errors(proto.receive_data(payload, NOW))
    assert_keeps_working(proto)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
)
@given(data=st.data())
def test_flipped_bytes_never_raise(l2: L2, data: st.DataObject) -> None:
    proto = l2.live()
    payload = data.draw(mutated_frames(l2.frames, kinds=("flip",), max_byte=0xFF))
    feed_bad(proto, payload)
    assert_keeps_working(proto)


def test_lone_surrogate_in_text_is_a_protocol_error(l2: L2) -> None:
    proto = l2.live()
    assert protocol_errors(proto.receive_data('{"channel":"\ud800"}', NOW))


def test_max_message_size_counts_utf8_bytes_of_text() -> None:
    proto = KrakenProtocol(ClientConfig(ping_interval=None, max_message_size=1024))
    proto.connect(0.0)
    proto.connection_made(0.0)
    payload = '{"channel":"heartbeat","pad":"' + "\u20ac" * 400 + '"}'
    assert len(payload) < 1024 < len(payload.encode())
    errors = protocol_errors(proto.receive_data(payload, 1.0))
    assert errors
    assert "max_message_size" in errors[0].error


response_shaped = st.fixed_dictionaries(
    {"method": st.sampled_from(["subscribe", "unsubscribe", "pong", "add_order"])},
    optional={
        "success": json_scalars,
        "req_id": st.integers(-2, 5) | json_scalars,
        "error": json_scalars,
        "symbol": json_scalars,
        "result": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "channel": st.sampled_from(["book", "ticker", "instrument"]) | json_values,
                "symbol": st.sampled_from(["BTC/USD", "ETH/USD"]) | json_values,
                "depth": st.sampled_from([10, 25]) | json_values,
            },
        ),
    },
)


@FUZZ
@given(value=response_shaped)
def test_response_shaped_json_never_raises(l2: L2, value: dict[str, Any]) -> None:
    proto = l2.live()
    feed_bad(proto, json.dumps(value))
    assert_keeps_working(proto)


# ----------------------------------------------------------------------------- numbers

# Issue 9, item 6: every number an event carries is finite, below 1E+256 and of the sign
# Kraken's has; an entry breaking that is one ProtocolError naming its field, and the
# message's other entries are still delivered.

POSITIVE, NON_NEGATIVE, SIGNED = "positive", "non-negative", "signed"
GOOD_ENTRIES: dict[str, dict[str, str]] = {
    "trade": {
        "side": '"buy"',
        "price": "83744.3",
        "qty": "0.00044780",
        "ord_type": '"limit"',
        "trade_id": "109116693",
        "timestamp": '"2026-09-25T17:48:26.844359Z"',
    },
    "ticker": {
        "bid": "0.10025",
        "bid_qty": "740.0",
        "ask": "0.10036",
        "ask_qty": "1361.44813783",
        "last": "0.10035",
        "volume": "997038.98383185",
        "vwap": "0.10148",
        "low": "0.09979",
        "high": "0.10285",
        "change": "-0.00017",
        "change_pct": "-0.17",
        "timestamp": '"2023-09-25T09:04:31.742648Z"',
        "trades": "135262",
    },
    "ohlc": {
        "open": "83729.5",
        "high": "83745.2",
        "low": "83729.4",
        "close": "83744.3",
        "trades": "33",
        "volume": "0.21155628",
        "vwap": "83736.4",
        "interval_begin": '"2026-09-25T17:48:00.000000000Z"',
        "interval": "1",
        "timestamp": '"2026-09-25T17:49:00.000000Z"',
    },
}
DECIMAL_FIELDS: dict[str, dict[str, str]] = {
    "trade": {"price": POSITIVE, "qty": POSITIVE},
    "ticker": {
        **dict.fromkeys(
            ["bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap", "low", "high"],
            NON_NEGATIVE,
        ),
        "change": SIGNED,
        "change_pct": SIGNED,
    },
    "ohlc": {
        **dict.fromkeys(["open", "high", "low", "close"], POSITIVE),
        "volume": NON_NEGATIVE,
        "vwap": NON_NEGATIVE,
    },
}
INT_FIELDS: dict[str, dict[str, int]] = {  # the smallest value allowed
    "trade": {"trade_id": 0},
    "ticker": {"trades": 0},
    "ohlc": {"trades": 0, "interval": 1},
}
NOT_FINITE = ['"NaN"', '"-NaN"', '"nan"', '"sNaN"', '"Infinity"', '"-Infinity"', '"inf"']
OUT_OF_RANGE = [
    "1e256",
    "-1E+256",
    '"1e999999"',
    "9.5e299",
    "1" + "0" * 256,
    '"-1' + "0" * 300 + '"',
]
ZEROS = ["0", "0.0", '"0"', "-0", "0e3", "0.00000000", "-0.0"]


def quoted_or_not(token: str) -> st.SearchStrategy[str]:
    return st.sampled_from([token, f'"{token}"'])


negative_numbers = st.decimals(
    min_value=Decimal("1e-12"), max_value=Decimal("1e30"), allow_nan=False, places=None
).flatmap(lambda d: quoted_or_not("-" + format(d, "f")))


def bad_tokens(sign: str) -> st.SearchStrategy[str]:
    """Number tokens that break ``sign``'s rule (always: not finite or out of range)."""
    bad = st.sampled_from(NOT_FINITE + OUT_OF_RANGE)
    if sign != SIGNED:
        bad = bad | negative_numbers
    if sign == POSITIVE:
        bad = bad | st.sampled_from(ZEROS)
    return bad


def render(channel: str, entries: list[dict[str, str]]) -> str:
    data = ",".join("{" + ",".join(f'"{k}":{v}' for k, v in e.items()) + "}" for e in entries)
    extra = ',"timestamp":"2026-09-25T17:48:26.844359566Z"' if channel == "ohlc" else ""
    return f'{{"channel":"{channel}","type":"update","data":[{data}]{extra}}}'


@st.composite
def frames_with_one_bad_number(draw: st.DrawFn) -> tuple[str, str, int, str, str]:
    """A trade, ticker or ohlc frame of 1-4 entries (symbols S0/USD, S1/USD...) where one
    number of one entry is bad: (channel, field, index, bad token, frame)."""
    channel = draw(st.sampled_from(sorted(GOOD_ENTRIES)))
    count = draw(st.integers(1, 4))
    index = draw(st.integers(0, count - 1))
    field = draw(st.sampled_from(sorted(DECIMAL_FIELDS[channel]) + sorted(INT_FIELDS[channel])))
    if field in DECIMAL_FIELDS[channel]:
        token = draw(bad_tokens(DECIMAL_FIELDS[channel][field]))
    else:
        token = str(draw(st.integers(-(2**40), INT_FIELDS[channel][field] - 1)))
    entries = [{"symbol": f'"S{n}/USD"', **GOOD_ENTRIES[channel]} for n in range(count)]
    entries[index][field] = token
    return channel, field, index, token, render(channel, entries)


def fresh_protocol() -> KrakenProtocol:
    proto = KrakenProtocol(ClientConfig(ping_interval=None))
    proto.connect(0.0)
    proto.connection_made(0.0)
    return proto


@settings(max_examples=300, deadline=None)
@given(case=frames_with_one_bad_number())
def test_a_bad_number_costs_its_entry_alone(case: tuple[str, str, int, str, str]) -> None:
    channel, field, index, _token, payload = case
    proto = fresh_protocol()
    actions = feed_bad(proto, payload)
    (error,) = protocol_errors(actions)
    assert error.error.startswith(f"Kraken sent an unusable {channel} entry: ")
    if field in DECIMAL_FIELDS[channel]:
        assert f"{channel}.{field}: " in error.error
    else:
        assert f"data[{index}]: " in error.error and f"`$.{field}`" in error.error
    assert error.error.endswith("the message's other entries are delivered")
    delivered = [e for e in events_of(actions) if not isinstance(e, ProtocolError)]
    count = payload.count('"symbol"')
    assert [e.symbol for e in delivered] == [f"S{n}/USD" for n in range(count) if n != index]
    assert all(e.received_at == NOW for e in delivered)


@settings(max_examples=100, deadline=None)
@given(
    channel=st.sampled_from(sorted(GOOD_ENTRIES)),
    data=st.data(),
)
def test_numbers_at_the_edges_of_their_rules_are_delivered(
    channel: str, data: st.DataObject
) -> None:
    """Zero where zero is allowed, tiny and large-but-below-1E+256 numbers, negative signed
    ones, quoted and exponent forms: all delivered, exact."""
    entry = dict(GOOD_ENTRIES[channel], symbol='"S0/USD"')
    field = data.draw(st.sampled_from(sorted(DECIMAL_FIELDS[channel])))
    sign = DECIMAL_FIELDS[channel][field]
    good = ["1e-30", '"0.00000001"', "9.99e255", "9" * 256, "1E+3"]
    if sign != POSITIVE:
        good += ZEROS
    if sign == SIGNED:
        good += ["-5.5", '"-0.17"', "-9.99e255", "-" + "9" * 256]
    token = data.draw(st.sampled_from(good))
    entry[field] = token
    actions = fresh_protocol().receive_data(render(channel, [entry]), NOW)
    (event,) = events_of(actions)
    assert getattr(event, field) == Decimal(token.strip('"'))


def test_bare_nan_is_no_json_and_loses_the_frame() -> None:
    """msgspec refuses bare NaN/Infinity tokens (they are not JSON): the whole frame is one
    malformed-JSON ProtocolError; quoted ones are numbers to msgspec, caught per entry."""
    entries = [{"symbol": '"S0/USD"', **GOOD_ENTRIES["trade"]}] * 2
    for token in ("NaN", "Infinity", "-Infinity"):
        bad = [entries[0], dict(entries[1], qty=token)]
        actions = fresh_protocol().receive_data(render("trade", bad), NOW)
        (error,) = protocol_errors(actions)
        assert error.error.startswith("malformed JSON")
        assert len(events_of(actions)) == 1


def test_numbers_are_checked_whatever_the_decimal_context_traps() -> None:
    """With InvalidOperation untrapped, comparing a NaN gives False instead of raising: the
    check must catch it all the same (and never raise when it is trapped)."""
    payload = render("trade", [dict(GOOD_ENTRIES["trade"], symbol='"S0/USD"', qty='"NaN"')])
    for trapped in (False, True):
        with localcontext() as context:
            context.traps[InvalidOperation] = trapped
            (error,) = protocol_errors(fresh_protocol().receive_data(payload, NOW))
        assert "trade.qty: 'NaN' is not a finite positive number" in error.error


def test_a_huge_bad_number_is_shown_short() -> None:
    entry = dict(GOOD_ENTRIES["ohlc"], symbol='"S0/USD"', volume="1" + "0" * 5000)
    (error,) = protocol_errors(fresh_protocol().receive_data(render("ohlc", [entry]), NOW))
    assert "ohlc.volume: '100000000000000000000000000000000000...' is out of range" in error.error
    assert len(error.error) < 300 and len(error.payload) <= 200
