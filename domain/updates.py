"""What we tell Vercel changed (vercel-api.md): installation and resource updates, the events that make Vercel
read one again, and resources made on our side that Vercel must import. None leaves a field as Vercel has it."""

from __future__ import annotations

import enum

import msgspec

from marketplace_provider.domain.fields import require_text
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.plans import BillingPlan
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret


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
        require_text(self.resource_id, "resource_id")


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
        require_text(self.product_id, "product_id")
        require_text(self.name, "name")

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
