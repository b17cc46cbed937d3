"""The simulated account: a spot balance per asset and its ledger (KRAKEN-V2.md section 8).

Balances are exact ``Decimal`` totals. Every trade writes two :class:`LedgerEntry` s with
the same ``ref_id`` (the trade's id): one for the base asset and one for the quote asset,
the fee charged on the quote side. ``balance`` in an entry is the asset's total after it,
so for each asset ``previous balance + amount - fee == balance`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType

import msgspec

__all__ = ["DEFAULT_BALANCES", "Account", "LedgerEntry"]

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
    """Spot balances per asset (assets missing from ``balances`` start at 0)."""

    def __init__(self, balances: Mapping[str, Decimal], assets: Iterable[str] = ()) -> None:
        self.balances: dict[str, Decimal] = {asset: Decimal(v) for asset, v in balances.items()}
        """The total of each asset (open orders do not lower it)."""
        for asset in assets:
            self.balances.setdefault(asset, Decimal(0))

    def balance(self, asset: str) -> Decimal:
        """The total of ``asset`` (0 for an unknown asset)."""
        return self.balances.get(asset, Decimal(0))

    def book(
        self, ledger_id: str, ref_id: str, time: float, asset: str, amount: Decimal, fee: Decimal
    ) -> LedgerEntry:
        """Apply ``amount - fee`` to ``asset`` and return the ledger entry."""
        balance = self.balance(asset) + amount - fee
        self.balances[asset] = balance
        return LedgerEntry(ledger_id, ref_id, time, asset, amount, fee, balance)
