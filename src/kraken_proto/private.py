"""Private stream events (executions, balances) and their wire frames.

Both private channels are decoded in one pass straight into these frozen Structs: the
frames (:class:`ExecutionsFrame`, :class:`BalancesFrame`) are tagged by ``channel`` like the
public ones in :mod:`kraken_proto.wire`, and their ``data`` entries are the public events
themselves. Field names are Kraken's. Every number is an exact ``Decimal`` (JSON numbers in
plain or exponent form, ``8.528e-05``, and quoted numbers are all accepted); unknown fields
are ignored, so new fields Kraken adds do not break decoding; a field of the wrong type
raises ``msgspec.ValidationError`` (the protocol turns that into a ``ProtocolError``).
Numbers are checked before the protocol emits an entry (finite, and not negative where
Kraken's never are: see :mod:`kraken_proto.wire`); a frame holding one that is not is
dropped whole, so the sequence check sees the hole and the stream is resynced under
``GapPolicy.RESYNC``.

Execution reports are sparse: only ``exec_type`` is always present, every other field is
``None`` when Kraken did not send it. ``sequence``, ``snapshot`` and ``received_at`` are not
on the wire entries: the protocol sets them from the frame (its top-level ``sequence`` and
``type``) and the arrival time.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated

import msgspec

__all__ = [
    "Balance",
    "BalanceWallet",
    "BalancesFrame",
    "Contingent",
    "Execution",
    "ExecutionTriggers",
    "ExecutionsFrame",
    "Fee",
    "FINAL_ORDER_STATUSES",
    "ExecType",
    "GapDetected",
    "OrderStatus",
]


class ExecType(str, enum.Enum):
    """The ``exec_type`` values of execution reports. ``Execution.exec_type`` stays the
    wire string (so a new value Kraken adds still decodes); compare it with these
    (``report.exec_type == ExecType.TRADE``)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    FILLED = "filled"
    ICEBERG_REFILL = "iceberg_refill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    AMENDED = "amended"
    RESTATED = "restated"
    STATUS = "status"


