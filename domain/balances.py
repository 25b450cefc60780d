"""Prepayment credits: purchases Vercel invoiced, turned into balances we grant and report."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.invoices import InvoiceItem


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """Credit left; resource_id None means installation-level credit."""

    currency_value_in_cents: int
    resource_id: str | None = None
    credit: str | None = None
    name_label: str | None = None


class PrepaymentBalance(msgspec.Struct, frozen=True, kw_only=True):
    """Credit left as we report it to Vercel, in whole USD cents; resource_id None = installation-level credit."""

    currency_value_in_cents: int
    resource_id: str | None = None
    credit: str | None = None  # human text, e.g. "2,000 Tokens"
    name_label: str | None = None  # e.g. "Tokens"

    def __post_init__(self) -> None:
        cents = self.currency_value_in_cents
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise Invalid.field("currency_value_in_cents", "must be a whole number of cents, at least 0")


class PurchaseResult(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime
    balances: tuple[Balance, ...]

    @classmethod
    def of(cls, balances: dict[str | None, int], at: datetime) -> PurchaseResult:
        """The balances (cents per resource id, None = installation) as a purchase answers them, installation
        credit first, then by resource id."""
        ordered = sorted(balances.items(), key=lambda kv: kv[0] or "")
        return cls(
            timestamp=at,
            balances=tuple(Balance(currency_value_in_cents=c, resource_id=r) for r, c in ordered),
        )


def cents(total: str) -> int:
    """USD decimal string to whole cents, rounding down: we never grant a fraction we were not paid."""
    return int((Decimal(total) * 100).to_integral_value(rounding=ROUND_FLOOR))


def credit(balances: dict[str | None, int], items: tuple[InvoiceItem, ...]) -> dict[str | None, int]:
    """Balances (cents per resource id, None = installation) after crediting the paid invoice items."""
    after = dict(balances)
    for item in items:
        after[item.resource_id] = after.get(item.resource_id, 0) + cents(item.total)
    return after
