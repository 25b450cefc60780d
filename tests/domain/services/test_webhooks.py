"""Vercel's webhook events, in-process: stored before they are acknowledged, applied once, and what each does
(invoices suspend and resume resources, a member change ends sessions, a removal uninstalls). Vercel's answer to
"is this invoice really unpaid?" comes from the fake gateway."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from marketplace_provider.adapters.http.webhooks import parse_event, read_payload
from marketplace_provider.domain.errors import Unavailable
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoices import InvoiceSnapshot, InvoiceState
from marketplace_provider.domain.notifications import Level
from marketplace_provider.domain.outbox import (
    ReconfigureResource,
    ReleaseResource,
    SetInstallationNotification,
    SetResourceStatus,
)
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import (
    INSTALLATION,
    NOW,
    RESOURCE,
    a_resource,
    an_installation,
    owed,
    stored,
    stored_installation,
)
from tests.domain.services.fakes import FakeGateway

BILLING = "sso:https://p.test/dashboard/billing"
HAPPENED = NOW - timedelta(days=3)


@pytest.fixture
def webhooks(ports: Ports, gateway: FakeGateway) -> Webhooks:
    return Webhooks(ports, gateway, Installations(ports), billing_link=BILLING, read_payload=read_payload)  # type: ignore[arg-type]


def an_event(kind: str, *, event_id: str | None = None, hours: int = 0, **payload: object) -> StoredEvent:
    """A verified delivery as the HTTP adapter hands it over, `hours` after HAPPENED."""
    body = msgspec.json.encode({
        "id": event_id or f"evt_{kind}_{hours}",
        "type": kind,
        "createdAt": int((HAPPENED + timedelta(hours=hours)).timestamp() * 1000),
        "payload": {"configuration": {"id": INSTALLATION}, **payload},
    })
    return parse_event(body, NOW)


def invoice_event(kind: str, hours: int = 0, invoice_id: str = "inv_1", **payload: object) -> StoredEvent:
    return an_event(f"marketplace.invoice.{kind}", hours=hours, invoiceId=invoice_id, invoiceTotal="20.00", **payload)


async def deliver(webhooks: Webhooks, event: StoredEvent) -> bool:
    await webhooks.receive(event)
    return await webhooks.apply(event.id)


async def note_of(storage: Storage, event_id: str) -> str | None:
    async with storage.unit_of_work() as uow:
        event = await uow.webhook_events.hold(event_id)
    assert event is not None and event.applied_at == NOW
    return event.error


async def test_an_event_is_stored_once_and_applied_once(webhooks: Webhooks, storage: Storage) -> None:
    event = invoice_event("notpaid")
    assert await webhooks.receive(event) is True
    assert await webhooks.receive(event) is False  # delivered again: acknowledged, not stored twice
    assert await webhooks.apply(event.id) is True
    before = await owed(storage)
    assert await webhooks.apply(event.id) is False
    assert await webhooks.apply_pending() == 0
    assert await owed(storage) == before
    async with storage.unit_of_work() as uow:
        kept = await uow.webhook_events.hold(event.id)
    assert kept is not None and kept.delivery_count == 2


async def test_unpaid_suspends_with_the_provisioner_told_first_and_paid_resumes(
    webhooks: Webhooks, storage: Storage, gateway: FakeGateway
) -> None:
    assert await deliver(webhooks, invoice_event("created"))
    assert await deliver(webhooks, invoice_event("notpaid", hours=1))
    held = await stored(storage)
    assert held is not None and (held.status, held.billing_hold) == (ResourceStatus.SUSPENDED, True)
    installation = await stored_installation(storage)
    assert installation is not None and installation.notification is not None
    assert (installation.notification.level, installation.notification.href) == (Level.ERROR, BILLING)
    assert gateway.asked == [(INSTALLATION, "invoice inv_1")]  # Vercel was asked before anything was suspended
    assert await owed(storage) == [
        ReconfigureResource(before=a_resource(), after=held),
        SetResourceStatus(resource_id=RESOURCE, status=ResourceStatus.SUSPENDED),
        SetInstallationNotification(notification=installation.notification),
    ]
    assert await deliver(webhooks, invoice_event("paid", hours=2))
    resumed = await stored(storage)
    assert resumed is not None and (resumed.status, resumed.billing_hold) == (ResourceStatus.READY, False)
    installation = await stored_installation(storage)
    assert installation is not None and installation.notification is None
    async with storage.unit_of_work() as uow:
        invoice = await uow.invoices.get("inv_1")
        history = await uow.invoices.transitions("inv_1")
    assert invoice is not None and (invoice.state, invoice.failed_attempts, invoice.total) == (InvoiceState.PAID, 1, "20.00")
    assert [(t.from_state, t.to_state) for t in history] == [
        (None, InvoiceState.INVOICED), (InvoiceState.INVOICED, InvoiceState.NOTPAID), (InvoiceState.NOTPAID, InvoiceState.PAID)
    ]


async def test_a_stale_notpaid_changes_nothing_and_says_why(webhooks: Webhooks, storage: Storage) -> None:
    await deliver(webhooks, invoice_event("paid", hours=2))
    before = await owed(storage)
    assert await deliver(webhooks, invoice_event("notpaid", hours=1))
    assert await note_of(storage, "evt_marketplace.invoice.notpaid_1") == "stale or repeated notpaid: the invoice stays paid"
    assert (await stored(storage)).status is ResourceStatus.READY  # type: ignore[union-attr]
    assert await owed(storage) == before


async def test_nothing_is_suspended_when_vercel_says_the_invoice_is_paid(
    webhooks: Webhooks, storage: Storage, gateway: FakeGateway
) -> None:
    gateway.invoices["inv_1"] = InvoiceSnapshot(invoice_id="inv_1", state=InvoiceState.PAID, total="20.00")
    await deliver(webhooks, invoice_event("notpaid"))
    assert (await stored(storage)).status is ResourceStatus.READY  # type: ignore[union-attr]
    assert await owed(storage) == []


async def test_a_receiver_naming_the_type_gets_the_same_effects(
    webhooks: Webhooks, storage: Storage, gateway: FakeGateway
) -> None:
    """The HTTP adapter names the type of the event it just stored: events that need no word from Vercel skip a
    read; an unpaid invoice is still checked with Vercel first, and a repeat is still refused."""
    gateway.invoices["inv_1"] = InvoiceSnapshot(invoice_id="inv_1", state=InvoiceState.PAID, total="20.00")
    created, notpaid = invoice_event("created"), invoice_event("notpaid", hours=1)
    for event in (created, notpaid):
        await webhooks.receive(event)
        assert await webhooks.apply(event.id, event_type=event.type) is True
        assert await webhooks.apply(event.id, event_type=event.type) is False
    assert gateway.sent("get_invoice") == ["inv_1"]  # asked for the unpaid one only
    assert (await stored(storage)).status is ResourceStatus.READY  # type: ignore[union-attr]
    assert await owed(storage) == []


async def test_when_vercel_cannot_say_the_event_is_believed(webhooks: Webhooks, storage: Storage, gateway: FakeGateway) -> None:
    gateway.failing["get_invoice"] = Unavailable("Vercel did not answer")
    await deliver(webhooks, invoice_event("overdue"))
    assert (await stored(storage)).status is ResourceStatus.SUSPENDED  # type: ignore[union-attr]


async def test_a_refund_is_shown(webhooks: Webhooks, storage: Storage) -> None:
    await deliver(webhooks, invoice_event("paid"))
    await deliver(webhooks, invoice_event("refunded", hours=1, amount="5.00", reason="goodwill"))
    installation = await stored_installation(storage)
    assert installation is not None and installation.notification is not None
    assert installation.notification.message == "5.00 USD of invoice inv_1 was refunded: goodwill."


async def test_an_invoice_of_another_installation_is_left_alone(webhooks: Webhooks, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_other"))
        await uow.commit()
    other = an_event("marketplace.invoice.notpaid", event_id="evt_other", invoiceId="inv_1", configuration={"id": "icfg_other"})
    await deliver(webhooks, other)
    await deliver(webhooks, invoice_event("notpaid"))
    assert await note_of(storage, "evt_marketplace.invoice.notpaid_0") == "invoice inv_1 belongs to another installation: no effect"
    assert (await stored(storage)).status is ResourceStatus.READY  # type: ignore[union-attr]


async def test_events_without_effect_are_kept_with_the_reason(webhooks: Webhooks, storage: Storage) -> None:
    cases = {
        an_event("deployment.created"): "no action for deployment.created: recorded",
        an_event("marketplace.invoice.paid", event_id="evt_nobody", configuration={"id": "icfg_nobody"}, invoiceId="i"):
            "unknown installation: recorded, no effect",
        an_event("marketplace.invoice.paid", event_id="evt_no_invoice"): "Invalid: payload.invoiceId: is required for an invoice event",
        an_event("marketplace.member.changed", event_id="evt_no_member"): "names no memberId: no effect",
    }
    for event, note in cases.items():
        assert await deliver(webhooks, event)
        assert await note_of(storage, event.id) == note
    assert await owed(storage) == []


async def test_a_member_change_ends_that_members_sessions(webhooks: Webhooks, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        for n, user in enumerate(("usr_changed", "usr_other")):
            await uow.sessions.add(Session(id_hash=bytes([n]) * 32, installation_id=INSTALLATION, user_id=user, role=Role.ADMIN,
                                           created_at=NOW, expires_at=NOW + timedelta(hours=8)))
        await uow.commit()
    event = an_event("marketplace.member.changed", memberId="usr_changed", role="USER")
    await deliver(webhooks, event)
    async with storage.unit_of_work() as uow:
        sessions = [await uow.sessions.get(bytes([n]) * 32) for n in range(2)]
    assert [s.revoked_at for s in sessions] == [NOW, None]  # type: ignore[union-attr]
    assert await note_of(storage, event.id) == "1 session(s) of usr_changed ended"


async def test_a_removal_uninstalls_once(webhooks: Webhooks, storage: Storage) -> None:
    await deliver(webhooks, an_event("integration-configuration.removed", event_id="evt_gone"))
    installation = await stored_installation(storage)
    assert installation is not None and installation.lifecycle is Lifecycle.PENDING_DELETION  # a paid resource
    assert await note_of(storage, "evt_gone") == "uninstalled; final invoices are still owed, the worker finalizes it"
    assert await owed(storage) == [ReleaseResource(resource=a_resource())]
    await deliver(webhooks, an_event("integration-configuration-removed", event_id="evt_gone_again"))  # the legacy name
    assert await note_of(storage, "evt_gone_again") == "the installation is already pending_deletion: no effect"


async def test_events_left_unapplied_are_applied_by_the_sweep(webhooks: Webhooks, storage: Storage, gateway: FakeGateway) -> None:
    gateway.failing["get_invoice"] = Unavailable("down")  # asked, cannot say: the event is believed
    for event in (invoice_event("created"), invoice_event("notpaid", hours=1)):
        await webhooks.receive(event)
    assert await webhooks.apply_pending() == 2
    assert (await stored(storage)).status is ResourceStatus.SUSPENDED  # type: ignore[union-attr]
