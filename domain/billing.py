"""What we tell Vercel and what Vercel tells back (vercel-api.md, billing.md 2-4): money, usage, invoices,
balances, events, installation and resource updates, imports, member/account facts, SSO tokens, flags.

Every type checks its own shape when it is built (in `__post_init__`), so a wrong one cannot exist: money is
a two-place non-negative Decimal, never a float; a period runs forwards; cents are whole; an invoice has items.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgspec
from msgspec.structs import force_setattr

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.installations import Account
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.plans import BillingPlan
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.domain.roles import Role

CENT = Decimal("0.01")

# ---------------------------------------------------------------- checks shared by the types below


def _aware(value: object, field: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise Invalid.field(field, "must be a datetime with a time zone")


def _number(value: object, field: str) -> None:
    """A non-negative exact number: int or finite Decimal (never a float, never a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Invalid.field(field, "must be an int or a Decimal")
    if isinstance(value, Decimal) and not value.is_finite():
        raise Invalid.field(field, "must be finite")
    if value < 0:
        raise Invalid.field(field, "must not be negative")


def _text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise Invalid.field(field, "is required")


def _span(start: datetime | None, end: datetime | None, field: str) -> None:
    for name, moment in (("start", start), ("end", end)):
        if moment is not None:
            _aware(moment, f"{field}.{name}")
    if start is not None and end is not None and not start < end:
        raise Invalid.field(field, "start must come before end")


# ---------------------------------------------------------------- money and time


class Money(msgspec.Struct, frozen=True):
    """A USD amount: non-negative, exactly two decimal places. Renders as Vercel wants it: "10.00"."""

    amount: Decimal

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
            raise Invalid.field("amount", "must be a Decimal (never a float)")
        amount = Decimal(amount)
        if not amount.is_finite() or amount < 0:
            raise Invalid.field("amount", "must be a finite amount of at least 0.00")
        try:
            exact = amount.quantize(CENT)
        except InvalidOperation:
            raise Invalid.field("amount", "is too large") from None
        if exact != amount:
            raise Invalid.field("amount", "must have at most two decimal places")
        force_setattr(self, "amount", exact.copy_abs())  # "-0.00" and "10" both normalised

    @classmethod
    def of(cls, amount: Decimal | int) -> Money:
        return cls(amount)

    @classmethod
    def from_cents(cls, cents: int) -> Money:
        if isinstance(cents, bool) or not isinstance(cents, int):
            raise Invalid.field("cents", "must be an int")
        return cls(Decimal(cents) / 100)

    @property
    def cents(self) -> int:
        return int(self.amount * 100)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.amount + other.amount)

    def __lt__(self, other: Money) -> bool:
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= other.amount

    def __str__(self) -> str:
        return str(self.amount)


_DIGITS = frozenset("0123456789")


def usd(text: str) -> Money:
    """Money from a decimal string like "10.00" or "10" (no sign, exponent, spaces or third decimal)."""
    whole, dot, cents = text.partition(".") if isinstance(text, str) else ("", "", "")
    if not whole or not set(whole) <= _DIGITS or (dot and not (1 <= len(cents) <= 2 and set(cents) <= _DIGITS)):
        raise Invalid.field("amount", "must be a USD amount like '10.00'")
    return Money(Decimal(text))


