"""Vercel's webhook events: stored before they are acknowledged (the inbox), then applied exactly once.

Applying an event holds it, and every event of its installation, for the length of one unit of work; the
event is marked applied in that same unit of work as its effects. So whichever process applies it (the server
right after the acknowledgement, the worker, the next start), and however often Vercel delivers it, its
effects happen once. Invoice events move the invoice by their `createdAt`, never backwards.
"""

from __future__ import annotations

import logging
from datetime import datetime

from marketplace_provider.domain.errors import DomainError, Unavailable
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.invoices import (
    Invoice,
    InvoiceEvent,
    InvoiceState,
    refund_notice,
    take_notice,
    unpaid,
    unpaid_notice,
)
from marketplace_provider.domain.outbox import ReconfigureResource, SetResourceStatus
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.notifications import show
from marketplace_provider.domain.webhooks import (
    INVOICE_EVENTS,
    MEMBER_CHANGED,
    REMOVED,
    ReadPayload,
    StoredEvent,
    changed_member,
    invoice_notice,
)
from marketplace_provider.ports.storage import UnitOfWork
from marketplace_provider.ports.vercel import VercelGateway

log = logging.getLogger("marketplace.webhooks")

# The events after which we ask Vercel whether the invoice really is unpaid before suspending anything.
CONFIRMED_BEFORE_SUSPENDING = (InvoiceEvent.NOT_PAID, InvoiceEvent.OVERDUE)


