"""Resource use cases: provision, read, change, delete, rotate secrets, run REPL commands."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

from marketplace_provider.domain.errors import Conflict, Invalid, NotFound
from marketplace_provider.domain.plans import BillingPlan, choose_resource_plan, resolve_metadata
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import (
    ProvisionRequest,
    Resource,
    ResourceChanges,
    ResourceStatus,
    check_name,
    new_resource,
)
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import (
    Ports,
    RequestKey,
    active_installation,
    earlier_reply,
    live_resource,
    remember,
)
from marketplace_provider.ports.provisioner import ResourceDraft, ResourceProvisioner, Rotation

KEEP_OLD_SECRETS_MAX_HOURS = 720
# A provisioning that began longer ago than this is taken to have died with its process: a retry runs it again
# (the provisioner is idempotent on the resource id). Until then a retry is told the first is still running.
PROVISIONING_TAKEOVER = timedelta(minutes=10)
RETRY_POLL_SECONDS = 0.05
REPL_INPUT_MAX = 10_000


class Resources:
    def __init__(self, ports: Ports, provisioner: ResourceProvisioner, *, retry_wait_seconds: float = 5.0) -> None:
        self.ports = ports
        self.provisioner = provisioner
        # how long a retry of a keyed provisioning waits for the running first call before it is told "later"
        self.retry_polls = max(0, round(retry_wait_seconds / RETRY_POLL_SECONDS))

    def plan_of(self, resource: Resource) -> BillingPlan | None:
        return self.ports.catalog.plan(resource.billing_plan_id)

    async def provision(
        self, caller: Caller, installation_id: str, request: ProvisionRequest, key: RequestKey | None
    ) -> Resource:
        """Create a resource and return it with its secrets (the only answer that carries them).

        Three short steps, never holding a transaction or a lock while the integrator's provisioner runs:
        record the intent (keyed requests only) and commit; provision; record the resource and the reply.
        """
        authorize(caller, Action.PROVISION_RESOURCE, installation_id)
        catalog = self.ports.catalog
        product = catalog.product(request.product_id)
        if product is None:
            raise NotFound(f"product {request.product_id!r} not found")
        plan = choose_resource_plan(catalog, product, request.billing_plan_id)
        metadata = resolve_metadata(product, request.metadata)
        name = check_name(request.name)
        resource_id = (
            self.ports.ids.stable_id("res", installation_id, key.value) if key is not None else self.ports.ids.new_id("res")
        )
        replayed = await self._begin_provisioning(installation_id, resource_id, key)
        if replayed is not None:
            return replayed
        draft = ResourceDraft(
            resource_id=resource_id, installation_id=installation_id, product=product, plan=plan, name=name,
            metadata=metadata,
        )
        try:
            provisioned = await self.provisioner.provision(draft)
        except Exception:
            await self._end_intent(resource_id, key)
            raise
        resource = new_resource(
            resource_id=resource_id,
            installation_id=installation_id,
            product_id=product.id,
            name=name,
            metadata=metadata,
            plan=plan,
            status=provisioned.status,
            secrets=provisioned.secrets,
            at=self.ports.clock.now(),
            external_id=request.external_id,
            protocol_settings=request.protocol_settings,
        )
        async with self.ports.storage.unit_of_work() as uow:
            installation = await uow.installations.get(installation_id)
            if installation is not None and installation.is_active:
                await uow.resources.add(resource)
                await remember(uow, installation_id, key, resource)
            if key is not None:
                await uow.intents.end(resource_id)
            await uow.commit()
        if installation is None or not installation.is_active:  # uninstalled meanwhile: release what was made
            await self.provisioner.deprovision(resource)
            raise NotFound(f"installation {installation_id} not found")
        return resource

    async def _begin_provisioning(self, installation_id: str, resource_id: str, key: RequestKey | None) -> Resource | None:
        """Record the intent and commit (keyed requests), or return the reply of the request this one retries.

        A retry that arrives while the first call still runs waits a little for its reply (most provisioners
        finish in seconds); past that it is told to retry later, and never provisions a second resource."""
        for attempt in range(self.retry_polls + 1):
            async with self.ports.storage.unit_of_work() as uow:
                await active_installation(uow, installation_id)
                if key is None:
                    return None
                now = self.ports.clock.now()
                began = await uow.intents.begin(installation_id, resource_id, now, stale_before=now - PROVISIONING_TAKEOVER)
                # read after `begin`, which waits for a first call finishing right now: its reply is then seen
                reply = await earlier_reply(uow, installation_id, key, Resource)
                if reply is not None:
                    return reply.result  # type: ignore[return-value]
                if began:
                    await uow.commit()
                    return None
            if attempt < self.retry_polls:
                await asyncio.sleep(RETRY_POLL_SECONDS)
        raise Conflict(
            f"resource {resource_id} of this request is still being provisioned: retry later",
            user_message="This resource is still being created. Try again in a minute.",
        )

    async def _end_intent(self, resource_id: str, key: RequestKey | None) -> None:
        """The provisioner failed: a retry may provision again at once."""
        if key is None:
            return
        async with self.ports.storage.unit_of_work() as uow:
            await uow.intents.end(resource_id)
            await uow.commit()

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
        """Rename, change metadata, plan or status; the provisioner reconfigures with no transaction open."""
        authorize(caller, Action.UPDATE_RESOURCE, installation_id)
        if changes.status is ResourceStatus.UNINSTALLED:
            raise Invalid.field("status", "delete the resource to uninstall it")
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            reply = await earlier_reply(uow, installation_id, key, Resource)
            if reply is not None:
                return reply.result  # type: ignore[return-value]
            before = await live_resource(uow, installation_id, resource_id)
        after = self._changed(before, changes, self.ports.clock.now())
        if after is not before:
            await self.provisioner.reconfigure(before, after)
        async with self.ports.storage.unit_of_work() as uow:
            reply = await earlier_reply(uow, installation_id, key, Resource)
            if reply is not None:  # a retry of this request finished first
                return reply.result  # type: ignore[return-value]
            await active_installation(uow, installation_id)
            # the changes asked for, over whatever else changed meanwhile (a suspension, say)
            current = await live_resource(uow, installation_id, resource_id)
            resource = self._changed(current, changes, self.ports.clock.now())
            if resource is not current:
                await uow.resources.save(resource)
            await remember(uow, installation_id, key, resource)
            await uow.commit()
        return resource

    def _changed(self, resource: Resource, changes: ResourceChanges, at: datetime) -> Resource:
        """The resource with the changes asked for, each checked against the catalog; itself when none changes it."""
        product = self.ports.catalog.product(resource.product_id)
        if product is None:
            raise NotFound(f"product {resource.product_id!r} is no longer sold")
        if changes.name is not None:
            resource = resource.rename(changes.name, at)
        if changes.metadata is not None:
            resource = resource.with_metadata(resolve_metadata(product, changes.metadata), at)
        if changes.billing_plan_id is not None:
            plan = choose_resource_plan(self.ports.catalog, product, changes.billing_plan_id)
            resource = resource.change_plan(plan, at)
        if changes.status is not None:
            resource = resource.set_status(changes.status, at)
        if changes.protocol_settings is not None:
            resource = resource.with_protocol_settings(changes.protocol_settings, at)
        return resource

    async def delete(self, caller: Caller, installation_id: str, resource_id: str, key: RequestKey | None) -> None:
        """De-provision (with no transaction open). Deleting an already deleted resource succeeds; an unknown
        one is 404."""
        authorize(caller, Action.DELETE_RESOURCE, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            if await uow.installations.get(installation_id) is None:
                raise NotFound(f"installation {installation_id} not found")
            if await earlier_reply(uow, installation_id, key, type(None)) is not None:
                return
            resource = await uow.resources.get(installation_id, resource_id)
            if resource is None:
                raise NotFound(f"resource {resource_id} not found")
        if resource.is_live:
            await self.provisioner.deprovision(resource)
        async with self.ports.storage.unit_of_work() as uow:
            if await earlier_reply(uow, installation_id, key, type(None)) is not None:
                return
            current = await uow.resources.get(installation_id, resource_id)
            if current is not None and current.is_live:  # deleted meanwhile: nothing more to record
                await uow.resources.save(current.uninstall(self.ports.clock.now()))
            await remember(uow, installation_id, key, None)
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
            await active_installation(uow, installation_id)
            reply = await earlier_reply(uow, installation_id, key, Rotation)
            if reply is not None:
                return reply.result  # type: ignore[return-value]
            resource = await live_resource(uow, installation_id, resource_id)
        rotation = await self.provisioner.rotate_secrets(resource, reason, keep_old_hours)
        async with self.ports.storage.unit_of_work() as uow:
            reply = await earlier_reply(uow, installation_id, key, Rotation)
            if reply is not None:
                return reply.result  # type: ignore[return-value]
            await active_installation(uow, installation_id)
            current = await live_resource(uow, installation_id, resource_id)
            if rotation.sync:
                rotated = current.with_secrets(rotation.secrets, self.ports.clock.now(), partial=rotation.partial)
                await uow.resources.save(rotated)
            await remember(uow, installation_id, key, rotation)
            await uow.commit()
        return rotation

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
