"""What the provider's own code does about a resource (README, "Actions from your side"): its notification and
status, finishing an asynchronous provisioning, pushing secrets, a change event, and importing a resource made on
the provider's side. Each checks its input first (Invalid naming the field, nothing recorded), then, in one unit
of work, that the installation and resource are live, the change on the resource and what Vercel must be told.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.notifications import Notification, checked
from marketplace_provider.domain.outbox import (
    AnnounceChange,
    FinishProvisioning,
    ImportResource,
    OutboxMessage,
    PushResourceSecrets,
    SetResourceNotification,
    SetResourceStatus,
)
from marketplace_provider.domain.plans import choose_resource_plan, resolve_metadata
from marketplace_provider.domain.resources import (
    Resource,
    ResourceStatus,
    Secret,
    check_name,
    check_resource_id,
    check_secrets,
    check_status,
    new_resource,
)
from marketplace_provider.domain.services.common import Ports, active_installation, live_resource
from marketplace_provider.domain.updates import ImportedResource, Ownership


class ResourceImport(msgspec.Struct, frozen=True, kw_only=True):
    """A resource made on the provider's side, as it should appear in the installation (Vercel's Import
    Resource). Importing the same `resource_id` again updates it."""

    product_id: str
    name: str
    billing_plan_id: str
    status: ResourceStatus = ResourceStatus.READY
    metadata: dict[str, object] = {}
    resource_id: str | None = None  # ours; None: a new id
    secrets: tuple[Secret, ...] | None = None  # None: keep the ones we have (none for a new resource)
    notification: Notification | None = None
    ownership: Ownership | None = None  # `linked`: not billed through Vercel
    extras: dict[str, object] | None = None
    external_id: str | None = None


async def owe(ports: Ports, installation_id: str, resource_id: str, message: OutboxMessage) -> Resource:
    """Record `message` for a live resource of an active installation (NotFound otherwise); the resource."""
    async with ports.storage.unit_of_work() as uow:
        await active_installation(uow, installation_id)
        resource = await live_resource(uow, installation_id, resource_id)
        await uow.outbox.add(installation_id, message, ports.clock.now())
        await uow.commit()
    return resource


class ResourceActions:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def get(self, installation_id: str, resource_id: str) -> Resource:
        """Our record of a live resource of an active installation, secrets included (NotFound otherwise)."""
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            return await live_resource(uow, installation_id, resource_id)

    async def notify(self, installation_id: str, resource_id: str, notification: Notification | None) -> Resource:
        """Show `notification` on the resource in Vercel's dashboard and ours (None: remove it)."""
        notification = checked(notification)
        message = SetResourceNotification(resource_id=resource_id, notification=notification)
        return await self._change(installation_id, resource_id, lambda r, at: r.show(notification, at), message)

    async def set_status(self, installation_id: str, resource_id: str, status: ResourceStatus | str) -> Resource:
        """The real thing changed state: ready, pending, onboarding, suspended, resumed or error."""
        status = check_status(status)
        message = SetResourceStatus(resource_id=resource_id, status=status)
        return await self._change(installation_id, resource_id, lambda r, at: r.set_status(status, at), message)

    async def finish_provisioning(self, installation_id: str, resource_id: str, secrets: Sequence[Secret]) -> Resource:
        """A provisioning the provisioner answered `pending` (or `onboarding`) is done: the resource is ready
        with these secrets (its whole set), told to Vercel in one call."""
        given = check_secrets(tuple(secrets))
        ready = ResourceStatus.READY
        message = FinishProvisioning(resource_id=resource_id, status=ready, secrets=given)
        return await self._change(
            installation_id, resource_id, lambda r, at: r.with_secrets(given, at).set_status(ready, at), message
        )

    async def push_secrets(
        self, installation_id: str, resource_id: str, secrets: Sequence[Secret], *, partial: bool = False
    ) -> Resource:
        """New secrets, e.g. after a rotation the provider did itself or one answered `sync: false`: the whole set,
        or with `partial` only these (the others stay)."""
        given = check_secrets(tuple(secrets))
        if not given:
            raise Invalid.field("secrets", "at least one secret is required")
        message = PushResourceSecrets(resource_id=resource_id, secrets=given, partial=partial)
        return await self._change(
            installation_id, resource_id, lambda r, at: r.with_secrets(given, at, partial=partial), message
        )

    async def announce(self, installation_id: str, resource_id: str) -> AnnounceChange:
        """Ask Vercel to read the resource again (its resource.updated event)."""
        message = AnnounceChange(resource_id=resource_id)
        await owe(self.ports, installation_id, resource_id, message)
        return message

    async def import_resource(self, installation_id: str, request: ResourceImport) -> Resource:
        """Keep a resource made on the provider's side and owe Vercel its Import Resource call; the same
        `resource_id` again updates it (Vercel's import is an upsert)."""
        catalog = self.ports.catalog
        product = catalog.product(request.product_id)
        if product is None:
            raise Invalid.field("product_id", f"{request.product_id!r} is not a product of the catalog")
        plan = choose_resource_plan(catalog, product, request.billing_plan_id, field="billing_plan_id")
        metadata = resolve_metadata(product, request.metadata)
        name = check_name(request.name)
        status = check_status(request.status)
        notification = checked(request.notification)
        secrets = check_secrets(request.secrets) if request.secrets is not None else None
        resource_id = check_resource_id(request.resource_id) if request.resource_id is not None else None
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            now = self.ports.clock.now()
            existing = await uow.resources.get(installation_id, resource_id) if resource_id else None
            if existing is None:
                resource = new_resource(
                    resource_id=resource_id or self.ports.ids.new_id("res"),
                    installation_id=installation_id,
                    product_id=product.id,
                    name=name,
                    metadata=metadata,
                    plan=plan,
                    status=status,
                    secrets=secrets or (),
                    at=now,
                    notification=notification,
                    external_id=request.external_id,
                )
                await uow.resources.add(resource)  # Conflict when the id is another installation's
            else:
                resource = existing.imported_again(
                    product_id=product.id,
                    name=name,
                    metadata=metadata,
                    plan=plan,
                    status=status,
                    secrets=secrets,
                    notification=notification,
                    external_id=request.external_id,
                    at=now,
                )
                await uow.resources.save(resource)
            imported = ImportedResource.of(resource, plan, request.ownership, request.extras)
            await uow.outbox.add(installation_id, ImportResource(resource_id=resource.id, resource=imported), now)
            await uow.commit()
        return resource

    async def _change(
        self,
        installation_id: str,
        resource_id: str,
        change: Callable[[Resource, datetime], Resource],
        message: OutboxMessage,
    ) -> Resource:
        """Apply the entity's rule to the live resource; when it changed, keep it and owe `message`, together."""
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            before = await live_resource(uow, installation_id, resource_id)
            now = self.ports.clock.now()
            after = change(before, now)
            if after is not before:
                await uow.resources.save(after)
                await uow.outbox.add(installation_id, message, now)
                await uow.commit()
        return after
