"""Resource use cases: provision, read, change, delete, rotate secrets, run REPL commands."""

from __future__ import annotations

import math

from msgspec.structs import replace

from marketplace_provider.domain.errors import Invalid, NotFound
from marketplace_provider.domain.outbox import PushResourceSecrets, SetResourceStatus
from marketplace_provider.domain.plans import BillingPlan, choose_resource_plan, resolve_metadata
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import NAME_MAX, ProvisionRequest, Resource, ResourceChanges, ResourceStatus, Secret
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, RequestKey, active_installation, live_resource, once
from marketplace_provider.ports.provisioner import ResourceDraft, ResourceProvisioner, Rotation

KEEP_OLD_SECRETS_MAX_HOURS = 720
REPL_INPUT_MAX = 10_000


def check_name(name: str) -> str:
    if not name.strip():
        raise Invalid.field("name", "is required")
    if len(name) > NAME_MAX:
        raise Invalid.field("name", f"must be at most {NAME_MAX} characters")
    if any(ord(c) < 32 for c in name):
        raise Invalid.field("name", "must not contain control characters")
    return name


def merge_secrets(old: tuple[Secret, ...], new: tuple[Secret, ...]) -> tuple[Secret, ...]:
    """A partial rotation replaces the named secrets and keeps the others."""
    replaced = {s.name for s in new}
    return tuple(s for s in old if s.name not in replaced) + new


