"""Invoices we ask Vercel to send on our behalf (billing.md 3.1): the monthly one and the final one of an
uninstall, and Vercel's answer. What happens to an invoice afterwards is domain/invoices.py."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from marketplace_provider.domain.billing_data import BillingItem, Discount
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.fields import require_aware
from marketplace_provider.domain.periods import Period


class InvoiceTestResult(enum.Enum):
    PAID = "paid"
    NOTPAID = "notpaid"
    OVERDUE = "overdue"


class InvoiceTest(msgspec.Struct, frozen=True, kw_only=True):
    """Test mode: nothing is charged; `result` simulates the outcome."""

    validate: bool = True
    result: InvoiceTestResult | None = None


class InvoiceRequest(msgspec.Struct, frozen=True, kw_only=True):
    invoice_date: datetime
    period: Period
    items: tuple[BillingItem, ...]
    discounts: tuple[Discount, ...] = ()
    external_id: str | None = None  # ours; unique per installation, so a repeat is refused, not doubled
    memo: str | None = None
    final: bool = False  # only while the installation is pending deletion
    test: InvoiceTest | None = None

    def __post_init__(self) -> None:
        require_aware(self.invoice_date, "invoice_date")
        if not self.period.contains(self.invoice_date):
            raise Invalid.field("invoice_date", "must lie within the period")
        if not self.items:
            raise Invalid.field("items", "an invoice needs at least one item")


class SubmittedInvoice(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str | None
    test: bool = False
    validation_errors: tuple[str, ...] = ()
