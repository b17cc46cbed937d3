"""The simulated account: a spot balance per asset and its ledger (KRAKEN-V2.md section 8).

Balances are exact ``Decimal`` totals. Every trade writes two :class:`LedgerEntry` s with
the same ``ref_id`` (the trade's id): one for the base asset and one for the quote asset,
the fee charged on the quote side. Amounts are rounded half up to the asset's precision
(the instrument channel's: :data:`QUOTE_PRECISION` decimals for a quote currency such as
USD, :data:`BASE_PRECISION` for the others), as Kraken keeps its ledger, so a USD balance
has 4 decimals. ``balance`` in an entry is the asset's total after it, so for each asset
``previous balance + amount - fee == balance`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

import msgspec

__all__ = ["BASE_PRECISION", "DEFAULT_BALANCES", "QUOTE_PRECISION", "Account", "LedgerEntry"]

QUOTE_PRECISION = 4
"""Decimals of a quote currency's balance (USD on Kraken: 4)."""
BASE_PRECISION = 10
"""Decimals of any other asset's balance (BTC on Kraken: 10)."""

DEFAULT_BALANCES: Mapping[str, Decimal] = MappingProxyType(
    {
        "USD": Decimal("1000000"),
        "BTC": Decimal("10"),
        "ETH": Decimal("100"),
        "XRP": Decimal("100000"),
        "SOL": Decimal("1000"),
        "ADA": Decimal("100000"),
        "DOGE": Decimal("1000000"),
        "LTC": Decimal("1000"),
        "DOT": Decimal("10000"),
    }
)
"""The starting balances: plenty of USD and of every base asset of the default pairs."""


class LedgerEntry(msgspec.Struct, frozen=True):
    """One change to one asset's balance; ``time`` is wall-clock seconds."""

    ledger_id: str
    ref_id: str
    time: float
    asset: str
    amount: Decimal
    fee: Decimal
    balance: Decimal
    type: str = "trade"
    category: str = "trade"


class Account:
    """Spot balances per asset (assets missing from ``balances`` start at 0).

    ``precisions`` gives an asset's decimals (default :data:`BASE_PRECISION`).
    """

    def __init__(
        self,
        balances: Mapping[str, Decimal],
        assets: Iterable[str] = (),
        precisions: Mapping[str, int] | None = None,
    ) -> None:
        self.balances: dict[str, Decimal] = {asset: Decimal(v) for asset, v in balances.items()}
        """The total of each asset (open orders do not lower it)."""
        for asset in assets:
            self.balances.setdefault(asset, Decimal(0))
        self.precisions: Mapping[str, int] = MappingProxyType(dict(precisions or {}))
        """The decimals of each asset's ledger amounts (others: :data:`BASE_PRECISION`)."""

    def round(self, asset: str, amount: Decimal) -> Decimal:
        """``amount`` rounded half up to the decimals of ``asset``."""
        places = self.precisions.get(asset, BASE_PRECISION)
        return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)

    def balance(self, asset: str) -> Decimal:
        """The total of ``asset`` (0 for an unknown asset)."""
        return self.balances.get(asset, Decimal(0))

    def book(
        self, ledger_id: str, ref_id: str, time: float, asset: str, amount: Decimal, fee: Decimal
    ) -> LedgerEntry:
        """Apply ``amount - fee`` to ``asset`` and return the ledger entry.

        ``amount`` is rounded to the asset's precision first (``fee`` already is).
        """
        amount = self.round(asset, amount)
        balance = self.balance(asset) + amount - fee
        self.balances[asset] = balance
        return LedgerEntry(ledger_id, ref_id, time, asset, amount, fee, balance)
