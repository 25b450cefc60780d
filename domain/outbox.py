"""What we owe Vercel: messages recorded with the change that caused them, delivered later by the worker.

Every message states an absolute fact (this notification, this status, these secrets, this period's running
totals, the invoice with this external id), never an increment, so delivering one twice after a crash is
harmless. Messages of one installation are delivered in the order they were recorded.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import ClassVar

import msgspec

from marketplace_provider.domain.billing import BillingData, InvoiceRequest, PrepaymentBalance
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.resources import ResourceStatus, Secret


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    # True: the message carries secrets, so storage seals it and shows operators only `public()`.
    sensitive: ClassVar[bool] = False

    def public(self) -> dict[str, object]:
        """What an operator may see of the message (outbox listings, logs)."""
        return msgspec.to_builtins(self)


class SetInstallationNotification(Message, tag="installation.notification"):
    """Show this notification on the installation in Vercel's dashboard; None removes it."""

    notification: Notification | None


class SetResourceStatus(Message, tag="resource.status"):
    resource_id: str
    status: ResourceStatus


class PushResourceSecrets(Message, tag="resource.secrets"):
    """The resource's secrets after a rotation that finished later (partial: only these names change)."""

    sensitive: ClassVar[bool] = True
    resource_id: str
    secrets: tuple[Secret, ...]
    partial: bool = False

    def public(self) -> dict[str, object]:
        return {"kind": "resource.secrets", "resource_id": self.resource_id, "names": [s.name for s in self.secrets]}

    def __repr__(self) -> str:
        return f"PushResourceSecrets(resource_id={self.resource_id!r}, secrets=<{len(self.secrets)} redacted>)"


class AnnounceChange(Message, tag="event"):
    """Ask Vercel to re-read the installation (resource_id None) or one resource."""

    resource_id: str | None = None
    billing_plan_id: str | None = None


class SubmitBillingData(Message, tag="billing.data"):
    data: BillingData


class SubmitInvoice(Message, tag="billing.invoice"):
    """external_id is required: Vercel refuses a second invoice with the same one, so a repeat cannot bill twice."""

    invoice: InvoiceRequest

    def __post_init__(self) -> None:
        if not self.invoice.external_id:
            raise Invalid.field("invoice.external_id", "is required for an invoice sent through the outbox")


class ReportBalances(Message, tag="billing.balances"):
    """Credit left (absolute values), which Vercel's automatic top-up thresholds read."""

    timestamp: datetime
    balances: tuple[PrepaymentBalance, ...]

    @classmethod
    def of(cls, balances: dict[str | None, int], at: datetime) -> ReportBalances:
        """From cents per resource id (None: installation-level credit)."""
        ordered = sorted(balances.items(), key=lambda kv: kv[0] or "")
        return cls(
            timestamp=at,
            balances=tuple(PrepaymentBalance(currency_value_in_cents=max(c, 0), resource_id=r) for r, c in ordered),
        )


class FinalizeInstallation(Message, tag="installation.finalize"):
    """No more invoices will come; once Vercel has it, the installation's access token stops working."""


OutboxMessage = (
    SetInstallationNotification
    | SetResourceStatus
    | PushResourceSecrets
    | AnnounceChange
    | SubmitBillingData
    | SubmitInvoice
    | ReportBalances
    | FinalizeInstallation
)


class OutboxState(enum.Enum):
    PENDING = "pending"  # not delivered yet (never tried, or waiting for its next attempt)
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up; kept with its last error until an operator retries it


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    seq: int  # recording order; delivery order within an installation
    installation_id: str
    message: OutboxMessage
    created_at: datetime
    due_at: datetime
    attempts: int = 0
    last_error: str | None = None
    state: OutboxState = OutboxState.PENDING

    @property
    def kind(self) -> str:
        return type(self.message).__struct_config__.tag  # type: ignore[return-value]


class OutboxCounts(msgspec.Struct, frozen=True, kw_only=True):
    pending: int  # never tried yet
    retrying: int  # failed at least once, will be tried again
    dead: int


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with jitter; after `max_attempts` failures a message is dead."""

    max_attempts: int = 10
    first_delay_seconds: float = 2.0
    max_delay_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.first_delay_seconds <= 0 or self.max_delay_seconds < self.first_delay_seconds:
            raise Invalid.field("retry_policy", "needs max_attempts >= 1 and 0 < first delay <= max delay")

    def next_attempt(self, attempts: int, now: datetime, jitter: float) -> datetime | None:
        """When to try again after `attempts` failures (jitter in [0, 1)); None: give up."""
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempts - 1))
        return now + timedelta(seconds=ceiling * (0.5 + jitter / 2))
