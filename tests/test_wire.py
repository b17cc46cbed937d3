"""Tests for kraken_proto.wire: every v2 frame shape decodes to exact values.

Shapes and quirks follow KRAKEN-V2.md sections 2-6: padded book numbers, exponent forms,
quoted numbers, a ``connection_id`` above 2**63, optional fields, extra fields, and the
error responses of section 4. Real captures are decoded too.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kraken_proto.actions import Emit, Send
from kraken_proto.config import ClientConfig
from kraken_proto.events import (
    OHLC,
    BookLevel,
    BookUpdate,
    InstrumentAsset,
    InstrumentPair,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    Ticker,
    Trade,
    Unsubscribed,
    parse_timestamp,
)
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.wire import (
    AckResult,
    BookFrame,
    HeartbeatFrame,
    InstrumentFrame,
    OHLCFrame,
    Response,
    StatusEntry,
    StatusFrame,
    TickerFrame,
    TradeFrame,
    ack_result,
    decode_data_frame,
    decode_generic,
    decode_response,
    encode_request,
)

D = Decimal
TIME_IN = "2025-12-20T07:39:28.809188Z"
TIME_OUT = "2025-12-20T07:39:28.809200Z"


def lvl(price: str, qty: str) -> BookLevel:
    return BookLevel.of(price, qty)


def fmt(value: Decimal) -> str:
    return format(value, "f")


# ----------------------------------------------------------------------------- ticker

TICKER_ENTRY = (
    '{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,'
    '"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,'
    '"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17EXTRA}'
)


def ticker_frame(extra: str, kind: str = "snapshot") -> str:
    entry = TICKER_ENTRY.replace("EXTRA", extra)
    return '{"channel":"ticker","type":"' + kind + '","data":[' + entry + "]}"


def test_ticker_with_timestamp_decodes_exact_decimals() -> None:
    frame = decode_data_frame(ticker_frame(',"timestamp":"2023-09-25T09:04:31.742648Z"'))
    assert isinstance(frame, TickerFrame)
    assert frame.type == "snapshot"
    assert frame.data == (
        Ticker.of(
            symbol="ALGO/USD",
            bid=D("0.10025"),
            bid_qty=D("740.0"),
            ask=D("0.10036"),
            ask_qty=D("1361.44813783"),
            last=D("0.10035"),
            volume=D("997038.98383185"),
            vwap=D("0.10148"),
            low=D("0.09979"),
            high=D("0.10285"),
            change=D("-0.00017"),
            change_pct=D("-0.17"),
            timestamp="2023-09-25T09:04:31.742648Z",
            trades=None,
            received_at=0.0,
        ),
    )
    ticker = frame.data[0]
    assert all(isinstance(getattr(ticker, f), Decimal) for f in ("bid", "ask", "volume"))
    # the digits of the wire token are kept (no float round trip)
    assert str(ticker.bid_qty) == "740.0"
    assert str(ticker.ask_qty) == "1361.44813783"


def test_ticker_without_timestamp_and_with_trades_field() -> None:
    frame = decode_data_frame(ticker_frame(',"trades":135262', kind="update"))
    assert isinstance(frame, TickerFrame)
    assert frame.type == "update"
    (ticker,) = frame.data
    assert ticker.timestamp is None
    assert ticker.trades == 135262
    assert ticker.change_pct == D("-0.17")


def test_ticker_with_quoted_numbers_accepted_as_decimal() -> None:
    text = (
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":"63000.0",'
        '"bid_qty":"0.00005100","ask":63000.1,"ask_qty":"1.5","last":"63000.0",'
        '"volume":"12.5","vwap":"62999.9","low":"62000","high":"64000.00","change":"-1.5",'
        '"change_pct":"-0.01"}]}'
    )
    (ticker,) = decode_data_frame(text).data  # type: ignore[union-attr]
    assert isinstance(ticker, Ticker)
    assert ticker.bid == D("63000.0")
    assert isinstance(ticker.bid, Decimal)
    assert fmt(ticker.bid_qty) == "0.00005100"
    assert ticker.ask == D("63000.1")
    assert str(ticker.high) == "64000.00"
    assert ticker.change == D("-1.5")


# ----------------------------------------------------------------------------- trade


def test_trade_frame_with_several_trades_keeps_wire_order() -> None:
    text = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":0.00044780,"ord_type":"limit",'
        '"trade_id":109116693,"timestamp":"2026-09-25T17:48:26.844359Z"},'
        '{"symbol":"BTC/USD","side":"sell","price":83744.2,"qty":5.1e-05,"ord_type":"market",'
        '"trade_id":109116694,"timestamp":"2026-09-25T17:48:26.844360Z"},'
        '{"symbol":"BTC/USD","side":"sell","price":83740.0,"qty":1.25E+2,"ord_type":"market",'
        '"trade_id":109116695,"timestamp":"2026-09-25T17:48:26.844361Z","future_field":[1]}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, TradeFrame)
    assert frame.data == (
        Trade(
            "BTC/USD",
            "buy",
            D("83744.3"),
            D("0.00044780"),
            "limit",
            109116693,
            "2026-09-25T17:48:26.844359Z",
        ),
        Trade(
            "BTC/USD",
            "sell",
            D("83744.2"),
            D("0.000051"),
            "market",
            109116694,
            "2026-09-25T17:48:26.844360Z",
        ),
        Trade(
            "BTC/USD",
            "sell",
            D("83740.0"),
            D("125"),
            "market",
            109116695,
            "2026-09-25T17:48:26.844361Z",
        ),
    )
    assert [t.trade_id for t in frame.data] == [109116693, 109116694, 109116695]
    # exponent notation becomes an exact Decimal, written positionally by format()
    assert frame.data[1].qty == D("0.000051")
    assert fmt(frame.data[1].qty) == "0.000051"
    assert fmt(frame.data[0].qty) == "0.00044780"


def test_trade_rejects_a_bool_quantity() -> None:
    text = (
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
        '"price":1.0,"qty":true,"ord_type":"limit","trade_id":1,"timestamp":"t"}]}'
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\[0\]\.qty"):
        decode_data_frame(text)


# ----------------------------------------------------------------------------- book


def test_book_update_keeps_padded_digits_and_deletes() -> None:
    text = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",'
        '"bids":[{"price":63000.0,"qty":0.00005100},{"price":63003.3,"qty":0.00000000}],'
        '"asks":[{"price":63005.9,"qty":0.00000000},{"price":63008.6,"qty":0.00039677}],'
        '"checksum":3629011692,"timestamp":"2026-08-01T02:53:53.398143Z"}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, BookFrame)
    assert frame.type == "update"
    (update,) = frame.data
    assert update == BookUpdate(
        symbol="BTC/USD",
        bids=(lvl("63000.0", "0.00005100"), lvl("63003.3", "0")),
        asks=(lvl("63005.9", "0"), lvl("63008.6", "0.00039677")),
        checksum=3629011692,
        timestamp="2026-08-01T02:53:53.398143Z",
        snapshot=False,
        received_at=0.0,
    )
    assert fmt(update.bids[0].qty) == "0.00005100"
    assert fmt(update.bids[0].price) == "63000.0"
    assert fmt(update.bids[1].qty) == "0.00000000"
    assert update.bids[1].qty == 0
    assert fmt(update.asks[0].qty) == "0.00000000"
    assert fmt(update.asks[1].qty) == "0.00039677"


def test_book_snapshot_without_timestamp_with_an_empty_side() -> None:
    text = (
        '{"channel":"book","type":"snapshot","data":[{"symbol":"XRP/USD",'
        '"bids":[{"price":1.08100,"qty":2819.16582633},{"price":1.08099,"qty":4969.42958980}],'
        '"asks":[],"checksum":12345}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, BookFrame)
    assert frame.type == "snapshot"
    (snap,) = frame.data
    assert snap.timestamp is None
    assert snap.asks == ()
    assert snap.bids == (lvl("1.08100", "2819.16582633"), lvl("1.08099", "4969.42958980"))
    assert [fmt(b.price) for b in snap.bids] == ["1.08100", "1.08099"]
    assert fmt(snap.bids[1].qty) == "4969.42958980"
    assert snap.checksum == 12345
    # the decoder never sets the protocol-owned fields
    assert snap.snapshot is False
    assert snap.received_at == 0.0


def test_book_quoted_numbers_and_extra_fields_tolerated() -> None:
    text = (
        '{"channel":"book","type":"update","sequence":7,"data":[{"symbol":"BTC/USD",'
        '"bids":[{"price":"63000.0","qty":"0.00005100","extra":1}],"asks":[],'
        '"checksum":1,"timestamp":"2026-08-01T02:53:53.398143Z","new":{"a":[1]}}]}'
    )
    (update,) = decode_data_frame(text).data  # type: ignore[union-attr]
    assert isinstance(update, BookUpdate)
    assert update.bids == (lvl("63000.0", "0.00005100"),)
    assert fmt(update.bids[0].qty) == "0.00005100"


def test_book_level_missing_qty_is_rejected() -> None:
    text = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",'
        '"bids":[{"price":63000.0}],"asks":[],"checksum":1}]}'
    )
    with pytest.raises(msgspec.ValidationError, match="qty"):
        decode_data_frame(text)


# ----------------------------------------------------------------------------- ohlc

OHLC_TEXT = (
    '{"channel":"ohlc","type":"update","timestamp":"2026-09-25T17:48:26.844359566Z",'
    '"data":[{"symbol":"BTC/USD","open":83729.5,"high":83745.2,"low":83729.4,'
    '"close":83744.3,"trades":33,"volume":0.21155628,"vwap":83736.4,'
    '"interval_begin":"2026-09-25T17:48:00.000000000Z","interval":1,'
    '"timestamp":"2026-09-25T17:49:00.000000Z"}]}'
)


def test_ohlc_frame_with_nanosecond_frame_timestamp() -> None:
    frame = decode_data_frame(OHLC_TEXT)
    assert isinstance(frame, OHLCFrame)
    assert frame.type == "update"
    assert frame.timestamp == "2026-09-25T17:48:26.844359566Z"
    assert frame.data == (
        OHLC(
            symbol="BTC/USD",
            open=D("83729.5"),
            high=D("83745.2"),
            low=D("83729.4"),
            close=D("83744.3"),
            trades=33,
            volume=D("0.21155628"),
            vwap=D("83736.4"),
            interval_begin="2026-09-25T17:48:00.000000000Z",
            interval=1,
            timestamp="2026-09-25T17:49:00.000000Z",
        ),
    )
    assert fmt(frame.data[0].volume) == "0.21155628"
    assert parse_timestamp(frame.data[0].interval_begin) == datetime(
        2026, 9, 25, 17, 48, tzinfo=timezone.utc
    )


def test_ohlc_candle_without_deprecated_timestamp_and_frame_without_timestamp() -> None:
    text = (
        '{"channel":"ohlc","type":"snapshot","data":[{"symbol":"ETH/USD","open":"1877.29",'
        '"high":1877.50,"low":1876.00,"close":1877.01,"trades":2,"volume":3.5e-3,'
        '"vwap":1877.2,"interval_begin":"2026-09-25T17:45:00.000000000Z","interval":5}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, OHLCFrame)
    assert frame.timestamp is None
    (candle,) = frame.data
    assert candle.timestamp is None
    assert candle.volume == D("0.0035")
    assert candle.open == D("1877.29")
    assert str(candle.high) == "1877.50"
    assert candle.interval == 5


# ----------------------------------------------------------------------------- instrument

INSTRUMENT_TEXT = (
    '{"channel":"instrument","type":"snapshot","data":{"assets":['
    '{"id":"BTC","status":"enabled","precision":10,"precision_display":5,"borrowable":true,'
    '"collateral_value":1.0,"margin_rate":0.01,"new_asset_field":"x"},'
    '{"id":"AAPLx","status":"enabled","precision":8,"multiplier":1.5e0}],'
    '"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online",'
    '"qty_precision":8,"qty_increment":1e-08,"price_precision":1,"cost_precision":5,'
    '"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.2,'
    '"position_limit_long":250,"position_limit_short":200,"tick_size":0.1,'
    '"price_increment":0.1,"qty_min":0.0001}]},"extra_top":true}'
)


def test_instrument_data_is_an_object_with_exact_values() -> None:
    frame = decode_data_frame(INSTRUMENT_TEXT)
    assert isinstance(frame, InstrumentFrame)
    assert frame.type == "snapshot"
    assert frame.data.assets == (
        InstrumentAsset("BTC", "enabled", 10, 5, True, D("1.0"), D("0.01")),
        InstrumentAsset("AAPLx", "enabled", 8, multiplier=D("1.5")),
    )
    (pair,) = frame.data.pairs
    assert pair == InstrumentPair(
        symbol="BTC/USD",
        base="BTC",
        quote="USD",
        status="online",
        qty_precision=8,
        price_precision=1,
        qty_increment=D("0.00000001"),
        qty_min=D("0.0001"),
        price_increment=D("0.1"),
        cost_precision=5,
        cost_min=D("0.5"),
        marginable=True,
        has_index=True,
        margin_initial=D("0.2"),
        position_limit_long=250,
        position_limit_short=200,
        tick_size=D("0.1"),
    )
    assert fmt(pair.qty_increment) == "0.00000001"  # type: ignore[arg-type]


def test_instrument_update_with_only_pairs_and_quoted_cost_min() -> None:
    text = (
        '{"channel":"instrument","type":"update","data":{"pairs":[{"symbol":"MATIC/ETH",'
        '"base":"MATIC","quote":"ETH","status":"limit_only","qty_precision":8,'
        '"price_precision":7,"cost_min":"0.00001"}]}}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, InstrumentFrame)
    assert frame.data.assets == ()
    (pair,) = frame.data.pairs
    assert (pair.symbol, pair.status, pair.price_precision, pair.qty_precision) == (
        "MATIC/ETH",
        "limit_only",
        7,
        8,
    )
    assert pair.cost_min == D("0.00001")
    assert pair.qty_increment is None


def test_instrument_data_as_a_list_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.data"):
        decode_data_frame('{"channel":"instrument","type":"snapshot","data":[]}')


# ----------------------------------------------------------------------------- status, heartbeat


def test_status_connection_id_above_2_63_is_exact() -> None:
    text = (
        '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online",'
        '"api_version":"v2","connection_id":18125794168470749634}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, StatusFrame)
    assert frame.data == (StatusEntry("online", "2.0.10", "v2", 18125794168470749634),)
    assert frame.data[0].connection_id == 18125794168470749634
    assert frame.data[0].connection_id > 2**63


def test_status_with_maintenance_fields_and_minimal_entry() -> None:
    text = (
        '{"channel":"status","type":"update","data":[{"version":"2.0.10",'
        '"system":"maintenance","api_version":"v2","connection_id":7204881492680171915,'
        '"upcoming_maintenance":[{"start":"2026-10-01T00:00:00Z"}],"emergency":[]}]}'
    )
    frame = decode_data_frame(text)
    assert isinstance(frame, StatusFrame)
    assert frame.data == (StatusEntry("maintenance", "2.0.10", "v2", 7204881492680171915),)
    minimal = decode_data_frame(
        '{"channel":"status","type":"update","data":[{"system":"cancel_only"}]}'
    )
    assert minimal == StatusFrame("update", (StatusEntry("cancel_only"),))


def test_heartbeat_and_heartbeat_with_extra_fields() -> None:
    assert decode_data_frame('{"channel":"heartbeat"}') == HeartbeatFrame()
    assert decode_data_frame(b'{"channel":"heartbeat","type":"x","n":1}') == HeartbeatFrame()


# ----------------------------------------------------------------------------- rejection


@pytest.mark.parametrize(
    "text",
    [
        '{"channel":"level4","type":"update","data":[]}',
        '{"channel":"executions","type":"update","data":[]}',
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,'
        '"symbol":"BTC/USD"},"success":true,"time_in":"a","time_out":"b"}',
        '{"method":"pong","req_id":1}',
        '{"Error":"Exceeded msg rate"}',
        "[]",
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],'
        '"checksum":"abc"}]}',
        '{"channel":"book"',
    ],
    ids=[
        "unknown-channel",
        "private-channel",
        "ack",
        "pong",
        "rate-error",
        "array",
        "bad-checksum",
        "truncated",
    ],
)
def test_decode_data_frame_rejects_what_is_not_a_known_data_frame(text: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_data_frame(text)


def test_unknown_channel_error_names_the_channel() -> None:
    with pytest.raises(msgspec.DecodeError, match="level4"):
        decode_data_frame('{"channel":"level4","type":"update","data":[]}')


# ----------------------------------------------------------------------------- responses

ACK_RESULTS: list[tuple[str, dict[str, Any]]] = [
    ("subscribe", {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"}),
    ("unsubscribe", {"channel": "book", "depth": 10, "symbol": "BTC/USD"}),
    (
        "subscribe",
        {"channel": "ticker", "event_trigger": "trades", "snapshot": True, "symbol": "BTC/USD"},
    ),
    ("unsubscribe", {"channel": "ticker", "event_trigger": "bbo", "symbol": "BTC/USD"}),
    ("subscribe", {"channel": "trade", "snapshot": False, "symbol": "BTC/USD"}),
    ("unsubscribe", {"channel": "trade", "symbol": "BTC/USD"}),
    (
        "subscribe",
        {
            "channel": "ohlc",
            "interval": 1,
            "snapshot": True,
            "symbol": "BTC/USD",
            "warnings": ["timestamp is deprecated, use interval_begin"],
        },
    ),
    (
        "subscribe",
        {
            "channel": "instrument",
            "snapshot": True,
            "warnings": ["tick_size is deprecated, use price_increment"],
        },
    ),
    (
        "subscribe",
        {
            "channel": "executions",
            "maxratecount": 125,
            "snap_orders": True,
            "snap_trades": False,
            "snapshot": True,
            "warnings": ["cancel_reason is deprecated, use reason"],
        },
    ),
    ("subscribe", {"channel": "balances", "snapshot": True}),
]


@pytest.mark.parametrize(("method", "result"), ACK_RESULTS)
@pytest.mark.parametrize("req_id", [None, 7])
def test_ack_per_channel_decodes_with_result_as_sent(
    method: str, result: dict[str, Any], req_id: int | None
) -> None:
    frame: dict[str, Any] = {"method": method}
    if req_id is not None:
        frame["req_id"] = req_id
    frame.update(result=result, success=True, time_in=TIME_IN, time_out=TIME_OUT)
    response = decode_response(json.dumps(frame))
    assert response == Response(
        method=method,
        success=True,
        req_id=req_id,
        result=result,
        error=None,
        symbol=None,
        channel=None,
        time_in=TIME_IN,
        time_out=TIME_OUT,
    )
    assert type(response.result) is dict


@pytest.mark.parametrize(("method", "result"), ACK_RESULTS)
def test_ack_result_of_every_channel_is_accepted(method: str, result: dict[str, Any]) -> None:
    ack = ack_result(result)
    assert ack == AckResult(
        channel=result["channel"],
        symbol=result.get("symbol"),
        depth=result.get("depth"),
        interval=result.get("interval"),
        snapshot=result.get("snapshot"),
        event_trigger=result.get("event_trigger"),
    )


@pytest.mark.parametrize(
    "result",
    [
        None,
        [1],
        {},
        {"channel": ["book"]},
        {"channel": "book", "symbol": ["BTC/USD"]},
        {"channel": "book", "symbol": "BTC/USD", "depth": "10"},
        {"channel": "book", "symbol": "BTC/USD", "depth": 0},
        {"channel": "book", "symbol": "BTC/USD", "depth": 1001},
        {"channel": "ohlc", "symbol": "BTC/USD", "interval": 0},
        {"channel": "ticker", "symbol": "BTC/USD", "snapshot": "yes"},
    ],
)
def test_ack_result_rejects_what_the_core_cannot_use(result: object) -> None:
    with pytest.raises(msgspec.ValidationError):
        ack_result(result)


def test_batch_add_result_array_is_kept() -> None:
    text = (
        '{"method":"batch_add","req_id":3,"result":[{"order_id":"A"},{"order_id":"B"}],'
        '"success":true}'
    )
    response = decode_response(text)
    assert response.result == [{"order_id": "A"}, {"order_id": "B"}]
    assert response.success is True


ERROR_SHAPES: list[tuple[str, dict[str, Any]]] = [
    (
        '{"error":"Already subscribed","method":"subscribe","req_id":2,"success":false,'
        f'"symbol":"BTC/USD","time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "Already subscribed",
            "method": "subscribe",
            "req_id": 2,
            "symbol": "BTC/USD",
            "channel": None,
        },
    ),
    (
        '{"error":"Subscription Not Found","method":"subscribe","req_id":4,"success":false,'
        f'"symbol":"BTC/USD","time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "Subscription Not Found",
            "method": "subscribe",
            "req_id": 4,
            "symbol": "BTC/USD",
            "channel": None,
        },
    ),
    (
        '{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,'
        f'"symbol":"XBT/USD","time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "Currency pair not supported XBT/USD",
            "method": "subscribe",
            "req_id": None,
            "symbol": "XBT/USD",
            "channel": None,
        },
    ),
    (
        '{"error":"Subscription name invalid","method":"subscribe","req_id":5,"success":false,'
        f'"time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "Subscription name invalid",
            "method": "subscribe",
            "req_id": 5,
            "symbol": None,
            "channel": None,
        },
    ),
    (
        '{"error":"Symbol(s) not found","method":"subscribe","req_id":6,"success":false,'
        f'"time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "Symbol(s) not found",
            "method": "subscribe",
            "req_id": 6,
            "symbol": None,
            "channel": None,
        },
    ),
    (
        '{"channel":"executions","error":"ESession:Invalid session","method":"subscribe",'
        f'"status":"error","success":false,"time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}',
        {
            "error": "ESession:Invalid session",
            "method": "subscribe",
            "req_id": None,
            "symbol": None,
            "channel": "executions",
        },
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERROR_SHAPES)
def test_error_response_shapes(text: str, expected: dict[str, Any]) -> None:
    response = decode_response(text)
    assert response.success is False
    assert response.result is None
    assert response.time_in == TIME_IN
    assert response.time_out == TIME_OUT
    got = {k: getattr(response, k) for k in expected}
    assert got == expected


def test_pong_has_no_success_or_result() -> None:
    text = (
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
        '"time_out":"2023-09-24T14:10:23.799703Z"}'
    )
    assert decode_response(text) == Response(
        method="pong",
        req_id=101,
        time_in="2023-09-24T14:10:23.799685Z",
        time_out="2023-09-24T14:10:23.799703Z",
    )
    response = decode_response(text)
    assert response.success is None
    assert response.result is None
    assert response.error is None


@pytest.mark.parametrize(
    ("token", "expected"),
    [("true", True), ("false", False), ('"true"', "true"), ("1", 1), ("null", None)],
)
def test_success_is_kept_as_given(token: str, expected: object) -> None:
    response = decode_response('{"method":"subscribe","success":' + token + ',"req_id":1}')
    assert response.success == expected
    assert type(response.success) is type(expected)


def test_success_missing_is_none() -> None:
    response = decode_response('{"method":"subscribe","error":"x","req_id":1}')
    assert response.success is None
    assert response.error == "x"


def test_response_unknown_fields_tolerated_and_method_required() -> None:
    response = decode_response('{"method":"unsubscribe","success":true,"zzz":[1,{"a":2}]}')
    assert response.method == "unsubscribe"
    assert response.success is True
    with pytest.raises(msgspec.DecodeError, match="method"):
        decode_response('{"channel":"heartbeat"}')
    with pytest.raises(msgspec.DecodeError):
        decode_response('{"method":"subscribe","error":["EGeneral:Invalid arguments"]}')


def test_decode_generic_returns_plain_python_objects() -> None:
    assert decode_generic('{"Error":"Exceeded msg rate"}') == {"Error": "Exceeded msg rate"}
    assert decode_generic(b"[1,2.5,null]") == [1, 2.5, None]
    assert decode_generic('{"connection_id":18125794168470749634}') == {
        "connection_id": 18125794168470749634
    }
    with pytest.raises(msgspec.DecodeError):
        decode_generic("{")


# ----------------------------------------------------------------------------- protocol side


def subscribed_protocol() -> tuple[KrakenProtocol, list[str]]:
    proto = KrakenProtocol(ClientConfig(ping_interval=None))
    proto.connect(0.0)
    proto.connection_made(0.0)
    call, actions = proto.subscribe("book", ["BTC/USD"], 0.0, depth=10)
    assert call == 1
    sent = [a.text for a in actions if isinstance(a, Send)]
    return proto, sent


@pytest.mark.parametrize(
    "error_text",
    [
        "Already subscribed",
        "Currency pair not supported BTC/USD",
        "Symbol(s) not found",
        "Subscription name invalid",
    ],
)
def test_error_response_to_our_subscribe_becomes_subscription_failed(error_text: str) -> None:
    proto, sent = subscribed_protocol()
    assert sent == [
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":1}'
    ]
    frame = json.dumps(
        {
            "error": error_text,
            "method": "subscribe",
            "req_id": 1,
            "success": False,
            "symbol": "BTC/USD",
            "time_in": TIME_IN,
            "time_out": TIME_OUT,
        }
    )
    events = [a.event for a in proto.receive_data(frame, 1.0) if isinstance(a, Emit)]
    failed = [e for e in events if isinstance(e, SubscriptionFailed)]
    refused = SubscriptionFailed("book", "BTC/USD", error_text, 1, 1.0)
    assert failed == [refused]
    assert [e for e in events if isinstance(e, SubscriptionResult)] == [
        SubscriptionResult(1, "subscribe", "book", (refused,), 1.0)
    ]


def test_subscription_not_found_with_method_subscribe_answers_our_unsubscribe() -> None:
    proto, _ = subscribed_protocol()
    acked = proto.receive_data(
        '{"method":"subscribe","req_id":1,"result":{"channel":"book","depth":10,'
        '"snapshot":true,"symbol":"BTC/USD"},"success":true}',
        0.5,
    )
    assert [type(a.event) for a in acked if isinstance(a, Emit)] == [Subscribed, SubscriptionResult]
    call, actions = proto.unsubscribe("book", "BTC/USD", 1.0)
    sent = [a.text for a in actions if isinstance(a, Send)]
    assert sent == [
        '{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":2}'
    ]
    frame = (
        '{"error":"Subscription Not Found","method":"subscribe","req_id":2,"success":false,'
        f'"symbol":"BTC/USD","time_in":"{TIME_IN}","time_out":"{TIME_OUT}"}}'
    )
    events = [a.event for a in proto.receive_data(frame, 2.0) if isinstance(a, Emit)]
    unsubscribed = Unsubscribed("book", "BTC/USD", 2, 2.0)
    assert events == [
        unsubscribed,
        SubscriptionResult(call, "unsubscribe", "book", (unsubscribed,), 2.0),
    ]
    assert proto.book("BTC/USD") is None


# ----------------------------------------------------------------------------- encode_request


def test_encode_request_exact_text() -> None:
    assert (
        encode_request(
            "subscribe",
            {"channel": "book", "symbol": ["ALGO/USD", "MATIC/USD"], "depth": 10, "snapshot": True},
            7,
        )
        == '{"method":"subscribe","params":{"channel":"book","symbol":["ALGO/USD","MATIC/USD"],'
        '"depth":10,"snapshot":true},"req_id":7}'
    )
    assert encode_request("ping", None, 101) == '{"method":"ping","req_id":101}'
    assert encode_request("ping", None, None) == '{"method":"ping"}'
    assert (
        encode_request("unsubscribe", {"channel": "instrument"}, None)
        == '{"method":"unsubscribe","params":{"channel":"instrument"}}'
    )
    assert encode_request("ping", {}, 0) == '{"method":"ping","params":{},"req_id":0}'


def test_encode_request_output_is_str_and_round_trips() -> None:
    params = {"channel": "ticker", "symbol": ["BTC/USD"], "event_trigger": "bbo", "snapshot": False}
    text = encode_request("subscribe", params, 2**40)
    assert isinstance(text, str)
    assert json.loads(text) == {"method": "subscribe", "params": params, "req_id": 2**40}


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-06T17:35:55.440295Z", datetime(2023, 10, 6, 17, 35, 55, 440295, timezone.utc)),
        ("2023-10-04T16:25:00.000000000Z", datetime(2023, 10, 4, 16, 25, tzinfo=timezone.utc)),
        ("2026-09-25T17:48:26.844359566Z", datetime(2026, 9, 25, 17, 48, 26, 844360, timezone.utc)),
        ("2023-12-31T23:59:59.999999999Z", datetime(2024, 1, 1, tzinfo=timezone.utc)),
        ("2026-08-01T02:53:53Z", datetime(2026, 8, 1, 2, 53, 53, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_parse_timestamp_rejects_garbage() -> None:
    with pytest.raises(msgspec.ValidationError, match="RFC3339"):
        parse_timestamp("yesterday")


# ----------------------------------------------------------------------------- real captures

REAL_FIRST = {
    # stem: (connection_id, symbol, depth)
    "btcusd_l2": (7204881492680171915, "BTC/USD", 10),
    "btcusd_sample": (2950167385101900187, "BTC/USD", 25),
    "ethusd_sample": (15413894943188002760, "ETH/USD", 25),
    "xrpusd_sample": (5915131400693400747, "XRP/USD", 25),
}
LEVEL_RE = re.compile(r'\{"price":([^,{}]+),"qty":([^,{}]+)\}')


def capture_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def test_every_real_capture_is_covered(real_capture_paths: dict[str, Path]) -> None:
    assert sorted(real_capture_paths) == sorted(REAL_FIRST)


@pytest.mark.parametrize("stem", sorted(REAL_FIRST))
def test_real_capture_first_frames(stem: str, real_capture_paths: dict[str, Path]) -> None:
    connection_id, symbol, depth = REAL_FIRST[stem]
    texts = capture_texts(real_capture_paths[stem])
    status = decode_data_frame(texts[0])
    assert status == StatusFrame("update", (StatusEntry("online", "2.0.10", "v2", connection_id),))
    ack = decode_response(texts[1])
    assert ack.method == "subscribe"
    assert ack.success is True
    assert ack.req_id is None
    assert ack.result == {"channel": "book", "depth": depth, "snapshot": True, "symbol": symbol}
    assert ack.time_in is not None
    assert parse_timestamp(ack.time_in).year == 2026
    first_heartbeat = next(t for t in texts if '"heartbeat"' in t)
    assert decode_data_frame(first_heartbeat) == HeartbeatFrame()
    frames = [decode_data_frame(t) for t in texts[2:4]]
    snapshots = [f for f in frames if isinstance(f, BookFrame) and f.type == "snapshot"]
    assert len(snapshots) == 1
    (snap,) = snapshots[0].data
    assert snap.symbol == symbol
    assert len(snap.bids) == len(snap.asks) == depth
    assert snap.timestamp is not None
    # bids best first (descending), asks best first (ascending), every qty positive
    assert [b.price for b in snap.bids] == sorted((b.price for b in snap.bids), reverse=True)
    assert [a.price for a in snap.asks] == sorted(a.price for a in snap.asks)
    assert snap.bids[0].price < snap.asks[0].price
    assert all(level.qty > 0 for level in snap.bids + snap.asks)


def test_real_btcusd_l2_first_snapshot_exact(real_capture_paths: dict[str, Path]) -> None:
    texts = capture_texts(real_capture_paths["btcusd_l2"])
    frame = decode_data_frame(texts[2])
    assert isinstance(frame, BookFrame)
    (snap,) = frame.data
    assert snap.checksum == 2531248887
    assert snap.timestamp == "2026-08-01T02:53:53.398143Z"
    assert snap.bids[:2] == (lvl("63004.9", "0.01876947"), lvl("63003.3", "0.00005100"))
    assert fmt(snap.bids[1].qty) == "0.00005100"
    assert fmt(snap.bids[4].price) == "63000.0"
    assert snap.asks[0] == lvl("63005.0", "2.07265551")
    assert fmt(snap.asks[-1].qty) == "0.00057100"
    unsub = decode_response(texts[18])
    assert unsub.method == "unsubscribe"
    assert unsub.result == {"channel": "book", "depth": 10, "symbol": "BTC/USD"}


def test_real_book_frames_keep_every_wire_token(real_capture_paths: dict[str, Path]) -> None:
    checked = 0
    for path in real_capture_paths.values():
        for text in capture_texts(path):
            if not text.startswith('{"channel":"book"'):
                continue
            frame = decode_data_frame(text)
            assert isinstance(frame, BookFrame)
            (entry,) = frame.data
            tokens = LEVEL_RE.findall(text)
            decoded = [(fmt(x.price), fmt(x.qty)) for x in entry.bids + entry.asks]
            assert decoded == tokens
            assert str(entry.checksum) == re.search(r'"checksum":(\d+)', text).group(1)  # type: ignore[union-attr]
            checked += 1
    assert checked == 301 + 2052 + 1129 + 1147
