"""Tests for kraken_proto.trading: every request's checks and wire params, results, the event."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.errors import (
    InvalidRequestError,
    KrakenConnectionError,
    LocalProtocolError,
    OrderError,
    UnknownOutcomeError,
)
from kraken_proto.trading import (
    TRADING_METHODS,
    AddOrder,
    AddOrderResult,
    AmendOrder,
    AmendOrderResult,
    BatchAdd,
    BatchAddResult,
    BatchAddRow,
    BatchCancel,
    BatchCancelResult,
    BatchOrder,
    CancelAll,
    CancelAllOrdersAfter,
    CancelAllOrdersAfterResult,
    CancelAllResult,
    CancelOrder,
    CancelOrderResult,
    Conditional,
    EditOrder,
    EditOrderResult,
    OrderOutcome,
    OrderResponse,
    Triggers,
    is_trading_request,
    new_cl_ord_id,
    parse_result,
)

UTC = timezone.utc
ENCODE = msgspec.json.Encoder(decimal_format="number").encode
UUID = "2c6be801-1f53-4f79-a0bb-4ea1c95dfae9"
HEX32 = "2c6be8011f534f79a0bb4ea1c95dfae9"

LIMIT: dict[str, Any] = {
    "order_type": "limit",
    "side": "buy",
    "order_qty": "1.2",
    "symbol": "BTC/USD",
    "limit_price": "28440",
}


def limit(**changes: Any) -> AddOrder:
    fields = {**LIMIT, **changes}
    return AddOrder(**{k: v for k, v in fields.items() if v is not None})


def refused(field: str, fragment: str) -> Any:
    """pytest.raises for an InvalidRequestError on ``field`` whose message has ``fragment``."""
    return pytest.raises(
        InvalidRequestError, match=rf"^{re.escape(field)}: .*{re.escape(fragment)}"
    )


# --------------------------------------------------------------------------- add_order


def test_add_order_doc_limit_example_params() -> None:
    order = AddOrder(
        order_type="limit",
        side="buy",
        limit_price=Decimal("26500.4"),
        order_userref=100054,
        order_qty=Decimal("1.2"),
        symbol="BTC/USD",
    )
    assert order.params() == {
        "order_type": "limit",
        "side": "buy",
        "order_qty": Decimal("1.2"),
        "limit_price": Decimal("26500.4"),
        "order_userref": 100054,
        "symbol": "BTC/USD",
    }
    assert ENCODE(order.params()) == (
        b'{"order_type":"limit","side":"buy","order_qty":1.2,"limit_price":26500.4,'
        b'"order_userref":100054,"symbol":"BTC/USD"}'
    )
    assert (order.method, order.symbol, order.expected_responses) == ("add_order", "BTC/USD", 1)
    assert "token" not in order.params()


def test_add_order_doc_stop_loss_example_with_negative_pct_trigger() -> None:
    order = AddOrder(
        order_type="stop-loss",
        side="sell",
        order_qty=100,
        symbol="MATIC/USD",
        triggers=Triggers(reference="last", price="-2.0", price_type="pct"),
    )
    assert order.params() == {
        "order_type": "stop-loss",
        "side": "sell",
        "order_qty": Decimal(100),
        "symbol": "MATIC/USD",
        "triggers": {"reference": "last", "price": Decimal("-2.0"), "price_type": "pct"},
    }
    assert ENCODE(order.params()["triggers"]) == (
        b'{"reference":"last","price":-2.0,"price_type":"pct"}'
    )


def test_add_order_doc_trailing_and_oto_examples() -> None:
    trailing = AddOrder(
        order_type="trailing-stop",
        side="buy",
        order_qty=100,
        symbol="MATIC/USD",
        triggers={"reference": "last", "price": "1.0", "price_type": "pct"},  # type: ignore[arg-type]
    )
    assert trailing.triggers == Triggers(reference="last", price=Decimal("1.0"), price_type="pct")
    oto = AddOrder(
        order_type="limit",
        side="buy",
        order_qty="1.2",
        symbol="BTC/USD",
        limit_price=28440,
        conditional=Conditional(
            order_type="stop-loss-limit", trigger_price=28410, limit_price=28400
        ),
    )
    assert oto.params()["conditional"] == {
        "order_type": "stop-loss-limit",
        "limit_price": Decimal(28400),
        "trigger_price": Decimal(28410),
    }
    as_mapping = limit(conditional={"order_type": "take-profit", "trigger_price": "30000"})
    assert as_mapping.conditional == Conditional(order_type="take-profit", trigger_price=30000)


def test_add_order_every_field_is_rendered() -> None:
    order = AddOrder(
        order_type="iceberg",
        side="sell",
        order_qty="15",
        symbol="ETH/USD",
        limit_price="5",
        limit_price_type="static",
        time_in_force="GTD",
        margin=False,
        post_only=True,
        reduce_only=False,
        effective_time=datetime(2024, 3, 1, 13, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=1))),
        expire_time="2024-03-02T00:00:00Z",
        cl_ord_id="my-order-1",
        display_qty="1",
        fee_preference="quote",
        stp_type="cancel_both",
        sender_sub_id="desk-7",
        deadline=datetime(2024, 3, 1, 12, 0, 5, 123_987, tzinfo=UTC),
        validate=True,
    )
    assert order.params() == {
        "order_type": "iceberg",
        "side": "sell",
        "order_qty": Decimal(15),
        "limit_price": Decimal(5),
        "limit_price_type": "static",
        "time_in_force": "gtd",
        "margin": False,
        "post_only": True,
        "reduce_only": False,
        "effective_time": "2024-03-01T12:00:00Z",
        "expire_time": "2024-03-02T00:00:00Z",
        "cl_ord_id": "my-order-1",
        "display_qty": Decimal(1),
        "fee_preference": "quote",
        "stp_type": "cancel_both",
        "sender_sub_id": "desk-7",
        "symbol": "ETH/USD",
        "deadline": "2024-03-01T12:00:05.123Z",
        "validate": True,
    }
    assert order.time_in_force == "gtd"


def test_add_order_market_buy_in_quote_currency() -> None:
    order = AddOrder(order_type="market", side="buy", symbol="BTC/USD", cash_order_qty="50")
    assert order.params() == {
        "order_type": "market",
        "side": "buy",
        "cash_order_qty": Decimal(50),
        "symbol": "BTC/USD",
    }


def test_amounts_are_stored_exact_and_written_positionally() -> None:
    order = limit(
        order_qty=3, limit_price="1E+3", time_in_force="IOC", deadline="2024-01-01T00:00:00.5Z"
    )
    assert order.order_qty == Decimal(3) and isinstance(order.order_qty, Decimal)
    assert str(order.limit_price) == "1000"
    assert order.params()["time_in_force"] == "ioc"
    assert order.params()["deadline"] == "2024-01-01T00:00:00.5Z"  # text is sent as given
    assert limit(limit_price=Decimal("0.10")).limit_price == Decimal("0.10")


def test_valid_shapes_are_accepted() -> None:
    limit(order_type="settle-position", limit_price=None)
    limit(cl_ord_id=UUID)
    limit(cl_ord_id=HEX32)
    limit(cl_ord_id="a b~!")
    limit(cl_ord_id=new_cl_ord_id())
    limit(order_userref=-(2**31))
    limit(order_userref=2**31 - 1)
    limit(order_type="iceberg", order_qty="15", display_qty="1")  # exactly 1/15
    limit(order_type="iceberg", order_qty="15", display_qty="15")
    limit(limit_price="-1.5", limit_price_type="pct")  # an offset may be negative
    limit(order_type="stop-loss-limit", triggers=Triggers(price="27000"))
    limit(order_type="take-profit-limit", triggers=Triggers(price="29000", reference="index"))
    limit(
        order_type="trailing-stop-limit",
        limit_price="-0.5",
        limit_price_type="pct",
        triggers=Triggers(price="1", price_type="quote"),
    )
    limit(order_type="take-profit", limit_price=None, triggers=Triggers(price=30000))
    limit(time_in_force="gtc", post_only=True)
    limit(effective_time=datetime(2030, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"order_type": "oco"}, "order_type", "must be one of"),
        ({"side": "long"}, "side", "must be one of buy, sell"),
        ({"symbol": "BTCUSD"}, "symbol", "'BASE/QUOTE'"),
        ({"symbol": "BTC/ USD"}, "symbol", "'BASE/QUOTE'"),
        ({"margin": 1}, "margin", "True, False or None"),
        ({"post_only": "yes"}, "post_only", "True, False or None"),
        ({"reduce_only": 0}, "reduce_only", "True, False or None"),
        ({"order_qty": 1.5}, "order_qty", "float"),
        ({"order_qty": True}, "order_qty", "Decimal, int or str"),
        ({"order_qty": [1]}, "order_qty", "Decimal, int or str"),
        ({"order_qty": "abc"}, "order_qty", "is not a number"),
        ({"order_qty": "NaN"}, "order_qty", "finite"),
        ({"order_qty": Decimal("-Infinity")}, "order_qty", "finite"),
        ({"order_qty": 0}, "order_qty", "> 0"),
        ({"order_qty": "-1"}, "order_qty", "> 0"),
        ({"order_qty": "1E+31"}, "order_qty", "too large"),
        ({"order_qty": None}, "order_qty", "is required"),
        ({"cash_order_qty": "50"}, "cash_order_qty", "only for market buy"),
        ({"limit_price_type": "abs"}, "limit_price_type", "must be one of"),
        ({"limit_price": None}, "limit_price", "is required for a limit order"),
        ({"limit_price": "-1"}, "limit_price", "> 0"),
        ({"limit_price": 1.0}, "limit_price", "float"),
        ({"triggers": Triggers(price=1)}, "triggers", "a limit order has no trigger"),
        ({"triggers": 5}, "triggers", "must be a Triggers"),
        ({"time_in_force": "day"}, "time_in_force", "gtc, gtd, ioc"),
        ({"time_in_force": 1}, "time_in_force", "gtc, gtd, ioc"),
        ({"time_in_force": "gtd"}, "expire_time", "is required"),
        ({"expire_time": "2030-01-01T00:00:00Z"}, "expire_time", "only applies"),
        ({"effective_time": "tomorrow"}, "effective_time", "not an RFC3339"),
        ({"effective_time": "2030-01-01T00:00:00"}, "effective_time", "time zone"),
        ({"effective_time": datetime(2030, 1, 1)}, "effective_time", "time zone"),
        ({"effective_time": 1_900_000_000}, "effective_time", "datetime or RFC3339"),
        ({"post_only": True, "time_in_force": "ioc"}, "post_only", "ioc"),
        ({"cl_ord_id": "a", "order_userref": 1}, "cl_ord_id", "mutually exclusive"),
        ({"cl_ord_id": ""}, "cl_ord_id", "non-empty"),
        ({"cl_ord_id": 7}, "cl_ord_id", "non-empty str"),
        ({"cl_ord_id": "x" * 19}, "cl_ord_id", "up to 18 printable ASCII"),
        ({"cl_ord_id": "ordre-été"}, "cl_ord_id", "up to 18 printable ASCII"),
        ({"cl_ord_id": "tab\there"}, "cl_ord_id", "up to 18 printable ASCII"),
        ({"cl_ord_id": UUID[:-1] + "g"}, "cl_ord_id", "new_cl_ord_id()"),
        ({"order_userref": True}, "order_userref", "must be an int"),
        ({"order_userref": "7"}, "order_userref", "must be an int"),
        ({"order_userref": 2**31}, "order_userref", "32-bit"),
        ({"display_qty": "0.5"}, "display_qty", "only for iceberg"),
        ({"order_type": "iceberg"}, "display_qty", "is required for an iceberg"),
        ({"order_type": "iceberg", "order_qty": "16", "display_qty": "1"}, "display_qty", "1/15"),
        ({"order_type": "iceberg", "display_qty": "2"}, "display_qty", "cannot exceed"),
        ({"fee_preference": "usd"}, "fee_preference", "base, quote"),
        ({"stp_type": "none"}, "stp_type", "must be one of"),
        ({"conditional": "stop"}, "conditional", "must be a Conditional"),
        ({"conditional": {"order_type": "limit", "size": 1}}, "conditional", "size"),
        ({"sender_sub_id": ""}, "sender_sub_id", "non-empty"),
        ({"validate": "true"}, "validate", "True, False or None"),
        ({"deadline": "in 5 s"}, "deadline", "not an RFC3339"),
    ],
)
def test_add_order_refusals(changes: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        limit(**changes)


MARKET: dict[str, Any] = {"order_type": "market", "side": "buy", "symbol": "BTC/USD"}


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({**MARKET, "side": "sell", "cash_order_qty": 5}, "cash_order_qty", "market buy"),
        ({**MARKET, "cash_order_qty": 5, "margin": True}, "cash_order_qty", "margin"),
        ({**MARKET, "cash_order_qty": 5, "order_qty": 1}, "order_qty", "not both"),
        ({**MARKET, "order_qty": 1, "limit_price": 1}, "limit_price", "executes at market"),
        (
            {**MARKET, "order_qty": 1, "limit_price_type": "pct"},
            "limit_price_type",
            "only meaningful with limit_price",
        ),
        ({**MARKET, "order_qty": 1, "post_only": True}, "post_only", "cannot be post-only"),
        (
            {**MARKET, "order_type": "stop-loss", "order_qty": 1},
            "triggers",
            "are required for a stop-loss",
        ),
        (
            {
                **MARKET,
                "order_type": "trailing-stop",
                "order_qty": 1,
                "triggers": Triggers(price="-1", price_type="pct"),
            },
            "triggers.price",
            "trailing distance must be > 0",
        ),
        (
            {**MARKET, "order_type": "stop-loss", "order_qty": 1, "triggers": {"price": "-1"}},
            "triggers.price",
            "> 0",
        ),
        (
            {**MARKET, "order_type": "stop-loss", "order_qty": 1, "triggers": {"prize": 1}},
            "triggers",
            "prize",
        ),
    ],
)
def test_add_order_refusals_beyond_limit_orders(
    fields: dict[str, Any], field: str, fragment: str
) -> None:
    with refused(field, fragment):
        AddOrder(**fields)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"price": 1, "reference": "mark"}, "triggers.reference", "index, last"),
        ({"price": 1, "price_type": "abs"}, "triggers.price_type", "must be one of"),
        ({"price": "-1"}, "triggers.price", "> 0"),
        ({"price": "-1", "price_type": "static"}, "triggers.price", "> 0"),
        ({"price": 1.5}, "triggers.price", "float"),
    ],
)
def test_triggers_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        Triggers(**fields)


def test_triggers_params() -> None:
    assert Triggers(price="27000").params() == {"price": Decimal(27000)}
    assert Triggers(price="-3", price_type="quote", reference="index").params() == {
        "reference": "index",
        "price": Decimal(-3),
        "price_type": "quote",
    }


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"order_type": "market"}, "conditional.order_type", "must be one of"),
        (
            {"order_type": "limit", "limit_price": 1, "limit_price_type": "x"},
            "conditional.limit_price_type",
            "must be one of",
        ),
        (
            {"order_type": "stop-loss", "trigger_price": 1, "trigger_price_type": "x"},
            "conditional.trigger_price_type",
            "must be one of",
        ),
        ({"order_type": "limit"}, "conditional.limit_price", "is required for a limit"),
        (
            {"order_type": "stop-loss", "trigger_price": 1, "limit_price": 1},
            "conditional.limit_price",
            "executes at market",
        ),
        ({"order_type": "take-profit"}, "conditional.trigger_price", "is required"),
        (
            {"order_type": "limit", "limit_price": 1, "trigger_price": 1},
            "conditional.trigger_price",
            "has no trigger",
        ),
        (
            {"order_type": "stop-loss", "trigger_price": 1, "limit_price_type": "pct"},
            "conditional.limit_price_type",
            "only meaningful with limit_price",
        ),
        (
            {"order_type": "limit", "limit_price": 1, "trigger_price_type": "pct"},
            "conditional.trigger_price_type",
            "only meaningful with trigger_price",
        ),
        (
            {"order_type": "trailing-stop", "trigger_price": "-1", "trigger_price_type": "pct"},
            "conditional.trigger_price",
            "trailing distance",
        ),
        (
            {"order_type": "limit", "limit_price": "-1"},
            "conditional.limit_price",
            "> 0",
        ),
    ],
)
def test_conditional_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        Conditional(**fields)


def test_conditional_params() -> None:
    conditional = Conditional(
        order_type="trailing-stop-limit",
        limit_price="-0.1",
        limit_price_type="pct",
        trigger_price="2",
        trigger_price_type="quote",
    )
    assert conditional.params() == {
        "order_type": "trailing-stop-limit",
        "limit_price": Decimal("-0.1"),
        "limit_price_type": "pct",
        "trigger_price": Decimal(2),
        "trigger_price_type": "quote",
    }
    assert Conditional(order_type="limit", limit_price=1).params() == {
        "order_type": "limit",
        "limit_price": Decimal(1),
    }


def test_requests_are_frozen_and_hashable() -> None:
    order = limit()
    with pytest.raises(AttributeError):
        order.side = "sell"  # type: ignore[misc]
    assert hash(order) == hash(limit())
    assert order == limit(order_qty=Decimal("1.20"))  # Decimals compare by value
    assert issubclass(InvalidRequestError, LocalProtocolError)


@given(st.decimals(min_value=Decimal("1E-12"), max_value=Decimal("1E+12"), places=12))
def test_any_positive_decimal_is_kept_exactly(value: Decimal) -> None:
    order = limit(order_qty=value)
    assert order.params()["order_qty"] == value
    assert order.params()["order_qty"].as_tuple().exponent <= 0
    assert Decimal(ENCODE(order.params()["order_qty"]).decode()) == value


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=18))
def test_any_short_printable_ascii_cl_ord_id_is_accepted(text: str) -> None:
    assert limit(cl_ord_id=text).params()["cl_ord_id"] == text


# --------------------------------------------------------------------------- batch_add


ORDER: dict[str, Any] = {"order_type": "limit", "side": "buy", "order_qty": 1, "limit_price": 100}


def test_batch_add_doc_example_params() -> None:
    batch = BatchAdd(
        symbol="BTC/USD",
        orders=(
            BatchOrder(
                order_type="limit",
                side="buy",
                limit_price="1010.1",
                order_qty="1.2",
                order_userref=1,
            ),
            BatchOrder(
                order_type="limit",
                side="sell",
                limit_price="1200",
                order_qty="1.2",
                order_userref=2,
            ),
        ),
        validate=False,
        deadline="2022-06-13T08:09:10.123Z",
    )
    assert batch.params() == {
        "symbol": "BTC/USD",
        "orders": [
            {
                "order_type": "limit",
                "side": "buy",
                "order_qty": Decimal("1.2"),
                "limit_price": Decimal("1010.1"),
                "order_userref": 1,
            },
            {
                "order_type": "limit",
                "side": "sell",
                "order_qty": Decimal("1.2"),
                "limit_price": Decimal(1200),
                "order_userref": 2,
            },
        ],
        "deadline": "2022-06-13T08:09:10.123Z",
        "validate": False,
    }
    assert (batch.method, batch.symbol, batch.expected_responses) == ("batch_add", "BTC/USD", 1)


def test_batch_add_takes_mappings_and_lists() -> None:
    batch = BatchAdd(
        symbol="BTC/USD",
        orders=[ORDER, {**ORDER, "side": "sell", "cl_ord_id": "b"}],  # type: ignore[arg-type]
        deadline=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert batch.orders == (
        BatchOrder(**ORDER),
        BatchOrder(**{**ORDER, "side": "sell", "cl_ord_id": "b"}),
    )
    assert batch.params()["deadline"] == "2024-01-01T00:00:00.000Z"
    assert "validate" not in batch.params()
    fifteen = BatchAdd(symbol="BTC/USD", orders=(BatchOrder(**ORDER),) * 15)
    assert fifteen.params() == {"symbol": "BTC/USD", "orders": [BatchOrder(**ORDER).params()] * 15}


def test_batch_order_is_checked_like_add_order() -> None:
    with refused("limit_price", "is required for a limit order"):
        BatchOrder(order_type="limit", side="buy", order_qty=1)
    with pytest.raises(TypeError, match="symbol"):
        BatchOrder(**ORDER, symbol="BTC/USD")  # type: ignore[call-arg]
    assert BatchOrder(**ORDER).params() == {
        "order_type": "limit",
        "side": "buy",
        "order_qty": Decimal(1),
        "limit_price": Decimal(100),
    }


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"symbol": "BTC", "orders": (ORDER, ORDER)}, "symbol", "BASE/QUOTE"),
        ({"orders": "ab"}, "orders", "tuple (or list)"),
        ({"orders": (ORDER,)}, "orders", "2 to 15 orders, got 1"),
        ({"orders": (ORDER,) * 16}, "orders", "2 to 15 orders, got 16"),
        ({"orders": (ORDER, 7)}, "orders[1]", "BatchOrder or a mapping"),
        ({"orders": (ORDER, {**ORDER, "limit_price": None})}, "orders[1].limit_price", "required"),
        (
            {
                "orders": (
                    ORDER,
                    {
                        **ORDER,
                        "order_type": "stop-loss",
                        "limit_price": None,
                        "triggers": {"price": 0},
                    },
                )
            },
            "orders[1].triggers.price",
            "> 0",
        ),
        ({"orders": (ORDER, {**ORDER, "symbol": "BTC/USD"})}, "orders[1]", "symbol"),
        ({"orders": (ORDER, {**ORDER, "deadline": "x"})}, "orders[1]", "deadline"),
        (
            {"orders": ({**ORDER, "cl_ord_id": "a"}, ORDER, {**ORDER, "cl_ord_id": "a"})},
            "orders[2].cl_ord_id",
            "already used by orders[0]",
        ),
        ({"orders": (ORDER, ORDER), "deadline": "soon"}, "deadline", "RFC3339"),
        ({"orders": (ORDER, ORDER), "validate": 1}, "validate", "True, False or None"),
    ],
)
def test_batch_add_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        BatchAdd(**{"symbol": "BTC/USD", **fields})


# --------------------------------------------------------------------------- amend_order


def test_amend_order_params() -> None:
    amend = AmendOrder(
        order_id="OAIYAU-LGI3M-PFM5VW",
        order_qty="1.5",
        display_qty="0.5",
        limit_price="-2",
        limit_price_type="pct",
        post_only=True,
        trigger_price="30000",
        trigger_price_type="static",
        deadline=datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
        symbol="BTC/USD",
    )
    assert amend.params() == {
        "order_id": "OAIYAU-LGI3M-PFM5VW",
        "order_qty": Decimal("1.5"),
        "display_qty": Decimal("0.5"),
        "limit_price": Decimal(-2),
        "limit_price_type": "pct",
        "post_only": True,
        "trigger_price": Decimal(30000),
        "trigger_price_type": "static",
        "deadline": "2024-01-01T00:00:01.000Z",
        "symbol": "BTC/USD",
    }
    by_client = AmendOrder(cl_ord_id=UUID, order_qty=2, limit_price="28000")
    assert by_client.params() == {
        "cl_ord_id": UUID,
        "order_qty": Decimal(2),
        "limit_price": Decimal(28000),
    }
    assert (by_client.method, by_client.symbol, by_client.expected_responses) == (
        "amend_order",
        None,
        1,
    )


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"order_qty": 1}, "order_id", "exactly one of order_id and cl_ord_id"),
        ({"order_id": "O1", "cl_ord_id": "c", "order_qty": 1}, "order_id", "exactly one"),
        ({"order_id": "", "order_qty": 1}, "order_id", "non-empty"),
        ({"cl_ord_id": "x" * 20, "order_qty": 1}, "cl_ord_id", "UUID"),
        ({"order_id": "O1", "order_qty": 0}, "order_qty", "> 0"),
        ({"order_id": "O1", "order_qty": 1.0}, "order_qty", "float"),
        ({"order_id": "O1", "order_qty": 16, "display_qty": 1}, "display_qty", "1/15"),
        ({"order_id": "O1", "order_qty": 1, "display_qty": 2}, "display_qty", "cannot exceed"),
        (
            {"order_id": "O1", "order_qty": 1, "limit_price": 1, "limit_price_type": "x"},
            "limit_price_type",
            "must be one of",
        ),
        (
            {"order_id": "O1", "order_qty": 1, "trigger_price": 1, "trigger_price_type": "x"},
            "trigger_price_type",
            "must be one of",
        ),
        (
            {"order_id": "O1", "order_qty": 1, "limit_price_type": "pct"},
            "limit_price_type",
            "only meaningful",
        ),
        (
            {"order_id": "O1", "order_qty": 1, "trigger_price_type": "pct"},
            "trigger_price_type",
            "only meaningful",
        ),
        ({"order_id": "O1", "order_qty": 1, "limit_price": "-1"}, "limit_price", "> 0"),
        ({"order_id": "O1", "order_qty": 1, "trigger_price": "0"}, "trigger_price", "> 0"),
        ({"order_id": "O1", "order_qty": 1, "post_only": "y"}, "post_only", "True, False"),
        ({"order_id": "O1", "order_qty": 1, "deadline": "x"}, "deadline", "RFC3339"),
        ({"order_id": "O1", "order_qty": 1, "symbol": "BTC-USD"}, "symbol", "BASE/QUOTE"),
    ],
)
def test_amend_order_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        AmendOrder(**fields)


def test_amend_order_requires_order_qty() -> None:
    with pytest.raises(TypeError, match="order_qty"):
        AmendOrder(order_id="O1")  # type: ignore[call-arg]


# --------------------------------------------------------------------------- edit_order


def test_edit_order_params() -> None:
    edit = EditOrder(
        order_id="ORDERX-IDXXX-XXXXX1",
        symbol="BTC/USD",
        order_qty="2",
        limit_price="27000",
        display_qty="1",
        post_only=True,
        reduce_only=False,
        fee_preference="base",
        order_userref=12,
        triggers={"price": "26000"},  # type: ignore[arg-type]
        validate=True,
        deadline="2024-01-01T00:00:00.000Z",
    )
    assert edit.params() == {
        "order_id": "ORDERX-IDXXX-XXXXX1",
        "symbol": "BTC/USD",
        "order_qty": Decimal(2),
        "limit_price": Decimal(27000),
        "display_qty": Decimal(1),
        "post_only": True,
        "reduce_only": False,
        "fee_preference": "base",
        "order_userref": 12,
        "triggers": {"price": Decimal(26000)},
        "validate": True,
        "deadline": "2024-01-01T00:00:00.000Z",
    }
    minimal = EditOrder(order_id="O1", symbol="BTC/USD", display_qty="0.1")
    assert minimal.params() == {
        "order_id": "O1",
        "symbol": "BTC/USD",
        "display_qty": Decimal("0.1"),
    }
    assert (minimal.method, minimal.symbol, minimal.expected_responses) == (
        "edit_order",
        "BTC/USD",
        1,
    )


def test_edit_order_has_no_cl_ord_id() -> None:
    with pytest.raises(TypeError, match="cl_ord_id"):
        EditOrder(order_id="O1", symbol="BTC/USD", cl_ord_id="c1")  # type: ignore[call-arg]
    assert "cl_ord_id" in (EditOrder.__doc__ or "")


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"order_id": ""}, "order_id", "non-empty"),
        ({"symbol": "BTCUSD"}, "symbol", "BASE/QUOTE"),
        ({"order_qty": "-1"}, "order_qty", "> 0"),
        ({"limit_price": "-1"}, "limit_price", "> 0"),
        ({"display_qty": "0"}, "display_qty", "> 0"),
        ({"order_qty": 30, "display_qty": 1}, "display_qty", "1/15"),
        ({"post_only": 1}, "post_only", "True, False"),
        ({"reduce_only": 1}, "reduce_only", "True, False"),
        ({"validate": 1}, "validate", "True, False"),
        ({"fee_preference": "eur"}, "fee_preference", "base, quote"),
        ({"order_userref": 1.5}, "order_userref", "must be an int"),
        ({"triggers": "x"}, "triggers", "must be a Triggers"),
        ({"deadline": datetime(2024, 1, 1)}, "deadline", "time zone"),
    ],
)
def test_edit_order_refusals(changes: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        EditOrder(**{"order_id": "O1", "symbol": "BTC/USD", **changes})


# --------------------------------------------------------------------------- cancels


def test_cancel_order_params_and_expected_responses() -> None:
    cancel = CancelOrder(order_id=["OM5CRX-N2HAL-GFGWE9", "OLUMT4-UTEGU-ZYM7E9"])  # type: ignore[arg-type]
    assert cancel.order_id == ("OM5CRX-N2HAL-GFGWE9", "OLUMT4-UTEGU-ZYM7E9")
    assert cancel.params() == {"order_id": ["OM5CRX-N2HAL-GFGWE9", "OLUMT4-UTEGU-ZYM7E9"]}
    assert (cancel.method, cancel.symbol, cancel.expected_responses) == ("cancel_order", None, 2)
    both = CancelOrder(order_id=("O1",), cl_ord_id=(UUID, "c2"))
    assert both.params() == {"order_id": ["O1"], "cl_ord_id": [UUID, "c2"]}
    assert both.expected_responses == 3
    by_ref = CancelOrder(order_id=("O1",), order_userref=(7, 8))
    assert by_ref.params() == {"order_id": ["O1"], "order_userref": [7, 8]}
    assert by_ref.expected_responses is None
    assert CancelOrder(cl_ord_id=("c",)).params() == {"cl_ord_id": ["c"]}


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({}, "order_id", "at least one"),
        ({"order_id": (), "cl_ord_id": []}, "order_id", "at least one"),
        ({"order_id": "O1"}, "order_id", "tuple (or list)"),
        ({"cl_ord_id": {"c"}}, "cl_ord_id", "tuple (or list)"),
        ({"order_userref": 7}, "order_userref", "tuple (or list)"),
        ({"order_id": ("O1", "")}, "order_id[1]", "non-empty"),
        ({"cl_ord_id": ("x" * 19,)}, "cl_ord_id[0]", "UUID"),
        ({"order_userref": (True,)}, "order_userref[0]", "must be an int"),
        ({"order_id": ("O1", "O2", "O1")}, "order_id[2]", "listed twice"),
        ({"cl_ord_id": ("c", "c")}, "cl_ord_id[1]", "listed twice"),
        ({"order_userref": (1, 1)}, "order_userref[1]", "listed twice"),
    ],
)
def test_cancel_order_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        CancelOrder(**fields)


def test_cancel_all_and_dead_man_switch() -> None:
    cancel_all = CancelAll()
    assert (cancel_all.method, cancel_all.params(), cancel_all.symbol) == ("cancel_all", {}, None)
    assert cancel_all.expected_responses == 1
    switch = CancelAllOrdersAfter(timeout=60)
    assert (switch.method, switch.params(), switch.symbol) == (
        "cancel_all_orders_after",
        {"timeout": 60},
        None,
    )
    assert switch.expected_responses == 1
    assert CancelAllOrdersAfter(timeout=0).params() == {"timeout": 0}
    assert CancelAllOrdersAfter(timeout=86_399).params() == {"timeout": 86_399}


@pytest.mark.parametrize(
    ("timeout", "fragment"),
    [
        (True, "int of seconds"),
        (60.0, "int of seconds"),
        ("60", "int"),
        (-1, ">= 0"),
        (86_400, "< 86400"),
    ],
)
def test_dead_man_switch_refusals(timeout: Any, fragment: str) -> None:
    with refused("timeout", fragment):
        CancelAllOrdersAfter(timeout=timeout)


def test_batch_cancel_params() -> None:
    batch = BatchCancel(orders=["OAIYAU-LGI3M-PFM5VW", 17], cl_ord_id=[UUID])  # type: ignore[arg-type]
    assert batch.orders == ("OAIYAU-LGI3M-PFM5VW", "17")
    assert batch.params() == {"orders": ["OAIYAU-LGI3M-PFM5VW", "17"], "cl_ord_id": [UUID]}
    assert (batch.method, batch.symbol, batch.expected_responses) == ("batch_cancel", None, 1)
    assert BatchCancel(orders=("1", "2")).params() == {"orders": ["1", "2"]}
    assert BatchCancel(cl_ord_id=("a", "b")).params() == {"cl_ord_id": ["a", "b"]}
    BatchCancel(
        orders=tuple(f"O{i}" for i in range(25)), cl_ord_id=tuple(f"c{i}" for i in range(25))
    )


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"orders": "O1O2"}, "orders", "tuple (or list)"),
        ({"orders": ("O1",)}, "orders", "2 to 50 orders in total, got 1"),
        ({"orders": tuple(f"O{i}" for i in range(51))}, "orders", "got 51"),
        ({"orders": ("O1", 2**31)}, "orders[1]", "32-bit"),
        ({"orders": ("O1", "")}, "orders[1]", "non-empty"),
        ({"orders": ("O1", True)}, "orders[1]", "non-empty str"),
        ({"orders": ("O1",), "cl_ord_id": ("é",)}, "cl_ord_id[0]", "ASCII"),
        ({"orders": ("O1", 5, "5")}, "orders[2]", "listed twice"),
        ({"cl_ord_id": ("a", "a")}, "cl_ord_id[1]", "listed twice"),
    ],
)
def test_batch_cancel_refusals(fields: dict[str, Any], field: str, fragment: str) -> None:
    with refused(field, fragment):
        BatchCancel(**fields)


def test_trading_request_helpers() -> None:
    assert {
        "add_order",
        "amend_order",
        "edit_order",
        "cancel_order",
        "cancel_all",
        "cancel_all_orders_after",
        "batch_add",
        "batch_cancel",
    } == TRADING_METHODS
    assert is_trading_request(limit())
    assert is_trading_request(CancelAll())
    assert not is_trading_request(BatchOrder(**ORDER))
    assert not is_trading_request({"method": "add_order"})
    first, second = new_cl_ord_id(), new_cl_ord_id()
    assert first != second
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )


# --------------------------------------------------------------------------- results


def test_results_from_the_doc_examples() -> None:
    decode = msgspec.json.decode
    assert parse_result(
        "add_order", decode(b'{"order_id":"AA5JGQ-SBMRC-SCJ7J7","order_userref":100054}')
    ) == AddOrderResult(order_id="AA5JGQ-SBMRC-SCJ7J7", order_userref=100054)
    assert parse_result(
        "add_order", {"order_id": "", "cl_ord_id": UUID, "warnings": ["Deprecated field"]}
    ) == AddOrderResult(order_id="", cl_ord_id=UUID, warnings=("Deprecated field",))
    assert parse_result(
        "amend_order", {"amend_id": "TTW6PD-RC36L-ZZSWNU", "cl_ord_id": UUID}
    ) == AmendOrderResult(amend_id="TTW6PD-RC36L-ZZSWNU", cl_ord_id=UUID)
    assert parse_result(
        "edit_order",
        {"order_id": "ORDERX-IDXXX-XXXXX2", "original_order_id": "ORDERX-IDXXX-XXXXX1"},
    ) == EditOrderResult(order_id="ORDERX-IDXXX-XXXXX2", original_order_id="ORDERX-IDXXX-XXXXX1")
    assert parse_result("cancel_order", {"order_id": "OM5CRX-N2HAL-GFGWE9"}) == CancelOrderResult(
        order_id="OM5CRX-N2HAL-GFGWE9"
    )
    assert parse_result("cancel_all", {"count": 3}) == CancelAllResult(count=3)
    armed = parse_result(
        "cancel_all_orders_after",
        {"currentTime": "2023-09-21T15:49:29Z", "triggerTime": "2023-09-21T15:51:09Z"},
    )
    assert armed == CancelAllOrdersAfterResult(
        current_time="2023-09-21T15:49:29Z", trigger_time="2023-09-21T15:51:09Z"
    )
    assert isinstance(armed, CancelAllOrdersAfterResult) and armed.armed
    disarmed = parse_result(
        "cancel_all_orders_after", {"currentTime": "2023-09-21T15:49:29Z", "triggerTime": "0"}
    )
    assert isinstance(disarmed, CancelAllOrdersAfterResult) and not disarmed.armed
    assert parse_result(
        "batch_add",
        [
            {"order_id": "O1", "order_userref": 1},
            {"order_id": "O2", "order_userref": 2},
            {"cl_ord_id": "c", "error": "EOrder:Insufficient funds"},
        ],
    ) == BatchAddResult(
        orders=(
            BatchAddRow(order_id="O1", order_userref=1),
            BatchAddRow(order_id="O2", order_userref=2),
            BatchAddRow(cl_ord_id="c", error="EOrder:Insufficient funds"),
        )
    )
    assert parse_result("batch_cancel", {"count": 2, "extra": True}) == BatchCancelResult(count=2)


@pytest.mark.parametrize(
    ("method", "result"),
    [
        ("add_order", {}),
        ("add_order", {"order_id": 5}),
        ("add_order", {"order_id": "O", "order_userref": "7"}),
        ("cancel_all", {"count": "3"}),
        ("cancel_all_orders_after", {"current_time": "x", "trigger_time": "y"}),
        ("batch_add", {"orders": []}),
        ("batch_add", [1]),
        ("amend_order", None),
        ("edit_order", ["O"]),
        ("subscribe", {}),
    ],
)
def test_bad_results_raise_validation_error(method: str, result: Any) -> None:
    with pytest.raises(msgspec.ValidationError):
        parse_result(method, result)


# --------------------------------------------------------------------------- the event


def test_order_response_ok() -> None:
    results = (CancelOrderResult(order_id="O1"), CancelOrderResult(order_id="O2"))
    response = OrderResponse(
        "cancel_order",
        7,
        OrderOutcome.OK,
        results=results,
        time_in="2023-09-21T14:15:07.197274Z",
        time_out="2023-09-21T14:15:07.205301Z",
        received_at=12.5,
    )
    assert response.result == CancelOrderResult(order_id="O1")
    response.raise_for_outcome()
    assert OrderResponse("cancel_all", 1, OrderOutcome.OK).result is None
    assert msgspec.json.decode(msgspec.json.encode(response))["outcome"] == "ok"


def test_order_response_raises_per_outcome() -> None:
    rejected = OrderResponse(
        "add_order", 99, OrderOutcome.REJECTED, error="EOrder:Insufficient funds"
    )
    with pytest.raises(OrderError) as refused_error:
        rejected.raise_for_outcome()
    assert (refused_error.value.method, refused_error.value.req_id, refused_error.value.error) == (
        "add_order",
        99,
        "EOrder:Insufficient funds",
    )
    with pytest.raises(OrderError, match="no error text"):
        OrderResponse("add_order", 1, OrderOutcome.REJECTED).raise_for_outcome()
    unknown = OrderResponse("add_order", 5, OrderOutcome.UNKNOWN, error="no response within 10 s")
    with pytest.raises(UnknownOutcomeError) as unknown_error:
        unknown.raise_for_outcome()
    assert unknown_error.value.reason == "no response within 10 s"
    with pytest.raises(UnknownOutcomeError, match="no answer"):
        OrderResponse("add_order", 1, OrderOutcome.UNKNOWN).raise_for_outcome()
    with pytest.raises(KrakenConnectionError, match=r"add_order \(req_id 3\) was not sent: closed"):
        OrderResponse("add_order", 3, OrderOutcome.NOT_SENT, error="closed").raise_for_outcome()
    with pytest.raises(KrakenConnectionError, match="the connection closed first"):
        OrderResponse("add_order", 3, OrderOutcome.NOT_SENT).raise_for_outcome()
