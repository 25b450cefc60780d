"""Resources: what an installation provisioned (a database, a queue, an API key) and its secrets."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

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
