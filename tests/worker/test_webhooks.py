"""Webhook events applied from the inbox: the invoice lifecycle in any delivery order, exactly once."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from itertools import combinations, permutations

import pytest

from marketplace_provider.adapters.http.webhooks import parse_event, read_payload
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceEvent, InvoiceState, take
from marketplace_provider.domain.notifications import Level
from marketplace_provider.domain.outbox import SetInstallationNotification, SetResourceStatus
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.worker.conftest import START, an_installation, drain
from tests.worker.test_jobs import a_resource

BILLING = "sso:https://provider.test/dashboard/billing"
T0 = START - timedelta(days=20)
# One invoice's life in Vercel's order; each event happened a day after the one before.
LIFE = ["created", "notpaid", "overdue", "paid", "refunded"]
STEP = {"created": InvoiceEvent.INVOICED, "notpaid": InvoiceEvent.NOT_PAID, "overdue": InvoiceEvent.OVERDUE,
        "paid": InvoiceEvent.PAID, "refunded": InvoiceEvent.REFUNDED}


@pytest.fixture
def webhooks(ports: Ports, vercel) -> Webhooks:
    return Webhooks(ports, vercel, Installations(ports), billing_link=BILLING, read_payload=read_payload)


def invoice_event(installation_id: str, invoice_id: str, kind: str, *, event_id: str | None = None) -> StoredEvent:
    payload: dict = {
        "configuration": {"id": installation_id},
        "installationId": installation_id,
        "invoiceId": invoice_id,
        "externalInvoiceId": f"{invoice_id}-ext",
        "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
    }
    if kind == "refunded":
        payload |= {"amount": "5.00", "reason": "goodwill"}
    else:
        payload |= {"invoiceDate": "2026-11-01T00:00:00Z", "invoiceTotal": "20.00"}
    happened = T0 + timedelta(days=LIFE.index(kind))
    body = {"id": event_id or f"evt_{invoice_id}_{kind}", "type": f"marketplace.invoice.{kind}",
            "createdAt": int(happened.timestamp() * 1000), "payload": payload}
    return parse_event(json.dumps(body).encode(), START)


async def seed(storage: Storage, installation_id: str) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(installation_id))
        await uow.resources.add(a_resource(installation_id, f"res_{installation_id}"))
        await uow.commit()


async def deliver(webhooks: Webhooks, event: StoredEvent) -> bool:
    await webhooks.receive(event)
    return await webhooks.apply(event.id)


async def state_of(storage: Storage, installation_id: str, invoice_id: str):
    async with storage.unit_of_work() as uow:
        return (
            await uow.invoices.get(invoice_id),
            await uow.resources.get(installation_id, f"res_{installation_id}"),
            await uow.installations.get(installation_id),
            [e.message for e in await uow.outbox.entries(installation_id)],
        )


def in_order(kinds: tuple[str, ...]) -> Invoice:
    """What the invoice must end as: the events applied in the order they happened."""
    invoice = Invoice.first_heard("x", "x")
    for kind in sorted(kinds, key=LIFE.index):
        invoice = take(invoice, STEP[kind], T0 + timedelta(days=LIFE.index(kind)))
    return invoice


async def test_every_order_of_every_set_of_invoice_events_ends_as_if_delivered_in_order(
    storage: Storage, webhooks: Webhooks, fresh_vercel: FakeVercel
) -> None:
    orders = [order for size in range(1, 6) for subset in combinations(LIFE, size) for order in permutations(subset)]
    assert len(orders) == 325
    for n, order in enumerate(orders):
        installation_id, invoice_id = f"icfg_perm{n}", f"inv_perm{n}"
        await seed(storage, installation_id)
        for kind in order:
            assert await deliver(webhooks, invoice_event(installation_id, invoice_id, kind))
        for kind in order:  # every event delivered again: acknowledged, applied already, nothing changes
            assert not await deliver(webhooks, invoice_event(installation_id, invoice_id, kind))
        invoice, resource, installation, owed = await state_of(storage, installation_id, invoice_id)
        expected = in_order(order)
        where = f"delivered as {order}"
        assert invoice is not None and invoice.state is expected.state, where
        assert (invoice.failed_attempts, invoice.notices) == (expected.failed_attempts, len(order)), where
        suspended = expected.state in (InvoiceState.NOTPAID, InvoiceState.OVERDUE)
        assert resource.status is (ResourceStatus.SUSPENDED if suspended else ResourceStatus.READY), where
        assert resource.billing_hold is suspended, where
        # what Vercel is told ends where we are: the last status and notification owed are the current ones
        statuses = [m.status for m in owed if isinstance(m, SetResourceStatus)]
        notices = [m.notification for m in owed if isinstance(m, SetInstallationNotification)]
        assert (statuses[-1] if statuses else ResourceStatus.READY) is resource.status, where
        assert (notices[-1] if notices else None) == installation.notification, where
        assert statuses == [ResourceStatus.SUSPENDED, ResourceStatus.READY][: len(statuses)], where  # no flapping
        if suspended:
            assert installation.notification.level is Level.ERROR and installation.notification.href == BILLING
        elif expected.state is InvoiceState.REFUNDED:
            assert installation.notification.level is Level.INFO and "goodwill" in installation.notification.message
            assert (invoice.refund_total, invoice.refund_reason) == ("5.00", "goodwill")
        else:
            assert installation.notification is None, where


async def test_notpaid_attempts_are_counted_and_shown_then_paid_resumes(
    storage: Storage, webhooks: Webhooks, fresh_vercel: FakeVercel, delivery: Delivery, clock: ManualClock
) -> None:
    await seed(storage, "icfg_tries")
    await deliver(webhooks, invoice_event("icfg_tries", "inv_tries", "created"))
    for attempt in range(1, 4):  # Vercel repeats notpaid on each failed attempt, with no attempt number
        await deliver(webhooks, invoice_event("icfg_tries", "inv_tries", "notpaid", event_id=f"evt_try{attempt}"))
    invoice, resource, installation, _ = await state_of(storage, "icfg_tries", "inv_tries")
    assert (invoice.state, invoice.failed_attempts) == (InvoiceState.NOTPAID, 3)
    assert "Payment attempt 3" in installation.notification.message and "20.00 USD" in installation.notification.message
    assert resource.status is ResourceStatus.SUSPENDED
    # Vercel was asked before anything was suspended, with the installation's token
    asked = [c for c in fresh_vercel.calls if c.method == "GET" and c.path.endswith("/billing/invoices/inv_tries")]
    assert len(asked) == 3 and asked[0].authorization == "Bearer token-icfg_tries"

    await deliver(webhooks, invoice_event("icfg_tries", "inv_tries", "paid"))
    invoice, resource, installation, _ = await state_of(storage, "icfg_tries", "inv_tries")
    assert invoice.state is InvoiceState.PAID and resource.status is ResourceStatus.READY
    assert installation.notification is None

    # what Vercel is told, once the worker delivers: suspended, the notifications, then ready and cleared
    fresh_vercel.resources["res_icfg_tries"] = {"name": "res_icfg_tries", "status": "ready"}
    await drain(delivery, clock, storage)
    told = [(c.method, c.path.rsplit("/", 1)[-1], c.json) for c in fresh_vercel.accepted if c.method == "PATCH"]
    assert [t[2].get("status") for t in told if t[1] == "res_icfg_tries"] == ["suspended", "ready"]
    notices = [t[2]["notification"] for t in told if t[1] == "icfg_tries"]
    assert [n and n["level"] for n in notices] == ["error", "error", "error", None]
    assert notices[0]["href"] == BILLING and "Payment attempt 1" in notices[0]["message"]


async def test_a_notpaid_that_vercel_says_is_paid_suspends_nothing(
    storage: Storage, webhooks: Webhooks, fresh_vercel: FakeVercel
) -> None:
    await seed(storage, "icfg_paidlate")
    fresh_vercel.invoices["inv_paidlate"] = {
        "invoiceId": "inv_paidlate", "state": "paid", "total": "20.00", "invoiceDate": "2026-11-01T00:00:00Z",
        "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "items": [],
        "created": "2026-11-01T00:00:00Z", "updated": "2026-11-02T00:00:00Z",
    }
    await deliver(webhooks, invoice_event("icfg_paidlate", "inv_paidlate", "notpaid"))
    invoice, resource, installation, owed = await state_of(storage, "icfg_paidlate", "inv_paidlate")
    assert invoice.state is InvoiceState.NOTPAID  # recorded as the event says
    assert resource.status is ResourceStatus.READY and installation.notification is None and owed == []


async def test_one_resume_waits_for_every_unpaid_invoice(storage: Storage, webhooks: Webhooks) -> None:
    await seed(storage, "icfg_two")
    await deliver(webhooks, invoice_event("icfg_two", "inv_a", "notpaid"))
    await deliver(webhooks, invoice_event("icfg_two", "inv_b", "overdue"))
    await deliver(webhooks, invoice_event("icfg_two", "inv_a", "paid"))
    _, resource, installation, _ = await state_of(storage, "icfg_two", "inv_a")
    assert resource.status is ResourceStatus.SUSPENDED and "overdue" in installation.notification.title.lower()
    await deliver(webhooks, invoice_event("icfg_two", "inv_b", "paid"))
    _, resource, installation, _ = await state_of(storage, "icfg_two", "inv_a")
    assert resource.status is ResourceStatus.READY and installation.notification is None


async def test_a_resource_suspended_for_another_reason_stays_suspended(storage: Storage, webhooks: Webhooks) -> None:
    await seed(storage, "icfg_other")
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("icfg_other", "res_icfg_other_2", status=ResourceStatus.SUSPENDED))
        await uow.commit()
    await deliver(webhooks, invoice_event("icfg_other", "inv_o", "notpaid"))
    await deliver(webhooks, invoice_event("icfg_other", "inv_o", "paid"))
    async with storage.unit_of_work() as uow:
        ours = await uow.resources.get("icfg_other", "res_icfg_other")
        theirs = await uow.resources.get("icfg_other", "res_icfg_other_2")
    assert ours.status is ResourceStatus.READY and theirs.status is ResourceStatus.SUSPENDED


async def test_events_for_unknown_installations_and_unknown_types_are_kept_without_effect(
    storage: Storage, webhooks: Webhooks
) -> None:
    stranger = invoice_event("icfg_nobody", "inv_nobody", "notpaid")
    other = parse_event(b'{"id":"evt_t","type":"deployment.created","createdAt":1764400000000,"payload":{}}', START)
    for event in (stranger, other):
        assert await deliver(webhooks, event)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get("inv_nobody") is None
        kept = await uow.webhook_events.hold("evt_t")
    assert kept.applied_at is not None and "no action" in (kept.error or "")


async def test_a_malformed_invoice_payload_is_marked_applied_with_the_reason(storage: Storage, webhooks: Webhooks) -> None:
    await seed(storage, "icfg_bad")
    bad = parse_event(
        b'{"id":"evt_bad","type":"marketplace.invoice.paid","createdAt":1764400000000,'
        b'"payload":{"configuration":{"id":"icfg_bad"}}}', START
    )
    assert await deliver(webhooks, bad)
    async with storage.unit_of_work() as uow:
        kept = await uow.webhook_events.hold("evt_bad")
        assert await uow.webhook_events.unapplied(10) == []
    assert "invoiceId" in (kept.error or "")


async def test_removed_uninstalls_once(storage: Storage, webhooks: Webhooks, ports: Ports) -> None:
    await seed(storage, "icfg_gone")
    removed = parse_event(
        json.dumps({"id": "evt_gone", "type": "integration-configuration.removed", "createdAt": 1764400000000,
                    "payload": {"configuration": {"id": "icfg_gone", "projectSelection": "all"}}}).encode(), START
    )
    assert await deliver(webhooks, removed)
    async with storage.unit_of_work() as uow:
        installation = await uow.installations.get("icfg_gone")
        resource = await uow.resources.get("icfg_gone", "res_icfg_gone")
    assert installation.lifecycle is Lifecycle.PENDING_DELETION  # a paid resource: final invoices still owed
    assert resource.status is ResourceStatus.UNINSTALLED
    again = parse_event(removed.body.replace(b"evt_gone", b"evt_gone2"), START)
    assert await deliver(webhooks, again)
    async with storage.unit_of_work() as uow:
        assert (await uow.webhook_events.hold("evt_gone2")).error.startswith("the installation is already")


async def test_two_processes_applying_the_same_events_apply_each_once(
    storage: Storage, webhooks: Webhooks, ports: Ports, vercel, clock: ManualClock
) -> None:
    await seed(storage, "icfg_race")
    events = [invoice_event("icfg_race", "inv_race", kind) for kind in LIFE]
    for event in events:
        await webhooks.receive(event)
    other = Webhooks(ports, vercel, Installations(ports), billing_link=BILLING, read_payload=read_payload)
    results = await asyncio.gather(*(w.apply(e.id) for e in events for w in (webhooks, other)))
    assert sum(results) == len(events)
    invoice, _, _, _ = await state_of(storage, "icfg_race", "inv_race")
    assert invoice.state is InvoiceState.REFUNDED and invoice.notices == 5


async def test_a_member_change_ends_that_members_sessions(storage: Storage, webhooks: Webhooks) -> None:
    await seed(storage, "icfg_member")
    async with storage.unit_of_work() as uow:
        for n, user in enumerate(("usr_changed", "usr_changed", "usr_other")):
            await uow.sessions.add(Session(id_hash=bytes([n]) * 32, installation_id="icfg_member", user_id=user,
                                           role=Role.ADMIN, created_at=START, expires_at=START + timedelta(hours=8)))
        await uow.commit()
    changed = parse_event(json.dumps({
        "id": "evt_member", "type": "marketplace.member.changed", "createdAt": 1764400000000,
        "payload": {"configuration": {"id": "icfg_member"}, "memberId": "usr_changed", "role": "USER"},
    }).encode(), START)
    assert await deliver(webhooks, changed)
    async with storage.unit_of_work() as uow:
        sessions = [await uow.sessions.get(bytes([n]) * 32) for n in range(3)]
        note = (await uow.webhook_events.hold("evt_member")).error
    assert [s.revoked_at is not None for s in sessions] == [True, True, False]
    assert note == "2 session(s) of usr_changed ended"
