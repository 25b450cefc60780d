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

from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.experimentation import ExperimentationItem
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.domain.updates import ImportedResource


# Subclasses say frozen=True again: msgspec inherits it, but a type checker reads each class statement alone.
class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    # True: the message carries secrets, so storage seals it and shows operators only `public()`.
    sensitive: ClassVar[bool] = False

    def public(self) -> dict[str, object]:
        """What an operator may see of the message (outbox listings, logs)."""
        builtins: dict[str, object] = msgspec.to_builtins(self)
        return builtins


class SetInstallationNotification(Message, frozen=True, tag="installation.notification"):
    """Show this notification on the installation in Vercel's dashboard; None removes it."""

    notification: Notification | None


class Sealed(Message, frozen=True):
    """A message that carries secrets: storage seals it whole; operators and logs see the secrets' names only."""

    sensitive: ClassVar[bool] = True

    def public(self) -> dict[str, object]:
        return _names_only(msgspec.to_builtins(self))  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.public()!r})"

    __str__ = __repr__


def _names_only(value: object) -> object:
    """Every `secrets` list reduced to the secrets' names, at any depth."""
    if isinstance(value, dict):
        return {
            key: [s["name"] for s in item] if key == "secrets" and isinstance(item, tuple | list) else _names_only(item)
            for key, item in value.items()
        }
    if isinstance(value, tuple | list):
        return [_names_only(item) for item in value]
    return value


class SetResourceStatus(Message, frozen=True, tag="resource.status"):
    resource_id: str
    status: ResourceStatus


class SetResourceNotification(Message, frozen=True, tag="resource.notification"):
    """Show this notification on the resource in Vercel's dashboard (Update Resource); None removes it."""

    resource_id: str
    notification: Notification | None


class PushResourceSecrets(Sealed, frozen=True, tag="resource.secrets"):
    """The resource's secrets after a rotation done later or by the provider (partial: only these names change)."""

    resource_id: str
    secrets: tuple[Secret, ...]
    partial: bool = False


class FinishProvisioning(Sealed, frozen=True, tag="resource.provisioned"):
    """An asynchronous provisioning is done: the resource's status and its whole set of secrets, in one Update
    Resource call, so that Vercel never shows it ready without its secrets."""

    resource_id: str
    status: ResourceStatus
    secrets: tuple[Secret, ...]


class ImportResource(Sealed, frozen=True, tag="resource.import"):
    """A resource made on our side, as Vercel must have it (Import Resource, an upsert)."""

    resource_id: str
    resource: ImportedResource


class AnnounceChange(Message, frozen=True, tag="event"):
    """Ask Vercel to re-read the installation (resource_id None) or one resource."""

    resource_id: str | None = None
    billing_plan_id: str | None = None


class SubmitBillingData(Message, frozen=True, tag="billing.data"):
    data: BillingData


class SubmitInvoice(Message, frozen=True, tag="billing.invoice"):
    """external_id is required: Vercel refuses a second invoice with the same one, so a repeat cannot bill twice."""

    invoice: InvoiceRequest

    def __post_init__(self) -> None:
        if not self.invoice.external_id:
            raise Invalid.field("invoice.external_id", "is required for an invoice sent through the outbox")


class ReportBalances(Message, frozen=True, tag="billing.balances"):
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


class FinalizeInstallation(Message, frozen=True, tag="installation.finalize"):
    """No more invoices will come; once Vercel has it, the installation's access token stops working."""


class CreateExperimentationItems(Message, frozen=True, tag="experimentation.items"):
    """These flags or experiments exist, as given (delivered again, they are updated to the same)."""

    resource_id: str
    items: tuple[ExperimentationItem, ...]


class UpdateExperimentationItem(Message, frozen=True, tag="experimentation.item"):
    resource_id: str
    item: ExperimentationItem


class DeleteExperimentationItem(Message, frozen=True, tag="experimentation.item.delete"):
    """The item is gone (delivered again, Vercel's "not found" means the same)."""

    resource_id: str
    item_id: str


class PushExperimentationConfig(Message, frozen=True, tag="experimentation.config"):
    """The flag configuration the resource's synced config store holds, whole."""

    resource_id: str
    data: dict[str, object]


class ReconfigureResource(Sealed, frozen=True, tag="provisioner.reconfigure"):
    """Owed to the integrator's provisioner, not to Vercel: a change made on our side inside a transaction (a
    suspension for an unpaid invoice, its end), told to the provisioner after the commit, by the worker."""

    before: Resource
    after: Resource


class ReleaseResource(Sealed, frozen=True, tag="provisioner.deprovision"):
    """Owed to the provisioner: release a resource that went with its installation."""

    resource: Resource


OutboxMessage = (
    SetInstallationNotification
    | SetResourceStatus
    | SetResourceNotification
    | PushResourceSecrets
    | FinishProvisioning
    | ImportResource
    | AnnounceChange
    | SubmitBillingData
    | SubmitInvoice
    | ReportBalances
    | FinalizeInstallation
    | CreateExperimentationItems
    | UpdateExperimentationItem
    | DeleteExperimentationItem
    | PushExperimentationConfig
    | ReconfigureResource
    | ReleaseResource
)
# What the worker hands to the provisioner instead of Vercel: no access token needed.
FOR_THE_PROVISIONER = (ReconfigureResource, ReleaseResource)


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
