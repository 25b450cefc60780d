"""Installation use cases: upsert, read, change plan, uninstall."""

from __future__ import annotations

from datetime import datetime

import msgspec

from marketplace_provider.domain.installations import Installation, InstallationDetails, new_installation
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.outbox import ReleaseResource
from marketplace_provider.domain.plans import BillingPlan, choose_installation_plan
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, RequestKey, active_installation, once
from marketplace_provider.ports.storage import UnitOfWork


class InstallationView(msgspec.Struct, frozen=True, kw_only=True):
    billing_plan: BillingPlan | None
    notification: Notification | None


class Uninstalled(msgspec.Struct, frozen=True, kw_only=True):
    """finalized: None when there was nothing left to uninstall (answered 204)."""

    finalized: bool | None


class Installations:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def upsert(
        self, caller: Caller, installation_id: str, details: InstallationDetails, key: RequestKey | None
    ) -> None:
        authorize(caller, Action.UPSERT_INSTALLATION, installation_id)
        now = self.ports.clock.now()
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> None:
                known = await uow.installations.get(installation_id)
                if known is None:
                    default = self.ports.catalog.default_installation_plan()
                    installation = new_installation(installation_id, details, default.id if default else None, now)
                else:  # a re-install or a retry
                    installation = known.reinstall(details, now)
                await uow.installations.save(installation)

            await once(uow, installation_id, key, type(None), work)
            await uow.commit()

    async def get(self, caller: Caller, installation_id: str) -> InstallationView:
        authorize(caller, Action.READ_INSTALLATION, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, installation_id)
        plan = self.ports.catalog.plan(installation.billing_plan_id) if installation.billing_plan_id else None
        return InstallationView(billing_plan=plan, notification=installation.notification)

    async def change_plan(
        self, caller: Caller, installation_id: str, billing_plan_id: str | None, key: RequestKey | None
    ) -> None:
        authorize(caller, Action.UPDATE_INSTALLATION, installation_id)
        if billing_plan_id is not None:
            choose_installation_plan(self.ports.catalog, billing_plan_id)
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> None:
                installation = await active_installation(uow, installation_id)
                if billing_plan_id is None:
                    return
                changed = installation.change_plan(billing_plan_id, self.ports.clock.now())
                if changed is not installation:
                    await uow.installations.save(changed)

            await once(uow, installation_id, key, type(None), work)
            await uow.commit()

    async def uninstall_in(self, uow: UnitOfWork, installation: Installation, *, cascade: bool, at: datetime) -> bool:
        """Uninstall an active installation within the caller's unit of work (the Partner API's uninstall, or
        Vercel's removal webhook); True when it is finalized at once, False when it waits pending deletion for its
        final invoices (the worker finalizes it). With `cascade`, its live resources go too, and the provisioner
        releases them after the commit (the worker delivers ReleaseResource)."""
        resources = await uow.resources.list_live(installation.id)
        if cascade:
            for resource in resources:
                await uow.resources.save(resource.uninstall(at))
                await uow.outbox.add(installation.id, ReleaseResource(resource=resource), at)
        plan_ids = {r.billing_plan_id for r in resources}
        if installation.billing_plan_id:
            plan_ids.add(installation.billing_plan_id)
        uninstalled = installation.uninstall(at, [self.ports.catalog.plan(p) for p in plan_ids])
        await uow.installations.save(uninstalled)
        return uninstalled.is_finalized

    async def uninstall(
        self, caller: Caller, installation_id: str, cascade: bool, key: RequestKey | None
    ) -> Uninstalled:
        """Start the uninstall. Finalized at once when nothing can be billed any more; otherwise kept
        pending deletion so that final invoices can still be sent (the worker finalizes it)."""
        authorize(caller, Action.DELETE_INSTALLATION, installation_id)
        now = self.ports.clock.now()
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> Uninstalled:
                installation = await uow.installations.get(installation_id)
                if installation is None or not installation.is_active:
                    return Uninstalled(finalized=None)
                return Uninstalled(finalized=await self.uninstall_in(uow, installation, cascade=cascade, at=now))

            outcome = await once(uow, installation_id, key, Uninstalled, work)
            await uow.commit()
        return outcome

