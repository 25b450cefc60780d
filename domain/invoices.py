"""Invoices Vercel sends on our behalf, the state machine their lifecycle follows (billing.md 3.3), and what
an installation is shown about them."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import msgspec
from msgspec.structs import replace

from marketplace_provider.domain.notifications import Level, Notification

NEVER = datetime.min.replace(tzinfo=UTC)  # the last change of an invoice first heard of: any event is newer


class InvoiceState(enum.Enum):
    DRAFT = "draft"
    PENDING = "pending"
    SCHEDULED = "scheduled"
    INVOICED = "invoiced"
    PAID = "paid"
    NOTPAID = "notpaid"
    OVERDUE = "overdue"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"


class InvoiceEvent(enum.Enum):
    SCHEDULED = "scheduled"
    INVOICED = "invoiced"  # webhook marketplace.invoice.created
    PAID = "paid"
    NOT_PAID = "notpaid"  # one failed payment attempt; Vercel retries up to 9 times
    OVERDUE = "overdue"  # 15-day window elapsed
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"


S, E = InvoiceState, InvoiceEvent
_BEFORE_INVOICED = (S.DRAFT, S.PENDING, S.SCHEDULED)
_UNPAID = (S.INVOICED, S.NOTPAID, S.OVERDUE)

TRANSITIONS: dict[tuple[InvoiceState, InvoiceEvent], InvoiceState] = {
    (S.DRAFT, E.SCHEDULED): S.SCHEDULED,
    (S.PENDING, E.SCHEDULED): S.SCHEDULED,
    **{(s, E.INVOICED): S.INVOICED for s in _BEFORE_INVOICED},
    # "paid" may overtake "created": it still ends paid
    **{(s, E.PAID): S.PAID for s in (*_BEFORE_INVOICED, *_UNPAID)},
    **{(s, E.NOT_PAID): S.NOTPAID for s in (*_BEFORE_INVOICED, S.INVOICED, S.NOTPAID)},
    **{(s, E.OVERDUE): S.OVERDUE for s in (*_BEFORE_INVOICED, S.INVOICED, S.NOTPAID)},
    **{(s, E.REFUND_REQUESTED): S.REFUND_REQUESTED for s in (*_BEFORE_INVOICED, *_UNPAID, S.PAID)},
    **{(s, E.REFUNDED): S.REFUNDED for s in (*_BEFORE_INVOICED, *_UNPAID, S.PAID, S.REFUND_REQUESTED)},
}


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # Vercel's invoice id
    installation_id: str
    state: InvoiceState
    updated_at: datetime
    external_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    total: str | None = None  # USD, decimal string
    test: bool = False
    failed_attempts: int = 0  # notpaid deliveries counted by us: Vercel's payload carries no attempt number
    notices: int = 0  # distinct webhook events about this invoice (duplicates of one event count once)
    refund_total: str | None = None
    refund_reason: str | None = None


    @classmethod
    def first_heard(cls, invoice_id: str, installation_id: str) -> Invoice:
        """An invoice we hear of for the first time, before its first event moves it."""
        return cls(id=invoice_id, installation_id=installation_id, state=InvoiceState.PENDING, updated_at=NEVER)

    def with_details(self, notice: InvoiceNotice, event: InvoiceEvent) -> Invoice:
        """Fill in what a notice tells about the invoice; facts already known are kept (a refund's amount and
        reason are the refund event's)."""
        invoice = replace(
            self,
            external_id=self.external_id or notice.external_id,
            period_start=self.period_start or notice.period_start,
            period_end=self.period_end or notice.period_end,
            total=self.total or notice.total,
            test=self.test or notice.test,
        )
        if event is InvoiceEvent.REFUNDED:
            invoice = replace(invoice, refund_total=notice.refund_amount, refund_reason=notice.refund_reason)
        return invoice


class InvoiceNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What an invoice event says about one invoice (refunded carries amount and reason instead of totals)."""

    invoice_id: str
    external_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    invoice_date: datetime | None = None
    total: str | None = None
    refund_amount: str | None = None
    refund_reason: str | None = None
    test: bool = False


class InvoiceTransition(msgspec.Struct, frozen=True, kw_only=True):
    """One state change, kept in order for the invoice's history."""

    invoice_id: str
    event: InvoiceEvent
    from_state: InvoiceState | None  # None: the invoice was first heard of with this event
    to_state: InvoiceState
    happened_at: datetime  # the event's createdAt
    webhook_event_id: str | None = None


def apply(invoice: Invoice, event: InvoiceEvent, at: datetime) -> Invoice:
    """Move the invoice by one event that happened at `at`.

    An event older than the invoice's last change, or one the table has no step for (a stale "notpaid"
    after "paid"), leaves the state alone: the lifecycle never goes backwards.
    """
    if at < invoice.updated_at:
        return invoice
    target = TRANSITIONS.get((invoice.state, event))
    if target is None:
        return invoice
    attempts = invoice.failed_attempts + (1 if event is E.NOT_PAID else 0)
    return replace(invoice, state=target, updated_at=at, failed_attempts=attempts)


def take(invoice: Invoice, event: InvoiceEvent, at: datetime) -> Invoice:
    """Take one distinct Vercel event about the invoice: the state moves as `apply` says, and every failed
    payment attempt is counted, even one whose notice arrives after a newer one."""
    moved = apply(invoice, event, at)
    if moved is invoice and event is E.NOT_PAID and at < invoice.updated_at:
        moved = replace(invoice, failed_attempts=invoice.failed_attempts + 1)
    return replace(moved, notices=moved.notices + 1)


def take_notice(
    known: Invoice | None,
    installation_id: str,
    notice: InvoiceNotice,
    event: InvoiceEvent,
    at: datetime,
    webhook_event_id: str | None = None,
) -> tuple[Invoice, InvoiceTransition | None]:
    """The invoice after one Vercel event about it (`known`: as we had it, None when first heard of), and the
    transition to keep in its history: None when its state did not move (a stale or repeated event)."""
    before = known or Invoice.first_heard(notice.invoice_id, installation_id)
    after = take(before.with_details(notice, event), event, at)
    if known is not None and after.state is before.state:
        return after, None
    transition = InvoiceTransition(
        invoice_id=after.id,
        event=event,
        from_state=known.state if known else None,
        to_state=after.state,
        happened_at=at,
        webhook_event_id=webhook_event_id,
    )
    return after, transition


def unpaid(state: InvoiceState) -> bool:
    """Resources are suspended while an invoice is in one of these states."""
    return state in (S.NOTPAID, S.OVERDUE)


class InvoiceItem(msgspec.Struct, frozen=True, kw_only=True):
    total: str  # USD decimal string
    resource_id: str | None = None
    name: str | None = None


class InvoiceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An invoice as Vercel reports it (Get Invoice). `state` is None for a state we do not know."""

    invoice_id: str
    state: InvoiceState | None
    total: str
    items: tuple[InvoiceItem, ...] = ()
    test: bool = False


# ---------------------------------------------------------------- what the installation is shown


def unpaid_notice(owing: list[Invoice], href: str) -> Notification:
    """Resources are suspended while these invoices are unpaid: the worst one (overdue first, then the most
    failed attempts) is named, with a link (`href`) to where the payment method is updated."""
    worst = max(owing, key=lambda i: (i.state is InvoiceState.OVERDUE, i.failed_attempts))
    label = worst.external_id or worst.id
    amount = f" ({worst.total} USD)" if worst.total else ""
    if worst.state is InvoiceState.OVERDUE:
        title = "Invoice overdue: resources suspended"
        message = f"Invoice {label}{amount} is overdue after {worst.failed_attempts} failed payment attempt(s)."
    else:
        title = "Payment failed: resources suspended"
        message = f"Payment attempt {worst.failed_attempts} for invoice {label}{amount} failed."
    more = f" {len(owing) - 1} other invoice(s) are unpaid too." if len(owing) > 1 else ""
    return Notification(
        level=Level.ERROR,
        title=title,
        message=f"{message}{more} Update the payment method to resume them.",
        href=href,
    )


def refund_notice(invoice: Invoice) -> Notification:
    amount = f"{invoice.refund_total} USD" if invoice.refund_total else "A refund"
    reason = f": {invoice.refund_reason}" if invoice.refund_reason else ""
    label = invoice.external_id or invoice.id
    return Notification(level=Level.INFO, title="Invoice refunded", message=f"{amount} of invoice {label} was refunded{reason}.")
