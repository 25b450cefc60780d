"""Resources: what an installation provisioned (a database, a queue, an API key) and its secrets."""

from __future__ import annotations

import enum
import re
from datetime import datetime

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.notifications import Notification


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

    def uninstall(self, at: datetime) -> Resource:
        """Gone from the installation; the row stays, for billing the days it lived."""
        return msgspec.structs.replace(self, status=ResourceStatus.UNINSTALLED, updated_at=at)

    # ------------------------------------------------ changes that start on the provider's side

    def set_status(self, status: ResourceStatus, at: datetime) -> Resource:
        """The real thing changed state (onboarding finished, suspended, failed). The same status: no change."""
        if status is ResourceStatus.UNINSTALLED:
            raise Invalid.field("status", "delete the resource to uninstall it")
        if status is self.status:
            return self
        return msgspec.structs.replace(self, status=status, updated_at=at)

    def show(self, notification: Notification | None, at: datetime) -> Resource:
        """Show this notification on the resource (None: remove it). The same one: no change."""
        if notification == self.notification:
            return self
        return msgspec.structs.replace(self, notification=notification, updated_at=at)

    def with_secrets(self, secrets: tuple[Secret, ...], at: datetime, *, partial: bool = False) -> Resource:
        """New secrets: the whole set, or (partial) these replace the ones of the same name."""
        kept = merge_secrets(self.secrets, secrets) if partial else secrets
        return msgspec.structs.replace(self, secrets=kept, updated_at=at)

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
