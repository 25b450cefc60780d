"""The integrator's own backend: the one port every integrator implements (adapters/example_provisioner.py)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from marketplace_provider.domain.plans import BillingPlan, Product
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret


class ResourceDraft(msgspec.Struct, frozen=True, kw_only=True):
    resource_id: str  # stable across retries of one request: provisioning may be made idempotent on it
    installation_id: str
    product: Product
    plan: BillingPlan
    name: str
    metadata: dict[str, object]


class Provisioned(msgspec.Struct, frozen=True, kw_only=True):
    secrets: tuple[Secret, ...]
    status: ResourceStatus = ResourceStatus.READY  # pending/onboarding when the real work finishes later


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """sync: the new secrets now; not sync: they will be pushed to Vercel when ready."""

    sync: bool
    secrets: tuple[Secret, ...] = ()
    partial: bool = False


class ResourceProvisioner(Protocol):
    async def provision(self, draft: ResourceDraft) -> Provisioned:
        """Create the real thing (database, queue, key) and return its secrets."""
        ...

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        """Apply a rename, metadata or plan change; raise Invalid/Conflict to refuse it."""
        ...

    async def deprovision(self, resource: Resource) -> None:
        """Release the real thing. Called once per resource; must tolerate a repeat after a crash."""
        ...

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        """New secrets; the old ones stay valid for keep_old_hours, then are revoked."""
        ...

    async def repl(self, resource: Resource, command: str, read_only: bool) -> ReplOutcome: ...
