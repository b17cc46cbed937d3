"""The market channels part (kraken_proto.channels) through KrakenProtocol: one event per
entry, unusable entries, salvaged frames."""

from __future__ import annotations

import json
from decimal import Decimal

from frames import HEARTBEAT, STATUS, instrument, ticker
from protocols import events, open_proto

from kraken_proto import Emit, Instrument, ProtocolError, SystemStatus, Ticker, Trade


def test_trades_and_tickers_become_one_event_per_entry_with_exact_decimals() -> None:
    proto = open_proto()
    frame = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":5.1e-05,"ord_type":"limit",'
        '"trade_id":1,"timestamp":"2026-09-25T17:48:26.844359Z"},'
        '{"symbol":"BTC/USD","side":"sell","price":83744.2,"qty":0.00044780,"ord_type":"market",'
        '"trade_id":2,"timestamp":"2026-09-25T17:48:26.844360Z"}]}'
    )
    trades = events(proto.receive_data(frame, 3.0), Trade)
    assert [(t.trade_id, t.price, t.qty, t.received_at) for t in trades] == [
        (1, Decimal("83744.3"), Decimal("0.000051"), 3.0),
        (2, Decimal("83744.2"), Decimal("0.00044780"), 3.0),
    ]
    tick = events(proto.receive_data(ticker("ETH/USD", bid="1877.43"), 4.0), Ticker)[0]
    assert (tick.symbol, tick.bid, tick.received_at) == ("ETH/USD", Decimal("1877.43"), 4.0)


def test_status_frame_keeps_a_uint64_connection_id() -> None:
    proto = open_proto()
    status = events(proto.receive_data(STATUS, 1.0), SystemStatus)[0]
    assert status.connection_id == 18125794168470749634
    assert (status.system, status.version) == ("online", "2.0.10")
    assert proto.receive_data(HEARTBEAT, 1.1) == []


def test_a_nan_trade_is_a_protocol_error_and_its_neighbours_are_delivered() -> None:
    """Issue 9, item 6: a quoted "NaN" reached user code as Decimal('NaN'), where
    ``qty > 0`` raises."""
    proto = open_proto()
    frame = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"BTC/USD","side":"buy","price":100.5,"qty":0.5,"ord_type":"limit",'
        '"trade_id":1,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"buy","price":100.5,"qty":"NaN","ord_type":"limit",'
        '"trade_id":2,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"sell","price":-100.4,"qty":0.5,"ord_type":"limit",'
        '"trade_id":3,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"sell","price":100.4,"qty":1.5,"ord_type":"limit",'
        '"trade_id":4,"timestamp":"t"}]}'
    )
    actions = proto.receive_data(frame, 1.0)
    assert [type(a.event).__name__ for a in actions if isinstance(a, Emit)] == [
        "Trade",
        "ProtocolError",
        "ProtocolError",
        "Trade",
    ]
    assert [t.trade_id for t in events(actions, Trade)] == [1, 4]
    nan, negative = events(actions, ProtocolError)
    assert nan.error == (
        "Kraken sent an unusable trade entry: trade.qty: 'NaN' is not a finite positive "
        "number; the message's other entries are delivered"
    )
    assert '"trade_id":2' in nan.payload and nan.received_at == 1.0
    assert "trade.price: '-100.4' is not a finite positive number" in negative.error


def test_an_instrument_pair_or_asset_with_bad_numbers_is_left_out() -> None:
    proto = open_proto()
    proto.subscribe("book", ["ETH/USD"], 0.0)
    pair = {"base": "X", "quote": "USD", "status": "online", "qty_precision": 8}
    frame = {
        "channel": "instrument",
        "type": "snapshot",
        "data": {
            "assets": [
                {"id": "BTC", "status": "enabled", "precision": 10},
                {"id": "AAPLx", "status": "enabled", "precision": 8, "multiplier": "-1.5"},
            ],
            "pairs": [
                {**pair, "symbol": "BTC/USD", "price_precision": 1, "qty_increment": 1e-08},
                {**pair, "symbol": "ETH/USD", "price_precision": 2, "qty_increment": "NaN"},
                {**pair, "symbol": "XRP/USD", "price_precision": 5, "cost_min": -0.5},
            ],
        },
    }
    actions = proto.receive_data(json.dumps(frame), 1.0)
    errors = [e.error for e in events(actions, ProtocolError)]
    assert [e.split(": ", 1)[1].split(" is ")[0] for e in errors] == [
        "instrument.asset.multiplier: '-1.5'",
        "instrument.pair.qty_increment: 'NaN'",
        "instrument.pair.cost_min: '-0.5'",
    ]
    (instrument_event,) = events(actions, Instrument)
    assert [a.id for a in instrument_event.assets] == ["BTC"]
    assert [p.symbol for p in instrument_event.pairs] == ["BTC/USD"]
    assert instrument_event.snapshot
    eth = proto.book("ETH/USD")
    assert eth is not None and eth.price_precision is None  # the bad pair's is not used


def test_an_instrument_pair_that_does_not_decode_costs_only_itself() -> None:
    proto = open_proto()
    good = json.loads(instrument("BTC/USD", 1, 8))["data"]["pairs"][0]
    frame = {
        "channel": "instrument",
        "type": "update",
        "data": {
            "assets": [{"id": "BTC", "status": "enabled", "precision": -1}],
            "pairs": [{**good, "symbol": "ETH/USD", "price_precision": 19}, good],
        },
    }
    actions = proto.receive_data(json.dumps(frame), 1.0)
    errors = [e.error for e in events(actions, ProtocolError)]
    assert len(errors) == 2
    assert "data.assets[0]: Expected `int` >= 0 - at `$.precision`" in errors[0]
    assert "data.pairs[0]: Expected `int` <= 18 - at `$.price_precision`" in errors[1]
    (instrument_event,) = events(actions, Instrument)
    assert instrument_event.assets == () and not instrument_event.snapshot
    assert [p.symbol for p in instrument_event.pairs] == ["BTC/USD"]


def test_a_frame_that_is_broken_itself_is_not_salvaged() -> None:
    proto = open_proto()
    for payload in (
        '{"channel":"trade","type":"update","data":{"symbol":"BTC/USD"}}',
        '{"channel":"instrument","type":"update","data":[]}',
    ):
        (error,) = events(proto.receive_data(payload, 1.0), ProtocolError)
        assert error.error.startswith("invalid ")
