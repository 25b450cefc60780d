"""Webhook events Vercel sends us (webhooks.md): the envelope, which installation an event concerns, and the
invoice notices among them. The wire format (JSON) is read by the HTTP adapter (adapters/http/webhooks.py), which
hands over typed values; what each event does is in domain/services/webhooks.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.invoices import InvoiceEvent, InvoiceNotice

ID_MAX = 256

# marketplace.invoice.* -> the step of the invoice lifecycle (domain/invoices.py)
INVOICE_EVENTS = {
    "marketplace.invoice.created": InvoiceEvent.INVOICED,
    "marketplace.invoice.paid": InvoiceEvent.PAID,
    "marketplace.invoice.notpaid": InvoiceEvent.NOT_PAID,
    "marketplace.invoice.overdue": InvoiceEvent.OVERDUE,
    "marketplace.invoice.refunded": InvoiceEvent.REFUNDED,
}
REMOVED = ("integration-configuration.removed", "integration-configuration-removed")  # current and legacy names
MEMBER_CHANGED = "marketplace.member.changed"


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A verified delivery, kept raw (the inbox) until it was applied. `body` is the delivery as it came; the
    domain reads its payload only through a `ReadPayload` given by the composition root."""

    id: str
    type: str
    installation_id: str | None
    created_at: datetime
    body: bytes
    received_at: datetime
    delivery_count: int = 1
    applied_at: datetime | None = None
    error: str | None = None  # why applying it failed or did nothing, for the event log


# The payload of a stored delivery, read from its raw body by the adapter that owns the wire format.
ReadPayload = Callable[[bytes], dict[str, Any]]


def new_event(
    *,
    event_id: str,
    event_type: str,
    created_at_ms: int | float,
    payload: dict[str, Any],
    body: bytes,
    received_at: datetime,
) -> StoredEvent:
    """A verified delivery as the inbox keeps it (`body` as it came, `payload` its decoded content); Invalid
    naming the field when the envelope is not one of Vercel's."""
    if not event_id.strip() or len(event_id) > ID_MAX:
        raise Invalid.field("id", "must be the event id")
    if not event_type.strip() or len(event_type) > ID_MAX:
        raise Invalid.field("type", "must be the event type")
    try:
        created_at = datetime.fromtimestamp(created_at_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise Invalid.field("createdAt", "must be a time in milliseconds since the epoch") from None
    return StoredEvent(
        id=event_id,
        type=event_type,
        installation_id=installation_of(payload),
        created_at=created_at,
        body=body,
        received_at=received_at,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() and len(value) <= ID_MAX else None


def installation_of(payload: dict[str, Any]) -> str | None:
    """`configuration.id` first (docs samples put an oac_ id in `installationId`), then `installationId`, then
    the `integrations` list, then the deprecated `installationIds` (gaps.md 23)."""
    configuration = payload.get("configuration")
    if isinstance(configuration, dict) and (found := _text(configuration.get("id"))):
        return found
    if found := _text(payload.get("installationId")):
        return found
    for key, field in (("integrations", "installationId"), ("installationIds", None)):
        listed = payload.get(key)
        if isinstance(listed, list) and listed:
            first = listed[0].get(field) if field and isinstance(listed[0], dict) else listed[0]
            if found := _text(first):
                return found
    return None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _amount(value: object) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return value if amount.is_finite() and amount >= 0 and len(value) <= 32 else None


def invoice_notice(payload: dict[str, Any]) -> InvoiceNotice:
    """Raise Invalid when the payload names no invoice; any other malformed field is left out, not fatal."""
    invoice_id = _text(payload.get("invoiceId"))
    if invoice_id is None:
        raise Invalid.field("payload.invoiceId", "is required for an invoice event")
    period = payload.get("period")
    if not isinstance(period, dict):
        period = {}
    return InvoiceNotice(
        invoice_id=invoice_id,
        external_id=_text(payload.get("externalInvoiceId")),
        period_start=_moment(period.get("start")),
        period_end=_moment(period.get("end")),
        invoice_date=_moment(payload.get("invoiceDate")),
        total=_amount(payload.get("invoiceTotal")),
        refund_amount=_amount(payload.get("amount")),
        refund_reason=_text(payload.get("reason")),
        test=payload.get("test") is True,
    )


def changed_member(payload: dict[str, Any]) -> str | None:
    """The member whose role changed (or who left) in a marketplace.member.changed event; None when unnamed."""
    member_id = payload.get("memberId")
    return member_id if isinstance(member_id, str) and member_id else None
