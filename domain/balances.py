"""Prepayment credits: purchases Vercel invoiced, turned into balances we grant and report."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

import msgspec

from marketplace_provider.domain.invoices import InvoiceItem


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """Credit left; resource_id None means installation-level credit."""

    currency_value_in_cents: int
    resource_id: str | None = None
    credit: str | None = None
    name_label: str | None = None


class PurchaseResult(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime
    balances: tuple[Balance, ...]


def cents(total: str) -> int:
    """USD decimal string to whole cents, rounding down: we never grant a fraction we were not paid."""
    return int((Decimal(total) * 100).to_integral_value(rounding=ROUND_FLOOR))


def credit(balances: dict[str | None, int], items: tuple[InvoiceItem, ...]) -> dict[str | None, int]:
    """Balances (cents per resource id, None = installation) after crediting the paid invoice items."""
    after = dict(balances)
    for item in items:
        after[item.resource_id] = after.get(item.resource_id, 0) + cents(item.total)
    return after
