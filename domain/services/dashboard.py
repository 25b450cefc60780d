"""What a signed-in member sees and may do in our dashboard. Every action goes through the same permission
table as the Partner API (an ADMIN changes, a USER only looks), and whatever Vercel must learn goes through
the outbox."""

from __future__ import annotations

import msgspec

from marketplace_provider.domain.errors import Invalid, NotFound
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition, unpaid
from marketplace_provider.domain.notifications import Level, Notification, new_notification
from marketplace_provider.domain.outbox import AnnounceChange
from marketplace_provider.domain.periods import billing_month
from marketplace_provider.domain.plans import BillingPlan, choose_resource_plan
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.roles import Action, authorize, may
from marketplace_provider.domain.services.common import Ports, active_installation, live_resource
from marketplace_provider.domain.services.notifications import show
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.webhooks import INVOICE_EVENTS, ReadPayload, StoredEvent
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.usage import UsageReport, UsageSource

EVENT_LOG_LENGTH = 200


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    installation: Installation
    plan: BillingPlan | None
    resources: list[Resource]
    unpaid: list[Invoice]
    can_change: bool  # ADMIN: the page offers the forms


class ResourcePage(msgspec.Struct, frozen=True, kw_only=True):
    resource: Resource
    plan: BillingPlan | None
    plans: list[BillingPlan]  # what it may move to
    can_change: bool


class InvoicePage(msgspec.Struct, frozen=True, kw_only=True):
    invoice: Invoice
    history: list[InvoiceTransition]
    deliveries: int  # webhook deliveries about it, repeats included (Vercel sends no retry count)


class Dashboard:
    def __init__(
        self,
        ports: Ports,
        actions: ResourceActions,
        provisioner: ResourceProvisioner,
        usage: UsageSource,
        *,
        read_payload: ReadPayload,
    ) -> None:
        self.ports = ports
        self.actions = actions
        self.provisioner = provisioner
        self.usage_source = usage
        self.read_payload = read_payload  # to find the webhook deliveries about an invoice

    # ------------------------------------------------------------ pages

    async def overview(self, session: Session) -> Overview:
        authorize(session.caller, Action.READ_INSTALLATION, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, session.installation_id)
            resources = await uow.resources.list_live(installation.id)
            invoices = await uow.invoices.list_for_installation(installation.id)
        plan = self.ports.catalog.plan(installation.billing_plan_id) if installation.billing_plan_id else None
        return Overview(
            installation=installation,
            plan=plan,
            resources=resources,
            unpaid=[i for i in invoices if unpaid(i.state)],
            can_change=may(session.caller, Action.SET_NOTIFICATION),
        )

    async def resource(self, session: Session, resource_id: str) -> ResourcePage:
        authorize(session.caller, Action.READ_RESOURCE, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, session.installation_id)
            resource = await live_resource(uow, session.installation_id, resource_id)
        catalog = self.ports.catalog
        product = catalog.product(resource.product_id)
        plans = [p for p in catalog.product_plans(product) if not p.disabled] if product else []
        return ResourcePage(
            resource=resource,
            plan=catalog.plan(resource.billing_plan_id),
            plans=plans,
            can_change=may(session.caller, Action.UPDATE_RESOURCE),
        )

    async def billing(self, session: Session) -> tuple[BillingPlan | None, list[Invoice]]:
        """The installation's plan and its invoices, most recently changed first."""
        authorize(session.caller, Action.READ_INSTALLATION, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, session.installation_id)
            invoices = await uow.invoices.list_for_installation(installation.id)
        plan = self.ports.catalog.plan(installation.billing_plan_id) if installation.billing_plan_id else None
        return plan, invoices

    async def invoice(self, session: Session, invoice_id: str) -> InvoicePage:
        authorize(session.caller, Action.READ_INSTALLATION, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            invoice = await uow.invoices.get(invoice_id)
            if invoice is None or invoice.installation_id != session.installation_id:
                raise NotFound(f"invoice {invoice_id} not found")
            history = await uow.invoices.transitions(invoice_id)
            events = await uow.webhook_events.list_for_installation(session.installation_id, EVENT_LOG_LENGTH)
        deliveries = sum(
            e.delivery_count
            for e in events
            if e.type in INVOICE_EVENTS and self.read_payload(e.body).get("invoiceId") == invoice_id
        )
        return InvoicePage(invoice=invoice, history=history, deliveries=deliveries)

    async def events(self, session: Session) -> list[StoredEvent]:
        authorize(session.caller, Action.READ_INSTALLATION, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            return await uow.webhook_events.list_for_installation(session.installation_id, EVENT_LOG_LENGTH)

    async def usage(self, session: Session) -> tuple[UsageReport, list[Resource]]:
        """This month so far, from the usage source the worker bills with."""
        authorize(session.caller, Action.READ_INSTALLATION, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, session.installation_id)
            resources = await uow.resources.list_all(installation.id)
        now = self.ports.clock.now()
        report = await self.usage_source.report(installation, resources, billing_month(now), now)
        return report, resources

    # ------------------------------------------------------------ changes (ADMIN)

    async def set_notification(self, session: Session, level: str, title: str, message: str | None) -> None:
        authorize(session.caller, Action.SET_NOTIFICATION, session.installation_id)
        try:
            chosen = Level(level)
        except ValueError:
            raise Invalid.field("level", "must be info, warn or error") from None
        notification = new_notification(chosen, title.strip(), (message or "").strip() or None)
        await self._show(session, notification)

    async def clear_notification(self, session: Session) -> None:
        authorize(session.caller, Action.SET_NOTIFICATION, session.installation_id)
        await self._show(session, None)

    async def _show(self, session: Session, notification: Notification | None) -> None:
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, session.installation_id)
            await show(uow, installation, notification, self.ports.clock.now())
            await uow.commit()

    async def rotate_secrets(self, session: Session, resource_id: str) -> None:
        """New secrets now (pushed to Vercel through the outbox), or later when the provisioner finishes."""
        authorize(session.caller, Action.ROTATE_SECRETS, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, session.installation_id)
            resource = await live_resource(uow, session.installation_id, resource_id)
        rotation = await self.provisioner.rotate_secrets(resource, "rotated from the provider dashboard", 0)
        if rotation.sync:
            await self.actions.push_secrets(session.installation_id, resource_id, rotation.secrets, partial=rotation.partial)

    async def change_plan(self, session: Session, resource_id: str, plan_id: str) -> None:
        """Move a resource to another plan of its product; Vercel is told to re-read the resource. The
        provisioner reconfigures with no transaction open, as for the Partner API's update."""
        authorize(session.caller, Action.UPDATE_RESOURCE, session.installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, session.installation_id)
            before = await live_resource(uow, session.installation_id, resource_id)
        product = self.ports.catalog.product(before.product_id)
        if product is None:
            raise NotFound(f"product {before.product_id!r} is no longer sold")
        plan = choose_resource_plan(self.ports.catalog, product, plan_id)
        after = before.change_plan(plan, self.ports.clock.now())
        if after is before:
            return
        await self.provisioner.reconfigure(before, after)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, session.installation_id)
            current = await live_resource(uow, session.installation_id, resource_id)  # whatever else changed meanwhile
            now = self.ports.clock.now()
            await uow.resources.save(current.change_plan(plan, now))
            await uow.outbox.add(current.installation_id, AnnounceChange(resource_id=current.id), now)
            await uow.commit()