class Resources:
    def __init__(self, ports: Ports, provisioner: ResourceProvisioner) -> None:
        self.ports = ports
        self.provisioner = provisioner

    def plan_of(self, resource: Resource) -> BillingPlan | None:
        return self.ports.catalog.plan(resource.billing_plan_id)

    async def provision(
        self, caller: Caller, installation_id: str, request: ProvisionRequest, key: RequestKey | None
    ) -> Resource:
        """Create a resource and return it with its secrets (the only answer that carries them)."""
        authorize(caller, Action.PROVISION_RESOURCE, installation_id)
        catalog = self.ports.catalog
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> Resource:
                await active_installation(uow, installation_id)
                product = catalog.product(request.product_id)
                if product is None:
                    raise NotFound(f"product {request.product_id!r} not found")
                plan = choose_resource_plan(catalog, product, request.billing_plan_id)
                metadata = resolve_metadata(product, request.metadata)
                name = check_name(request.name)
                resource_id = (
                    self.ports.ids.stable_id("res", installation_id, key.value)
                    if key is not None
                    else self.ports.ids.new_id("res")
                )
                draft = ResourceDraft(
                    resource_id=resource_id,
                    installation_id=installation_id,
                    product=product,
                    plan=plan,
                    name=name,
                    metadata=metadata,
                )
                provisioned = await self.provisioner.provision(draft)
                now = self.ports.clock.now()
                resource = Resource(
                    id=resource_id,
                    installation_id=installation_id,
                    product_id=product.id,
                    name=name,
                    metadata=metadata,
                    billing_plan_id=plan.id,
                    status=provisioned.status,
                    secrets=provisioned.secrets,
                    created_at=now,
                    updated_at=now,
                    external_id=request.external_id,
                    protocol_settings=request.protocol_settings,
                )
                await uow.resources.add(resource)
                return resource

            resource = await once(uow, installation_id, key, Resource, work)
            await uow.commit()
        return resource

    async def get(self, caller: Caller, installation_id: str, resource_id: str) -> Resource:
        authorize(caller, Action.READ_RESOURCE, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            return await live_resource(uow, installation_id, resource_id)

    async def list(self, caller: Caller, installation_id: str, ids: list[str] | None) -> list[Resource]:
        authorize(caller, Action.READ_RESOURCE, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            return await uow.resources.list_live(installation_id, ids)

    async def update(
        self,
        caller: Caller,
        installation_id: str,
        resource_id: str,
        changes: ResourceChanges,
        key: RequestKey | None,
    ) -> Resource:
        authorize(caller, Action.UPDATE_RESOURCE, installation_id)
        catalog = self.ports.catalog
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> Resource:
                await active_installation(uow, installation_id)
                before = await live_resource(uow, installation_id, resource_id)
                product = catalog.product(before.product_id)
                if product is None:
                    raise NotFound(f"product {before.product_id!r} is no longer sold")
                after = before
                if changes.name is not None:
                    after = replace(after, name=check_name(changes.name))
                if changes.metadata is not None:
                    after = replace(after, metadata=resolve_metadata(product, changes.metadata))
                if changes.billing_plan_id is not None:
                    after = replace(after, billing_plan_id=choose_resource_plan(catalog, product, changes.billing_plan_id).id)
                if changes.status is not None:
                    if changes.status is ResourceStatus.UNINSTALLED:
                        raise Invalid.field("status", "delete the resource to uninstall it")
                    after = replace(after, status=changes.status)
                if changes.protocol_settings is not None:
                    after = replace(after, protocol_settings=changes.protocol_settings)
                if after == before:
                    return before
                await self.provisioner.reconfigure(before, after)
                after = replace(after, updated_at=self.ports.clock.now())
                await uow.resources.save(after)
                return after

            resource = await once(uow, installation_id, key, Resource, work)
            await uow.commit()
        return resource

    async def delete(self, caller: Caller, installation_id: str, resource_id: str, key: RequestKey | None) -> None:
        """De-provision. Deleting an already deleted resource succeeds; an unknown one is 404."""
        authorize(caller, Action.DELETE_RESOURCE, installation_id)
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> None:
                if await uow.installations.get(installation_id) is None:
                    raise NotFound(f"installation {installation_id} not found")
                resource = await uow.resources.get(installation_id, resource_id)
                if resource is None:
                    raise NotFound(f"resource {resource_id} not found")
                if resource.is_live:
                    await self.provisioner.deprovision(resource)
                    await uow.resources.save(
                        replace(resource, status=ResourceStatus.UNINSTALLED, updated_at=self.ports.clock.now())
                    )

            await once(uow, installation_id, key, type(None), work)
            await uow.commit()

    async def rotate_secrets(
        self,
        caller: Caller,
        installation_id: str,
        resource_id: str,
        reason: str | None,
        keep_old_hours: float,
        key: RequestKey | None,
    ) -> Rotation:
        authorize(caller, Action.ROTATE_SECRETS, installation_id)
        if not math.isfinite(keep_old_hours) or not 0 <= keep_old_hours <= KEEP_OLD_SECRETS_MAX_HOURS:
            raise Invalid.field("delayOldSecretsExpirationHours", f"must be between 0 and {KEEP_OLD_SECRETS_MAX_HOURS}")
        if reason is not None and len(reason) > 1000:
            raise Invalid.field("reason", "must be at most 1000 characters")
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> Rotation:
                await active_installation(uow, installation_id)
                resource = await live_resource(uow, installation_id, resource_id)
                rotation = await self.provisioner.rotate_secrets(resource, reason, keep_old_hours)
                if rotation.sync:
                    secrets = merge_secrets(resource.secrets, rotation.secrets) if rotation.partial else rotation.secrets
                    await uow.resources.save(replace(resource, secrets=secrets, updated_at=self.ports.clock.now()))
                return rotation

            rotation = await once(uow, installation_id, key, Rotation, work)
            await uow.commit()
        return rotation

    # ------------------------------------------------ changes that start on our side (the integrator's code)

    async def report_status(self, installation_id: str, resource_id: str, status: ResourceStatus) -> Resource:
        """The real thing changed state (onboarding finished, suspended for non-payment...): keep it and tell
        Vercel through the outbox."""
        if status is ResourceStatus.UNINSTALLED:
            raise Invalid.field("status", "delete the resource to uninstall it")
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            resource = await live_resource(uow, installation_id, resource_id)
            if resource.status is not status:
                now = self.ports.clock.now()
                resource = replace(resource, status=status, updated_at=now)
                await uow.resources.save(resource)
                await uow.outbox.add(installation_id, SetResourceStatus(resource_id=resource_id, status=status), now)
                await uow.commit()
        return resource

    async def finish_rotation(
        self, installation_id: str, resource_id: str, secrets: tuple[Secret, ...], *, partial: bool = False
    ) -> Resource:
        """A rotation answered with `sync: false` is done: keep the new secrets and push them to Vercel."""
        if not secrets:
            raise Invalid.field("secrets", "a rotation needs at least one secret")
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            resource = await live_resource(uow, installation_id, resource_id)
            now = self.ports.clock.now()
            kept = merge_secrets(resource.secrets, secrets) if partial else secrets
            resource = replace(resource, secrets=kept, updated_at=now)
            await uow.resources.save(resource)
            message = PushResourceSecrets(resource_id=resource_id, secrets=secrets, partial=partial)
            await uow.outbox.add(installation_id, message, now)
            await uow.commit()
        return resource

    async def repl(
        self, caller: Caller, installation_id: str, resource_id: str, command: str, read_only: bool
    ) -> ReplOutcome:
        authorize(caller, Action.REPL_READ if read_only else Action.REPL_WRITE, installation_id)
        if len(command) > REPL_INPUT_MAX:
            raise Invalid.field("input", f"must be at most {REPL_INPUT_MAX} characters")
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            resource = await live_resource(uow, installation_id, resource_id)
        return await self.provisioner.repl(resource, command, read_only)