class Webhooks:
    def __init__(
        self,
        ports: Ports,
        vercel: VercelGateway,
        installations: Installations,
        *,
        billing_link: str,
        read_payload: ReadPayload,
    ) -> None:
        self.ports = ports
        self.vercel = vercel
        self.installations = installations
        self.billing_link = billing_link  # an sso: link to our billing page, for payment notifications
        self.read_payload = read_payload  # the wire format of a stored delivery is the HTTP adapter's

    async def receive(self, event: StoredEvent) -> bool:
        """Store a verified event before it is acknowledged; False when it was delivered before."""
        async with self.ports.storage.unit_of_work() as uow:
            new = await uow.webhook_events.record(event)
            await uow.commit()
        log.info("webhook %s (%s) for %s %s", event.id, event.type, event.installation_id or "no installation",
                 "stored" if new else "delivered again: already stored")
        return new

    async def apply_pending(self, limit: int = 100) -> int:
        """Apply what was stored but not applied yet (after a crash, or events the server left); how many."""
        async with self.ports.storage.unit_of_work() as uow:
            pending = await uow.webhook_events.unapplied(limit)
        return sum([await self.apply(event_id) for event_id in pending])

    async def apply(self, event_id: str, *, event_type: str | None = None) -> bool:
        """Apply one stored event unless it was applied already; True when this call applied it.

        `event_type`, when the caller knows it (it just received the event), spares a read for the events that
        need no word from Vercel first: one unit of work instead of two (issue 13, webhook ingest)."""
        confirmed = None
        if event_type is None or INVOICE_EVENTS.get(event_type) in CONFIRMED_BEFORE_SUSPENDING:
            async with self.ports.storage.unit_of_work() as uow:
                event = await uow.webhook_events.hold(event_id)
                installation = (
                    await uow.installations.get(event.installation_id) if event and event.installation_id else None
                )
            if event is None or event.applied_at is not None:
                return False
            confirmed = await self._vercel_state(event, installation)
        try:
            async with self.ports.storage.unit_of_work() as uow:
                event = await uow.webhook_events.hold(event_id)
                if event is None or event.applied_at is not None:
                    return False  # another process applied it meanwhile
                note = await self._dispatch(uow, event, confirmed)
                await uow.webhook_events.applied(event_id, self.ports.clock.now(), note)
                await uow.commit()
        except Unavailable:
            raise  # storage or Vercel down: the event stays unapplied and is tried again
        except DomainError as exc:  # the event cannot have an effect (a malformed payload): say why, once
            note = f"{type(exc).__name__}: {exc}"
            async with self.ports.storage.unit_of_work() as uow:
                await uow.webhook_events.applied(event_id, self.ports.clock.now(), note)
                await uow.commit()
        assert event is not None  # a DomainError comes from _dispatch, after the hold found the event
        log.info("webhook %s (%s) applied%s", event_id, event.type, f": {note}" if note else "")
        return True

    async def _vercel_state(self, event: StoredEvent, installation: Installation | None) -> InvoiceState | None:
        """Before suspending for an unpaid invoice, ask Vercel (outside any transaction) what it says now."""
        step = INVOICE_EVENTS.get(event.type)
        if step not in CONFIRMED_BEFORE_SUSPENDING or installation is None or installation.credentials is None:
            return None
        try:
            snapshot = await self.vercel.get_invoice(installation, invoice_notice(self.read_payload(event.body)).invoice_id)
        except (Unavailable, DomainError) as exc:
            log.warning("webhook %s: could not confirm the invoice with Vercel (%s); going by the event", event.id, exc)
            return None
        return snapshot.state if snapshot is not None else None

    async def _dispatch(self, uow: UnitOfWork, event: StoredEvent, confirmed: InvoiceState | None) -> str | None:
        """Apply the event's effects in `uow`; the returned note (why nothing happened) goes to the event log."""
        step = INVOICE_EVENTS.get(event.type)
        if step is None and event.type not in (*REMOVED, MEMBER_CHANGED):
            return f"no action for {event.type}: recorded"
        installation = await uow.installations.get(event.installation_id) if event.installation_id else None
        if installation is None:
            return "unknown installation: recorded, no effect"
        if step is not None:
            return await self._invoice_event(uow, event, installation, step, confirmed)
        if event.type == MEMBER_CHANGED:
            return await self._member_changed(uow, installation, event)
        return await self._removed(uow, installation, event)

    async def _member_changed(self, uow: UnitOfWork, installation: Installation, event: StoredEvent) -> str | None:
        """A member's role changed or they left: end their dashboard sessions; the next SSO reads the new role."""
        member_id = changed_member(self.read_payload(event.body))
        if member_id is None:
            return "names no memberId: no effect"
        ended = await uow.sessions.revoke_user(installation.id, member_id, self.ports.clock.now())
        return f"{ended} session(s) of {member_id} ended"

    # ------------------------------------------------------------ invoices

    async def _invoice_event(
        self,
        uow: UnitOfWork,
        event: StoredEvent,
        installation: Installation,
        step: InvoiceEvent,
        confirmed: InvoiceState | None,
    ) -> str | None:
        notice = invoice_notice(self.read_payload(event.body))
        known = await uow.invoices.get(notice.invoice_id)
        if known is not None and known.installation_id != installation.id:
            return f"invoice {notice.invoice_id} belongs to another installation: no effect"
        after, transition = take_notice(known, installation.id, notice, step, event.created_at, event.id)
        moved = transition is not None
        await uow.invoices.save(after, transition)
        if confirmed is not None and not unpaid(confirmed) and unpaid(after.state):
            log.warning("invoice %s: the event says %s but Vercel says %s; nothing is suspended",
                        after.id, after.state.value, confirmed.value)
        await self._settle(uow, installation, after, step, moved, confirmed)
        return None if moved else f"stale or repeated {step.value}: the invoice stays {after.state.value}"

    async def _settle(
        self,
        uow: UnitOfWork,
        installation: Installation,
        invoice: Invoice,
        step: InvoiceEvent,
        moved: bool,
        confirmed: InvoiceState | None,
    ) -> None:
        """Make resources and the notification match the installation's invoices as they now stand."""
        now = self.ports.clock.now()
        owing = [
            i for i in await uow.invoices.list_for_installation(installation.id)
            if unpaid(i.state) and not (i.id == invoice.id and confirmed is not None and not unpaid(confirmed))
        ]
        if owing:
            await self._hold_resources(uow, installation, now)
            await show(uow, installation, unpaid_notice(owing, self.billing_link), now)
            return
        await self._release_resources(uow, installation, now)
        if moved and step is InvoiceEvent.REFUNDED and invoice.state is InvoiceState.REFUNDED:
            await show(uow, installation, refund_notice(invoice), now)
        elif installation.notification is not None and installation.notification.href == self.billing_link:
            await show(uow, installation, None, now)  # ours, about payment: nothing is unpaid any more

    async def _hold_resources(self, uow: UnitOfWork, installation: Installation, at: datetime) -> None:
        for resource in await uow.resources.list_live(installation.id):
            await self._hold_changed(uow, resource, resource.suspend(at), at)

    async def _release_resources(self, uow: UnitOfWork, installation: Installation, at: datetime) -> None:
        for resource in await uow.resources.list_live(installation.id):
            await self._hold_changed(uow, resource, resource.resume(at), at)

    async def _hold_changed(self, uow: UnitOfWork, before: Resource, after: Resource, at: datetime) -> None:
        if after is before:
            return
        await uow.resources.save(after)
        # the real thing stops (or starts) serving, then Vercel shows it: both after the commit, in this order
        await uow.outbox.add(before.installation_id, ReconfigureResource(before=before, after=after), at)
        await uow.outbox.add(before.installation_id, SetResourceStatus(resource_id=before.id, status=after.status), at)

    # ------------------------------------------------------------ the installation removed on Vercel's side

    async def _removed(self, uow: UnitOfWork, installation: Installation, event: StoredEvent) -> str | None:
        if not installation.is_active:
            return f"the installation is already {installation.lifecycle.value}: no effect"
        finalized = await self.installations.uninstall_in(uow, installation, cascade=True, at=self.ports.clock.now())
        return None if finalized else "uninstalled; final invoices are still owed, the worker finalizes it"