class OrderStatus(str, enum.Enum):
    """The ``order_status`` values of execution reports (compare like :class:`ExecType`)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"


FINAL_ORDER_STATUSES = frozenset({"filled", "canceled", "expired"})
"""The ``order_status`` values after which an order receives no further reports."""


class Fee(msgspec.Struct, frozen=True, gc=False):
    """One fee charged on a fill: ``qty`` of ``asset``."""

    asset: str
    qty: Decimal


class ExecutionTriggers(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """Trigger details of a triggered order (stop-loss, take-profit, trailing-stop...).

    ``reference`` is ``"index"`` or ``"last"``; ``price_type`` is ``"static"``, ``"pct"``
    or ``"quote"``; ``status`` is ``"triggered"`` or ``"untriggered"``.
    """

    reference: str | None = None
    price: Decimal | None = None
    price_type: str | None = None
    actual_price: Decimal | None = None
    peak_price: Decimal | None = None
    last_price: Decimal | None = None
    status: str | None = None
    timestamp: str | None = None


class Contingent(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """The secondary (OTO) order template attached to an order."""

    order_type: str | None = None
    trigger_price: Decimal | None = None
    trigger_price_type: str | None = None
    limit_price: Decimal | None = None
    limit_price_type: str | None = None


class Execution(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """One execution report (sparse: which fields are set depends on exec_type).

    ``exec_type`` is one of ``pending_new``, ``new``, ``trade`` (a fill), ``filled``,
    ``iceberg_refill``, ``canceled``, ``expired``, ``amended``, ``restated``, ``status``;
    ``order_status`` one of ``pending_new``, ``new``, ``partially_filled``, ``filled``,
    ``canceled``, ``expired``. ``time_in_force`` is upper case here (``GTC``, ``GTD``,
    ``IOC``). ``cancel_reason``, ``stop_price``, ``trigger`` and ``triggered_price`` are
    deprecated by Kraken (use ``reason`` and ``triggers``) but kept when sent.

    ``sequence`` is the frame's sequence number, ``snapshot`` tells whether the report came
    in the subscription's snapshot, ``received_at`` is the driver's monotonic arrival time.
    The ``repr`` shows only the fields that are set.
    """

    exec_type: str
    order_id: str | None = None
    cl_ord_id: str | None = None
    order_userref: int | None = None
    exec_id: str | None = None
    trade_id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ext_ord_id: str | None = None
    ext_exec_id: str | None = None
    ord_ref_id: str | None = None
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    order_qty: Decimal | None = None
    cash_order_qty: Decimal | None = None
    display_qty: Decimal | None = None
    display_qty_remain: Decimal | None = None
    limit_price: Decimal | None = None
    limit_price_type: str | None = None
    time_in_force: str | None = None
    effective_time: str | None = None
    expire_time: str | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    margin: bool | None = None
    no_mpp: bool | None = None
    sender_sub_id: str | None = None
    last_qty: Decimal | None = None
    last_price: Decimal | None = None
    cost: Decimal | None = None
    cum_qty: Decimal | None = None
    cum_cost: Decimal | None = None
    avg_price: Decimal | None = None
    liquidity_ind: str | None = None
    margin_borrow: bool | None = None
    fees: tuple[Fee, ...] | None = None
    fee_usd_equiv: Decimal | None = None
    fee_ccy_pref: str | None = None
    position_status: str | None = None
    liquidated: bool | None = None
    amended: bool | None = None
    reason: str | None = None
    timestamp: str | None = None
    user: str | None = None
    order_status: str | None = None
    triggers: ExecutionTriggers | None = None
    contingent: Contingent | None = None
    stop_price: Decimal | None = None
    cancel_reason: str | None = None
    trigger: str | None = None
    triggered_price: Decimal | None = None
    sequence: int = 0
    snapshot: bool = False
    received_at: float = 0.0

    @property
    def is_fill(self) -> bool:
        """Whether this report is a fill (``exec_type == "trade"``)."""
        return self.exec_type == "trade"

    @property
    def is_final(self) -> bool:
        """Whether the order is done: ``order_status`` is filled, canceled or expired."""
        return self.order_status in FINAL_ORDER_STATUSES


class BalanceWallet(msgspec.Struct, frozen=True, gc=False):
    """One wallet of an asset in a balances snapshot.

    ``type`` is ``"spot"`` or ``"earn"``; ``id`` names the wallet (``"main"``, ``"flex"``,
    ``"bonded"``, ``"flexible"``, ``"liquid"``, ``"locked"``...).
    """

    type: str
    id: str
    balance: Decimal


class Balance(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """A balances entry: a snapshot row (asset, balance, wallets) or a ledger update.

    A snapshot row has ``asset``, ``asset_class``, ``balance`` (the total) and ``wallets``.
    A ledger update has ``ledger_id``, ``ref_id`` (the ``trade_id`` for trades; a trade
    makes two updates, one debit and one credit, with the same ``ref_id``), ``amount``
    (signed), ``fee``, ``balance`` (the asset's total after the event), ``type``,
    ``subtype``, ``category``, ``wallet_type`` and ``wallet_id``. ``user`` is set for
    subaccounts (``users: "all"``).
    """

    asset: str
    asset_class: str | None = None
    balance: Decimal | None = None
    wallets: tuple[BalanceWallet, ...] | None = None
    ledger_id: str | None = None
    ref_id: str | None = None
    timestamp: str | None = None
    amount: Decimal | None = None
    fee: Decimal | None = None
    type: str | None = None
    subtype: str | None = None
    category: str | None = None
    wallet_type: str | None = None
    wallet_id: str | None = None
    user: str | None = None
    sequence: int = 0
    snapshot: bool = False
    received_at: float = 0.0


class GapDetected(msgspec.Struct, frozen=True):
    """A private stream skipped sequence numbers.

    Sequences ``expected`` to ``received - 1`` were missing when ``received`` arrived.
    ``policy`` is the :class:`~kraken_proto.config.GapPolicy` value applied (``"resync"``,
    ``"ignore"`` or ``"buffer"``); under ``"buffer"`` the hole may still be filled later.
    """

    channel: str
    expected: int
    received: int
    policy: str
    received_at: float = 0.0


class ExecutionsFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="executions"):
    """``{"channel":"executions","type":"snapshot|update","data":[...],"sequence":N}``."""

    type: str
    data: tuple[Execution, ...]
    sequence: Annotated[int, msgspec.Meta(ge=0)]


class BalancesFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="balances"):
    """``{"channel":"balances","type":"snapshot|update","data":[...],"sequence":N}``."""

    type: str
    data: tuple[Balance, ...]
    sequence: Annotated[int, msgspec.Meta(ge=0)]
