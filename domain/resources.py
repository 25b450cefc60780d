"""Resources: what an installation provisioned (a database, a queue, an API key) and its secrets."""

from __future__ import annotations

import enum
import re
from datetime import datetime

import msgspec
from msgspec.structs import replace

from marketplace_provider.domain.errors import Conflict, Invalid
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.plans import BillingPlan


class ResourceStatus(enum.Enum):
    READY = "ready"
    PENDING = "pending"
    ONBOARDING = "onboarding"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    UNINSTALLED = "uninstalled"
    ERROR = "error"


class EnvironmentOverrides(msgspec.Struct, frozen=True, kw_only=True):
    development: str | None = None
    preview: str | None = None
    production: str | None = None


class Secret(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    value: str
    prefix: str | None = None
    environment_overrides: EnvironmentOverrides | None = None

    def __repr__(self) -> str:  # the value never reaches a log line
        return f"Secret(name={self.name!r}, value=<redacted>)"

    __str__ = __repr__


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    installation_id: str
    product_id: str
    name: str
    metadata: dict[str, object]
    billing_plan_id: str
    status: ResourceStatus
    secrets: tuple[Secret, ...]
    created_at: datetime
    updated_at: datetime
    notification: Notification | None = None
    external_id: str | None = None
    # e.g. {"experimentation": {"edgeConfigId": "ecfg_..."}}, kept as Vercel sent it
    protocol_settings: dict[str, object] | None = None
    billing_hold: bool = False  # suspended by us for an unpaid invoice; resumed when nothing is unpaid any more

    @property
    def is_live(self) -> bool:
        return self.status is not ResourceStatus.UNINSTALLED

    # Each change returns the resource changed at `at`, or the very same object when nothing changes, so that a
    # use case records (and tells Vercel or the provisioner) only what did change.

    def uninstall(self, at: datetime) -> Resource:
        """Gone from the installation; the row stays, for billing the days it lived."""
        if not self.is_live:
            return self
        return replace(self, status=ResourceStatus.UNINSTALLED, updated_at=at)

    # ------------------------------------------------ changes Vercel asks for (Update Resource)

    def rename(self, name: str, at: datetime) -> Resource:
        name = check_name(name)
        return self if name == self.name else replace(self, name=name, updated_at=at)

    def with_metadata(self, metadata: dict[str, object], at: datetime) -> Resource:
        """Metadata already checked against the product (`plans.resolve_metadata`)."""
        return self if metadata == self.metadata else replace(self, metadata=metadata, updated_at=at)

    def change_plan(self, plan: BillingPlan, at: datetime) -> Resource:
        """A plan already chosen from the product's plans (`plans.choose_resource_plan`)."""
        return self if plan.id == self.billing_plan_id else replace(self, billing_plan_id=plan.id, updated_at=at)

    def with_protocol_settings(self, settings: dict[str, object], at: datetime) -> Resource:
        if settings == self.protocol_settings:
            return self
        return replace(self, protocol_settings=settings, updated_at=at)

    def move_to(self, installation_id: str, at: datetime) -> Resource:
        """Transferred to another installation (an accepted transfer request)."""
        return replace(self, installation_id=installation_id, updated_at=at)

    # ------------------------------------------------ billing holds (unpaid invoices)

    def suspend(self, at: datetime) -> Resource:
        """Suspended by us while an invoice is unpaid; the hold marks the suspension as ours to lift. One already
        suspended (for whatever reason) stays as it is."""
        if self.status is ResourceStatus.SUSPENDED:
            return self
        return replace(self, status=ResourceStatus.SUSPENDED, billing_hold=True, updated_at=at)

    def resume(self, at: datetime) -> Resource:
        """Ready again once nothing is unpaid: only a suspension of ours is lifted, never the provider's own."""
        if not self.billing_hold:
            return self
        return replace(self, status=ResourceStatus.READY, billing_hold=False, updated_at=at)

    # ------------------------------------------------ changes that start on the provider's side

    def set_status(self, status: ResourceStatus, at: datetime) -> Resource:
        """The real thing changed state (onboarding finished, suspended, failed). The same status: no change."""
        if status is ResourceStatus.UNINSTALLED:
            raise Invalid.field("status", "delete the resource to uninstall it")
        if status is self.status:
            return self
        return replace(self, status=status, updated_at=at)

    def show(self, notification: Notification | None, at: datetime) -> Resource:
        """Show this notification on the resource (None: remove it). The same one: no change."""
        if notification == self.notification:
            return self
        return replace(self, notification=notification, updated_at=at)

    def with_secrets(self, secrets: tuple[Secret, ...], at: datetime, *, partial: bool = False) -> Resource:
        """New secrets: the whole set, or (partial) these replace the ones of the same name."""
        kept = merge_secrets(self.secrets, secrets) if partial else secrets
        return replace(self, secrets=kept, updated_at=at)

    def imported_again(
        self,
        *,
        product_id: str,
        name: str,
        metadata: dict[str, object],
        plan: BillingPlan,
        status: ResourceStatus,
        secrets: tuple[Secret, ...] | None,
        notification: Notification | None,
        external_id: str | None,
        at: datetime,
    ) -> Resource:
        """The provider imported it again (Vercel's import is an upsert): what it gives replaces what we had;
        secrets None keeps ours, an external id None keeps the one we know. A deleted resource, or one of
        another product, cannot be imported again under its id."""
        if not self.is_live:
            raise Conflict(f"resource {self.id} was deleted: import it under a new id")
        if product_id != self.product_id:
            raise Invalid.field("product_id", f"resource {self.id} is a {self.product_id} resource")
        return replace(
            self,
            name=check_name(name),
            metadata=metadata,
            billing_plan_id=plan.id,
            status=status,
            secrets=self.secrets if secrets is None else secrets,
            notification=notification,
            external_id=external_id or self.external_id,
            updated_at=at,
        )

    @property
    def syncs_experimentation_config(self) -> bool:
        """The user chose a config store for the flags (protocolSettings.experimentation names one) and did
        not turn syncing off: the provider pushes the flag configuration there."""
        chosen = (self.protocol_settings or {}).get("experimentation")
        if not isinstance(chosen, dict):
            return False
        if chosen.get("edgeConfigSyncingEnabled") is False or chosen.get("globalConfigSyncingEnabled") is False:
            return False
        return bool(chosen.get("edgeConfigId") or chosen.get("globalConfigId"))


def merge_secrets(old: tuple[Secret, ...], new: tuple[Secret, ...]) -> tuple[Secret, ...]:
    """A partial rotation replaces the named secrets and keeps the others."""
    replaced = {s.name for s in new}
    return tuple(s for s in old if s.name not in replaced) + new


SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_secrets(secrets: tuple[Secret, ...], *, field: str = "secrets") -> tuple[Secret, ...]:
    """Secrets Vercel can set as environment variables, or Invalid naming the bad one (never its value)."""
    seen: set[str] = set()
    for n, secret in enumerate(secrets):
        if not isinstance(secret, Secret):
            raise Invalid.field(f"{field}[{n}]", "must be a Secret")
        if not isinstance(secret.name, str) or not SECRET_NAME.match(secret.name):
            raise Invalid.field(f"{field}[{n}].name", "must be letters, digits and _, not starting with a digit")
        if secret.name in seen:
            raise Invalid.field(f"{field}[{n}].name", f"{secret.name} is given twice")
        if not isinstance(secret.value, str):
            raise Invalid.field(f"{field}[{n}].value", "must be a string")
        seen.add(secret.name)
    return tuple(secrets)


NAME_MAX = 128
RESOURCE_ID_MAX = 128


def check_name(name: str) -> str:
    """A resource's name: required, at most NAME_MAX characters, no control characters."""
    if not name.strip():
        raise Invalid.field("name", "is required")
    if len(name) > NAME_MAX:
        raise Invalid.field("name", f"must be at most {NAME_MAX} characters")
    if any(ord(c) < 32 for c in name):
        raise Invalid.field("name", "must not contain control characters")
    return name


def check_status(status: ResourceStatus | str) -> ResourceStatus:
    """A status the provider may set: every one but `uninstalled` (deleting a resource is Vercel's call)."""
    try:
        chosen = ResourceStatus(status)
    except ValueError:
        chosen = None
    if chosen is None or chosen is ResourceStatus.UNINSTALLED:
        allowed = ", ".join(s.value for s in ResourceStatus if s is not ResourceStatus.UNINSTALLED)
        raise Invalid.field("status", f"must be one of {allowed}")
    return chosen


def check_resource_id(resource_id: str) -> str:
    if not isinstance(resource_id, str) or not resource_id.strip() or len(resource_id) > RESOURCE_ID_MAX:
        raise Invalid.field("resource_id", f"must be 1 to {RESOURCE_ID_MAX} characters")
    if any(c.isspace() or ord(c) < 32 or c in "/?#%" for c in resource_id):
        raise Invalid.field("resource_id", "must not contain spaces, control characters, /, ?, # or %")
    return resource_id


def new_resource(
    *,
    resource_id: str,
    installation_id: str,
    product_id: str,
    name: str,
    metadata: dict[str, object],
    plan: BillingPlan,
    status: ResourceStatus,
    secrets: tuple[Secret, ...],
    at: datetime,
    notification: Notification | None = None,
    external_id: str | None = None,
    protocol_settings: dict[str, object] | None = None,
) -> Resource:
    """A resource as it is first recorded (provisioned, or imported from the provider's side); Invalid when its
    name is not one (metadata and plan are checked against the catalog before: `plans.py`)."""
    return Resource(
        id=resource_id,
        installation_id=installation_id,
        product_id=product_id,
        name=check_name(name),
        metadata=metadata,
        billing_plan_id=plan.id,
        status=status,
        secrets=secrets,
        created_at=at,
        updated_at=at,
        notification=notification,
        external_id=external_id,
        protocol_settings=protocol_settings,
    )


class ProvisionRequest(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str
    name: str
    metadata: dict[str, object]
    billing_plan_id: str
    external_id: str | None = None
    protocol_settings: dict[str, object] | None = None


class ResourceChanges(msgspec.Struct, frozen=True, kw_only=True):
    """A partial update; None means 'leave as it is'."""

    name: str | None = None
    metadata: dict[str, object] | None = None
    billing_plan_id: str | None = None
    status: ResourceStatus | None = None  # deprecated by Vercel, still honoured
    protocol_settings: dict[str, object] | None = None
