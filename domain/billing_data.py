"""Interim billing and usage (billing.md 2): what an installation used and owes so far in a period, shown by
Vercel but never charged. Charges and metrics are also the lines of an invoice (domain/invoice_requests.py)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.fields import require_aware, require_quantity, require_span, require_text
from marketplace_provider.domain.money import Money
from marketplace_provider.domain.periods import Period


class BillingItem(msgspec.Struct, frozen=True, kw_only=True):
    """One line of interim billing or of an invoice. resource_id None = installation-wide."""

    billing_plan_id: str
    name: str
    price: Money  # per unit
    quantity: int | Decimal
    units: str
    total: Money
    resource_id: str | None = None
    details: str | None = None
    start: datetime | None = None  # only when it differs from the period (e.g. a plan change)
    end: datetime | None = None

    def __post_init__(self) -> None:
        require_text(self.billing_plan_id, "item.billing_plan_id")
        require_text(self.name, "item.name")
        require_text(self.units, "item.units")
        require_quantity(self.quantity, "item.quantity")
        if not isinstance(self.price, Money) or not isinstance(self.total, Money):
            raise Invalid.field("item", "price and total must be Money")
        require_span(self.start, self.end, "item")


class Discount(msgspec.Struct, frozen=True, kw_only=True):
    billing_plan_id: str
    name: str
    amount: Money
    resource_id: str | None = None
    details: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        require_text(self.billing_plan_id, "discount.billing_plan_id")
        require_text(self.name, "discount.name")
        if not isinstance(self.amount, Money):
            raise Invalid.field("discount.amount", "must be Money")
        require_span(self.start, self.end, "discount")


class UsageType(enum.Enum):
    TOTAL = "total"  # a measured total (database size)
    INTERVAL = "interval"  # used during the period (queries)
    RATE = "rate"  # a rate (queries per second)


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """One metric. period_value is the running total for the period, never an increment."""

    name: str
    type: UsageType
    units: str
    day_value: int | Decimal
    period_value: int | Decimal
    plan_value: int | Decimal | None = None  # the plan's limit for the period
    resource_id: str | None = None  # None = installation-level

    def __post_init__(self) -> None:
        require_text(self.name, "usage.name")
        require_text(self.units, "usage.units")
        if not isinstance(self.type, UsageType):
            raise Invalid.field("usage.type", "must be total, interval or rate")
        require_quantity(self.day_value, "usage.day_value")
        require_quantity(self.period_value, "usage.period_value")
        if self.plan_value is not None:
            require_quantity(self.plan_value, "usage.plan_value")
        if self.type is UsageType.INTERVAL and self.period_value < self.day_value:
            raise Invalid.field("usage.period_value", "is the running total: it cannot be below the day's value")


class BillingData(msgspec.Struct, frozen=True, kw_only=True):
    """Interim billing and usage (display only: it never charges)."""

    timestamp: datetime  # our clock; the latest wins for a day
    eod: datetime  # end of the UTC day the data belongs to
    period: Period
    items: tuple[BillingItem, ...]
    usage: tuple[Usage, ...]
    discounts: tuple[Discount, ...] = ()

    def __post_init__(self) -> None:
        require_aware(self.timestamp, "timestamp")
        require_aware(self.eod, "eod")
        if not self.period.contains(self.eod):
            raise Invalid.field("eod", "must lie within the period")
