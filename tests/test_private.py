"""Private stream events: executions and balances decoded straight from their wire frames."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.private import (
    FINAL_ORDER_STATUSES,
    Balance,
    BalancesFrame,
    BalanceWallet,
    Contingent,
    ExecType,
    Execution,
    ExecutionsFrame,
    ExecutionTriggers,
    Fee,
    GapDetected,
    OrderStatus,
)

D = Decimal
_frames = msgspec.json.Decoder(ExecutionsFrame | BalancesFrame)
_executions = msgspec.json.Decoder(ExecutionsFrame)
_balances = msgspec.json.Decoder(BalancesFrame)

# The three examples of KRAKEN-V2.md section 8 (Kraken's docs), verbatim.
DOC_PENDING_NEW = (
    '{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5",'
    '"order_userref":3,"symbol":"BTC/USD","order_qty":0.005,"cum_cost":0.0,'
    '"time_in_force":"GTC","exec_type":"pending_new","side":"sell","order_type":"limit",'
    '"limit_price_type":"static","limit_price":26500.0,"stop_price":0.0,'
    '"order_status":"pending_new","fee_usd_equiv":0.0,"fee_ccy_pref":"fciq",'
    '"timestamp":"2023-09-22T10:33:05.709950Z"}],"sequence":8}'
)
DOC_NEW = (
    '{"channel":"executions","type":"update","data":[{"timestamp":"2023-09-22T10:33:05.709982Z",'
    '"order_status":"new","exec_type":"new","order_userref":3,'
    '"order_id":"OK4GJX-KSTLS-7DZZO5"}],"sequence":9}'
)
DOC_TRADE = (
    '{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5",'
    '"order_userref":3,"exec_id":"TGBB7L-HT5LX-J3BZ4A","exec_type":"trade",'
    '"trade_id":62887576,"symbol":"BTC/USD","side":"sell","last_qty":0.005,'
    '"last_price":26599.9,"liquidity_ind":"t","cost":132.9995,"order_type":"limit",'
    '"timestamp":"2023-09-22T10:33:05.709993Z","order_status":"partially_filled",'
    '"cum_qty":0.005,"cum_cost":132.9995,"avg_price":26599.9,"fee_usd_equiv":0.3458,'
    '"fees":[{"asset":"USD","qty":0.3458}]}],"sequence":10}'
)

BALANCES_SNAPSHOT = (
    '{"channel":"balances","type":"snapshot","data":['
    '{"asset":"BTC","asset_class":"currency","balance":1.2e-05,"wallets":['
    '{"type":"spot","id":"main","balance":0.00001},{"type":"earn","id":"flex","balance":2e-06}]},'
    '{"asset":"USD","asset_class":"currency","balance":"1000.50","wallets":[]}],'
    '"sequence":1}'
)
BALANCES_LEDGER = (
    '{"channel":"balances","type":"update","data":['
    '{"ledger_id":"LXXURB-ZSJY5-JBLOCX","ref_id":"TGBB7L-HT5LX-J3BZ4A",'
    '"timestamp":"2023-09-22T10:33:05.709993Z","type":"trade","asset":"USD",'
    '"asset_class":"currency","category":"trade","wallet_type":"spot","wallet_id":"main",'
    '"amount":132.9995,"fee":0.3458,"balance":1132.6537},'
    '{"ledger_id":"LQSMZE-U3FCX-NNXQ3A","ref_id":"TGBB7L-HT5LX-J3BZ4A",'
    '"timestamp":"2023-09-22T10:33:05.709993Z","type":"trade","asset":"BTC",'
    '"asset_class":"currency","category":"trade","wallet_type":"spot","wallet_id":"main",'
    '"amount":-0.005,"fee":0,"balance":0.995,"subtype":"spottostaking","future_field":[1]}],'
    '"sequence":2}'
)


def _only(text: str) -> Execution:
    frame = _executions.decode(text)
    (execution,) = frame.data
    return execution


# -- executions: the documented examples ----------------------------------------------------


def test_doc_pending_new_decodes_every_field_exactly() -> None:
    frame = _frames.decode(DOC_PENDING_NEW)
    assert isinstance(frame, ExecutionsFrame)
    assert (frame.type, frame.sequence, len(frame.data)) == ("update", 8, 1)
    e = frame.data[0]
    assert e == Execution(
        exec_type="pending_new",
        order_id="OK4GJX-KSTLS-7DZZO5",
        order_userref=3,
        symbol="BTC/USD",
        side="sell",
        order_type="limit",
        order_qty=D("0.005"),
        limit_price=D("26500.0"),
        limit_price_type="static",
        time_in_force="GTC",
        cum_cost=D("0.0"),
        fee_usd_equiv=D("0.0"),
        fee_ccy_pref="fciq",
        order_status="pending_new",
        timestamp="2023-09-22T10:33:05.709950Z",
        stop_price=D("0.0"),
    )
    assert isinstance(e.order_qty, Decimal) and isinstance(e.limit_price, Decimal)
    assert format(e.limit_price, "f") == "26500.0"  # the wire's digits are kept
    assert e.order_userref == 3 and isinstance(e.order_userref, int)
    assert e.fees is None and e.last_qty is None and e.triggers is None
    assert (e.sequence, e.snapshot, e.received_at) == (0, False, 0.0)  # set by the protocol
    assert not e.is_fill and not e.is_final


def test_doc_new_is_sparse() -> None:
    e = _only(DOC_NEW)
    assert e == Execution(
        exec_type="new",
        order_id="OK4GJX-KSTLS-7DZZO5",
        order_userref=3,
        order_status="new",
        timestamp="2023-09-22T10:33:05.709982Z",
    )
    assert e.symbol is None and e.side is None and e.order_qty is None
    assert not e.is_fill and not e.is_final
    # the repr shows only what Kraken sent
    assert repr(e) == (
        "Execution(exec_type='new', order_id='OK4GJX-KSTLS-7DZZO5', order_userref=3, "
        "timestamp='2023-09-22T10:33:05.709982Z', order_status='new')"
    )


def test_doc_trade_is_a_fill_with_fees() -> None:
    frame = _executions.decode(DOC_TRADE)
    assert frame.sequence == 10
    (e,) = frame.data
    assert e.is_fill and not e.is_final
    assert (e.exec_id, e.trade_id, e.liquidity_ind) == ("TGBB7L-HT5LX-J3BZ4A", 62887576, "t")
    assert (e.last_qty, e.last_price, e.cost) == (D("0.005"), D("26599.9"), D("132.9995"))
    assert (e.cum_qty, e.cum_cost, e.avg_price) == (D("0.005"), D("132.9995"), D("26599.9"))
    assert e.fee_usd_equiv == D("0.3458")
    assert e.fees == (Fee(asset="USD", qty=D("0.3458")),)
    assert e.order_status == "partially_filled"
    assert e.last_price is not None and e.last_qty is not None
    assert e.last_price * e.last_qty == D("132.9995")  # exact arithmetic


# -- executions: numbers, sparse frames, unknown fields, bad types ---------------------------


def test_exponent_and_quoted_numbers_are_exact() -> None:
    e = _only(
        '{"channel":"executions","type":"update","sequence":4,"data":[{"exec_type":"trade",'
        '"last_qty":8.528e-05,"last_price":"64000.1","cost":5.45792853e0,'
        '"fees":[{"asset":"USDC","qty":1.5e-05},{"asset":"BTC","qty":1E-8}],'
        '"order_qty":1.00000000}]}'
    )
    assert e.last_qty == D("0.00008528")
    assert format(e.last_qty, "f") == "0.00008528"
    assert e.last_price == D("64000.1")
    assert e.cost == D("5.45792853")
    assert e.fees == (Fee("USDC", D("0.000015")), Fee("BTC", D("0.00000001")))
    assert format(e.fees[1].qty, "f") == "0.00000001"
    assert format(e.order_qty, "f") == "1.00000000"


def test_only_exec_type_is_required() -> None:
    e = _only(
        '{"channel":"executions","type":"update","data":[{"exec_type":"status"}],"sequence":1}'
    )
    assert e == Execution("status")
    with pytest.raises(msgspec.ValidationError, match="exec_type"):
        _executions.decode('{"channel":"executions","type":"update","data":[{}],"sequence":1}')


def test_unknown_fields_are_ignored() -> None:
    e = _only(
        '{"channel":"executions","type":"update","sequence":5,"extra":{"a":1},"data":[{'
        '"exec_type":"canceled","order_id":"O1","order_status":"canceled",'
        '"brand_new_field":[1,2,{"x":null}],"ratecount":12,"reason":"User requested"}]}'
    )
    assert e == Execution(
        "canceled", order_id="O1", order_status="canceled", reason="User requested"
    )
    assert e.is_final


def test_every_documented_field_decodes() -> None:
    e = _only(
        '{"channel":"executions","type":"snapshot","sequence":1,"data":[{'
        '"exec_type":"restated","order_id":"O2","cl_ord_id":"my-1","order_userref":-7,'
        '"exec_id":"E1","trade_id":5,"ext_ord_id":"x-ord","ext_exec_id":"x-exec",'
        '"ord_ref_id":"R1","symbol":"ETH/USD","side":"buy","order_type":"iceberg",'
        '"order_qty":10,"cash_order_qty":2e3,"display_qty":1,"display_qty_remain":0.5,'
        '"limit_price":3000.25,"limit_price_type":"quote","time_in_force":"GTD",'
        '"effective_time":"2024-01-01T00:00:00Z","expire_time":"2024-01-02T00:00:00Z",'
        '"post_only":true,"reduce_only":false,"margin":true,"no_mpp":false,'
        '"sender_sub_id":"sub","liquidity_ind":"m","margin_borrow":true,'
        '"fee_ccy_pref":"fcib","position_status":"opened","liquidated":false,"amended":true,'
        '"reason":"Post only order","user":"u1","order_status":"expired",'
        '"triggers":{"reference":"last","price":-2.5,"price_type":"pct","actual_price":2900,'
        '"peak_price":3100.5,"last_price":3000,"status":"triggered",'
        '"timestamp":"2024-01-01T00:00:01Z","unknown":1},'
        '"contingent":{"order_type":"stop-loss","trigger_price":2800,'
        '"trigger_price_type":"static","limit_price":2790.5,"limit_price_type":"static"},'
        '"cancel_reason":"old","trigger":"index","triggered_price":2999.5}]}'
    )
    assert (e.cl_ord_id, e.order_userref, e.ext_ord_id, e.ext_exec_id, e.ord_ref_id) == (
        "my-1",
        -7,
        "x-ord",
        "x-exec",
        "R1",
    )
    assert (e.cash_order_qty, e.display_qty, e.display_qty_remain) == (D(2000), D(1), D("0.5"))
    assert (e.effective_time, e.expire_time, e.time_in_force) == (
        "2024-01-01T00:00:00Z",
        "2024-01-02T00:00:00Z",
        "GTD",
    )
    assert (e.post_only, e.reduce_only, e.margin, e.no_mpp) == (True, False, True, False)
    assert (e.margin_borrow, e.liquidated, e.amended) == (True, False, True)
    assert (e.sender_sub_id, e.position_status, e.user, e.fee_ccy_pref) == (
        "sub",
        "opened",
        "u1",
        "fcib",
    )
    assert e.triggers == ExecutionTriggers(
        reference="last",
        price=D("-2.5"),
        price_type="pct",
        actual_price=D(2900),
        peak_price=D("3100.5"),
        last_price=D(3000),
        status="triggered",
        timestamp="2024-01-01T00:00:01Z",
    )
    assert e.contingent == Contingent(
        order_type="stop-loss",
        trigger_price=D(2800),
        trigger_price_type="static",
        limit_price=D("2790.5"),
        limit_price_type="static",
    )
    assert (e.cancel_reason, e.trigger, e.triggered_price) == ("old", "index", D("2999.5"))
    assert e.is_final and not e.is_fill


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ('{"exec_type":1}', "exec_type"),
        ('{"exec_type":"new","order_qty":true}', "order_qty"),
        ('{"exec_type":"new","order_qty":"abc"}', "order_qty"),
        ('{"exec_type":"new","order_userref":"3"}', "order_userref"),
        ('{"exec_type":"new","trade_id":1.5}', "trade_id"),
        ('{"exec_type":"new","post_only":"yes"}', "post_only"),
        ('{"exec_type":"new","fees":{"asset":"USD","qty":1}}', "fees"),
        ('{"exec_type":"new","fees":[{"asset":"USD"}]}', "qty"),
        ('{"exec_type":"new","triggers":[]}', "triggers"),
        ('{"exec_type":"new","contingent":{"trigger_price":"x"}}', "trigger_price"),
    ],
)
def test_bad_types_raise_validation_error_naming_the_field(entry: str, path: str) -> None:
    text = f'{{"channel":"executions","type":"update","data":[{entry}],"sequence":1}}'
    with pytest.raises(msgspec.ValidationError, match=path):
        _executions.decode(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"channel":"executions","type":"update","data":[]}',  # no sequence
        '{"channel":"executions","type":"update","data":[],"sequence":"1"}',
        '{"channel":"executions","type":"update","data":{},"sequence":1}',
        '{"channel":"executions","data":[],"sequence":1}',
    ],
)
def test_bad_frames_raise_validation_error(text: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        _executions.decode(text)


def test_frame_tag_selects_the_channel() -> None:
    empty = _frames.decode('{"channel":"executions","type":"snapshot","data":[],"sequence":1}')
    assert empty == ExecutionsFrame("snapshot", (), 1)
    with pytest.raises(msgspec.ValidationError, match="channel"):
        _frames.decode('{"channel":"book","type":"update","data":[],"sequence":1}')


def test_encoding_round_trips_exact_numbers() -> None:
    frame = _executions.decode(DOC_TRADE)
    encoded = msgspec.json.Encoder(decimal_format="number").encode(frame)
    assert _executions.decode(encoded) == frame
    assert b'"channel":"executions"' in encoded
    assert b'"last_price":26599.9' in encoded


@given(
    exec_type=st.sampled_from(
        [
            "pending_new",
            "new",
            "trade",
            "filled",
            "iceberg_refill",
            "canceled",
            "expired",
            "amended",
            "restated",
            "status",
        ]
    ),
    status=st.none()
    | st.sampled_from(["pending_new", "new", "partially_filled", "filled", "canceled"])
    | st.just("expired"),
)
def test_is_fill_and_is_final(exec_type: str, status: str | None) -> None:
    e = Execution(exec_type, order_status=status)
    assert e.is_fill is (exec_type == "trade")
    assert e.is_final is (status in {"filled", "canceled", "expired"})


def test_final_statuses() -> None:
    assert frozenset({"filled", "canceled", "expired"}) == FINAL_ORDER_STATUSES


@given(
    qty=st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**9))
    | st.decimals(allow_nan=False, allow_infinity=False, max_value=10**12, min_value=-(10**12)),
    form=st.sampled_from(["f", "e", "E", "quoted"]),
)
def test_any_decimal_number_decodes_exactly(qty: Decimal, form: str) -> None:
    token = f'"{qty}"' if form == "quoted" else format(qty, form)
    e = _only(
        '{"channel":"executions","type":"update","sequence":1,'
        f'"data":[{{"exec_type":"trade","last_qty":{token}}}]}}'
    )
    assert e.last_qty == qty


def test_events_are_frozen() -> None:
    e = Execution("new")
    with pytest.raises(AttributeError):
        e.exec_type = "trade"  # type: ignore[misc]
    b = Balance("BTC")
    with pytest.raises(AttributeError):
        b.asset = "ETH"  # type: ignore[misc]


# -- balances ---------------------------------------------------------------------------


def test_balances_snapshot_rows() -> None:
    frame = _frames.decode(BALANCES_SNAPSHOT)
    assert isinstance(frame, BalancesFrame)
    assert (frame.type, frame.sequence) == ("snapshot", 1)
    btc, usd = frame.data
    assert btc == Balance(
        asset="BTC",
        asset_class="currency",
        balance=D("0.000012"),
        wallets=(
            BalanceWallet(type="spot", id="main", balance=D("0.00001")),
            BalanceWallet(type="earn", id="flex", balance=D("0.000002")),
        ),
    )
    assert btc.wallets is not None
    assert sum(w.balance for w in btc.wallets) == btc.balance  # exact arithmetic
    assert usd == Balance("USD", "currency", D("1000.50"), ())
    assert format(usd.balance, "f") == "1000.50"
    assert btc.ledger_id is None and btc.amount is None
    assert repr(usd) == (
        "Balance(asset='USD', asset_class='currency', balance=Decimal('1000.50'), wallets=())"
    )


def test_balances_ledger_updates() -> None:
    frame = _balances.decode(BALANCES_LEDGER)
    assert (frame.type, frame.sequence) == ("update", 2)
    credit, debit = frame.data
    assert credit == Balance(
        asset="USD",
        asset_class="currency",
        balance=D("1132.6537"),
        ledger_id="LXXURB-ZSJY5-JBLOCX",
        ref_id="TGBB7L-HT5LX-J3BZ4A",
        timestamp="2023-09-22T10:33:05.709993Z",
        amount=D("132.9995"),
        fee=D("0.3458"),
        type="trade",
        category="trade",
        wallet_type="spot",
        wallet_id="main",
    )
    assert credit.ref_id == debit.ref_id  # one trade, two ledger entries
    assert (debit.asset, debit.amount, debit.fee, debit.balance) == (
        "BTC",
        D("-0.005"),
        D(0),
        D("0.995"),
    )
    assert debit.subtype == "spottostaking" and debit.wallets is None and debit.user is None
    assert (debit.sequence, debit.snapshot, debit.received_at) == (0, False, 0.0)


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ("{}", "asset"),
        ('{"asset":"BTC","balance":"x"}', "balance"),
        ('{"asset":"BTC","amount":[1]}', "amount"),
        ('{"asset":"BTC","wallets":[{"type":"spot","id":"main"}]}', "balance"),
        ('{"asset":"BTC","wallets":[{"type":"spot","id":1,"balance":1}]}', "id"),
    ],
)
def test_bad_balances_raise_validation_error(entry: str, path: str) -> None:
    text = f'{{"channel":"balances","type":"update","data":[{entry}],"sequence":3}}'
    with pytest.raises(msgspec.ValidationError, match=path):
        _balances.decode(text)


# -- gap event ---------------------------------------------------------------------------


def test_gap_detected_event() -> None:
    gap = GapDetected("executions", expected=5, received=9, policy="buffer", received_at=2.5)
    assert (gap.channel, gap.expected, gap.received, gap.policy, gap.received_at) == (
        "executions",
        5,
        9,
        "buffer",
        2.5,
    )
    assert gap == GapDetected("executions", 5, 9, "buffer", 2.5)
    assert GapDetected("balances", 1, 2, "ignore").received_at == 0.0
    assert msgspec.structs.replace(gap, received_at=3.0).received_at == 3.0


def test_exec_type_and_order_status_constants_compare_with_the_wire_strings() -> None:
    report = msgspec.json.decode(
        b'{"exec_type":"trade","order_status":"partially_filled"}', type=Execution
    )
    assert report.exec_type == ExecType.TRADE and report.is_fill
    assert report.order_status == OrderStatus.PARTIALLY_FILLED and not report.is_final
    assert {s.value for s in OrderStatus} >= FINAL_ORDER_STATUSES