class Period(msgspec.Struct, frozen=True):
    """A billing period; start strictly before end, both with a time zone."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _aware(self.start, "period.start")
        _aware(self.end, "period.end")
        if not self.start < self.end:
            raise Invalid.field("period", "start must come before end")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


# ---------------------------------------------------------------- billing data and invoices


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
        _text(self.billing_plan_id, "item.billing_plan_id")
        _text(self.name, "item.name")
        _text(self.units, "item.units")
        _number(self.quantity, "item.quantity")
        if not isinstance(self.price, Money) or not isinstance(self.total, Money):
            raise Invalid.field("item", "price and total must be Money")
        _span(self.start, self.end, "item")


class Discount(msgspec.Struct, frozen=True, kw_only=True):
    billing_plan_id: str
    name: str
    amount: Money
    resource_id: str | None = None
    details: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        _text(self.billing_plan_id, "discount.billing_plan_id")
        _text(self.name, "discount.name")
        if not isinstance(self.amount, Money):
            raise Invalid.field("discount.amount", "must be Money")
        _span(self.start, self.end, "discount")


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
        _text(self.name, "usage.name")
        _text(self.units, "usage.units")
        if not isinstance(self.type, UsageType):
            raise Invalid.field("usage.type", "must be total, interval or rate")
        _number(self.day_value, "usage.day_value")
        _number(self.period_value, "usage.period_value")
        if self.plan_value is not None:
            _number(self.plan_value, "usage.plan_value")
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
        _aware(self.timestamp, "timestamp")
        _aware(self.eod, "eod")
        if not self.period.contains(self.eod):
            raise Invalid.field("eod", "must lie within the period")


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
        _aware(self.invoice_date, "invoice_date")
        if not self.period.contains(self.invoice_date):
            raise Invalid.field("invoice_date", "must lie within the period")
        if not self.items:
            raise Invalid.field("items", "an invoice needs at least one item")


class SubmittedInvoice(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str | None
    test: bool = False
    validation_errors: tuple[str, ...] = ()


class PrepaymentBalance(msgspec.Struct, frozen=True, kw_only=True):
    """Credit left, in whole USD cents; resource_id None = installation-level credit."""

    currency_value_in_cents: int
    resource_id: str | None = None
    credit: str | None = None  # human text, e.g. "2,000 Tokens"
    name_label: str | None = None  # e.g. "Tokens"

    def __post_init__(self) -> None:
        cents = self.currency_value_in_cents
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise Invalid.field("currency_value_in_cents", "must be a whole number of cents, at least 0")


# ---------------------------------------------------------------- installation and resource updates


class Clear(enum.Enum):
    """Send `null`: remove what Vercel shows (a field left as None is not sent at all)."""

    CLEAR = "clear"


CLEAR = Clear.CLEAR

InstallationStatus = ResourceStatus  # Vercel uses one status enum for both


class InstallationEvent(msgspec.Struct, frozen=True, kw_only=True):
    """installation.updated: Vercel re-reads the installation."""

    billing_plan_id: str | None = None


class ResourceEvent(msgspec.Struct, frozen=True, kw_only=True):
    """resource.updated: Vercel re-reads the resource (partner id)."""

    resource_id: str
    product_id: str | None = None

    def __post_init__(self) -> None:
        _text(self.resource_id, "resource_id")


class InstallationUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Update Installation. None leaves a field as Vercel has it; notification=CLEAR removes it."""

    status: InstallationStatus | None = None
    external_id: str | None = None
    billing_plan: BillingPlan | None = None
    notification: Notification | Clear | None = None


class Ownership(enum.Enum):
    OWNED = "owned"
    LINKED = "linked"  # imported, not billed through Vercel
    SANDBOX = "sandbox"


class ImportedResource(msgspec.Struct, frozen=True, kw_only=True):
    """Import Resource (PUT): a resource made on our side, upserted into the installation."""

    product_id: str
    name: str
    status: ResourceStatus
    ownership: Ownership | None = None
    metadata: dict[str, object] | None = None
    billing_plan: BillingPlan | None = None
    notification: Notification | None = None
    extras: dict[str, object] | None = None
    secrets: tuple[Secret, ...] | None = None

    def __post_init__(self) -> None:
        _text(self.product_id, "product_id")
        _text(self.name, "name")

    @classmethod
    def of(
        cls,
        resource: Resource,
        plan: BillingPlan | None = None,
        ownership: Ownership | None = None,
        extras: dict[str, object] | None = None,
    ) -> ImportedResource:
        return cls(
            product_id=resource.product_id,
            name=resource.name,
            status=resource.status,
            ownership=ownership,
            metadata=resource.metadata,
            billing_plan=plan,
            notification=resource.notification,
            extras=extras,
            secrets=resource.secrets or None,
        )


class ResourceUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Update Resource (PATCH). None leaves a field alone; notification=CLEAR removes it.
    partial_secrets: overwrite only the given secrets instead of replacing the whole set."""

    name: str | None = None
    status: ResourceStatus | None = None
    ownership: Ownership | None = None
    metadata: dict[str, object] | None = None
    billing_plan: BillingPlan | None = None
    notification: Notification | Clear | None = None
    extras: dict[str, object] | None = None
    secrets: tuple[Secret, ...] | None = None
    partial_secrets: bool = False


# ---------------------------------------------------------------- who is on the other side


AccountInfo = Account  # Get Account Information answers the shape the upsert carries: url, name?, contact?


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    role: Role
    global_user_id: str | None = None
    user_email: str | None = None


class SsoTokens(msgspec.Struct, frozen=True, kw_only=True):
    """The SSO code exchange's answer. Verify id_token like any user token; never store it."""

    id_token: str
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    refresh_token: str | None = None

    def __repr__(self) -> str:  # no token reaches a log line
        return f"SsoTokens(token_type={self.token_type!r}, expires_in={self.expires_in!r}, tokens=<redacted>)"

    __str__ = __repr__


# ---------------------------------------------------------------- experimentation (flags) products


class ItemCategory(enum.Enum):
    EXPERIMENT = "experiment"
    FLAG = "flag"


class ExperimentationItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    slug: str
    origin: str  # where the item is managed: a URL into our dashboard
    category: ItemCategory | None = None
    name: str | None = None
    description: str | None = None
    is_archived: bool | None = None
    created_at: int | None = None  # epoch milliseconds
    updated_at: int | None = None

    def __post_init__(self) -> None:
        _text(self.id, "item.id")
        _text(self.slug, "item.slug")
        _text(self.origin, "item.origin")
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise Invalid.field(f"item.{name}", "must be epoch milliseconds")


class ExperimentationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The synced config store's content (Edge Config / Global Config)."""

    items: dict[str, object]
    updated_at: int
    digest: str
    purpose: str | None = None
