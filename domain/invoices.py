"""Invoices Vercel sends on our behalf, and the state machine their lifecycle follows (billing.md 3.3)."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec
from msgspec.structs import replace


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
