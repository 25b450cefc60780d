"""Outbox delivery, in-process: what each message becomes at the fake Vercel gateway or the fake provisioner, in
order per installation; retries at the moment the policy and the injected jitter say, dead letters, and the
answers that mean "already done"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Invalid, Unavailable
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import (
    AnnounceChange,
    FinalizeInstallation,
    OutboxMessage,
    OutboxState,
    ReconfigureResource,
    ReleaseResource,
    RetryPolicy,
    SetInstallationNotification,
    SetResourceStatus,
    SubmitInvoice,
)
from marketplace_provider.domain.periods import billing_month, last_instant
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.updates import (
    CLEAR,
    InstallationEvent,
    InstallationUpdate,
    ResourceEvent,
    ResourceUpdate,
)
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.vercel import VercelApiError
from tests.domain.services.conftest import INSTALLATION, NOW, RESOURCE, a_resource, an_installation, stored_installation
from tests.domain.services.fakes import FakeGateway, FakeProvisioner
from tests.domain.services.test_scheduled import ITEM
from tests.support.clock import ManualClock

POLICY = RetryPolicy(max_attempts=3, first_delay_seconds=2, max_delay_seconds=60)
NOTICE = Notification(level=Level.INFO, title="Hello")


@pytest.fixture
def delivery(ports: Ports, gateway: FakeGateway, provisioner: FakeProvisioner) -> Delivery:
    return Delivery(ports, gateway, POLICY, provisioner=provisioner, jitter=lambda: 0.5)  # type: ignore[arg-type]


async def owe(storage: Storage, *messages: OutboxMessage, installation_id: str = INSTALLATION) -> None:
    async with storage.unit_of_work() as uow:
        for message in messages:
            await uow.outbox.add(installation_id, message, NOW)
        await uow.commit()


async def states(storage: Storage, installation_id: str = INSTALLATION) -> list[tuple[OutboxState, int]]:
    async with storage.unit_of_work() as uow:
        return [(e.state, e.attempts) for e in await uow.outbox.entries(installation_id)]


async def test_messages_become_vercel_calls_in_the_order_they_were_recorded(
    delivery: Delivery, storage: Storage, gateway: FakeGateway
) -> None:
    await owe(
        storage,
        SetInstallationNotification(notification=NOTICE),
        SetResourceStatus(resource_id=RESOURCE, status=ResourceStatus.SUSPENDED),
        AnnounceChange(resource_id=RESOURCE),
        AnnounceChange(billing_plan_id="team-pro"),
        SetInstallationNotification(notification=None),
    )
    assert await delivery.deliver_due() == 5
    assert [(i, m, w) for i, m, w in gateway.calls] == [
        (INSTALLATION, "update_installation", InstallationUpdate(notification=NOTICE)),
        (INSTALLATION, "update_resource", (RESOURCE, ResourceUpdate(status=ResourceStatus.SUSPENDED))),
        (INSTALLATION, "send_event", ResourceEvent(resource_id=RESOURCE)),
        (INSTALLATION, "send_event", InstallationEvent(billing_plan_id="team-pro")),
        (INSTALLATION, "update_installation", InstallationUpdate(notification=CLEAR)),
    ]
    assert await states(storage) == [(OutboxState.DELIVERED, 0)] * 5
    assert await delivery.deliver_due() == 0


async def test_a_failure_is_retried_when_the_policy_says_and_holds_back_what_follows(
    delivery: Delivery, storage: Storage, gateway: FakeGateway, clock: ManualClock
) -> None:
    await owe(storage, AnnounceChange(resource_id=RESOURCE), SetInstallationNotification(notification=NOTICE))
    gateway.failing["send_event"] = VercelApiError(503, "unavailable", "try later")
    assert await delivery.deliver_due() == 0
    assert await states(storage) == [(OutboxState.PENDING, 1), (OutboxState.PENDING, 0)]
    assert gateway.sent("update_installation") == []  # the second waits behind the first
    clock.advance(seconds=1.49)  # first delay 2 s, jitter 0.5: due after 2 * (0.5 + 0.25) = 1.5 s
    assert await delivery.deliver_due() == 0 and len(gateway.sent("send_event")) == 1
    clock.advance(seconds=0.01)
    del gateway.failing["send_event"]
    assert await delivery.deliver_due() == 2
    assert await states(storage) == [(OutboxState.DELIVERED, 1), (OutboxState.DELIVERED, 0)]


async def test_after_the_last_attempt_a_message_is_dead(
    delivery: Delivery, storage: Storage, gateway: FakeGateway, clock: ManualClock
) -> None:
    await owe(storage, AnnounceChange(resource_id=RESOURCE))
    gateway.failing["send_event"] = Unavailable("Vercel unreachable")
    for _ in range(POLICY.max_attempts):
        await delivery.deliver_due()
        clock.advance(seconds=POLICY.max_delay_seconds)
    assert await states(storage) == [(OutboxState.DEAD, 3)]
    async with storage.unit_of_work() as uow:
        [dead] = await uow.outbox.dead(10)
    assert dead.last_error == "Vercel unreachable"


@pytest.mark.parametrize(
    "failure",
    [VercelApiError(400, "bad_request", "no"), Invalid.field("x", "the message no longer fits")],
    ids=["refused by Vercel", "a domain rule"],
)
async def test_what_cannot_succeed_is_dead_at_once(
    delivery: Delivery, storage: Storage, gateway: FakeGateway, failure: Exception
) -> None:
    await owe(storage, AnnounceChange(resource_id=RESOURCE))
    gateway.failing["send_event"] = failure
    await delivery.deliver_due()
    assert await states(storage) == [(OutboxState.DEAD, 1)]


async def test_without_an_access_token_nothing_is_sent(delivery: Delivery, storage: Storage, gateway: FakeGateway) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(credentials=None, lifecycle=Lifecycle.FINALIZED))
        await uow.commit()
    await owe(storage, AnnounceChange(resource_id=RESOURCE))
    await delivery.deliver_due()
    assert gateway.calls == [] and await states(storage) == [(OutboxState.DEAD, 1)]


async def test_finalization_waits_for_open_invoices_then_forgets_the_token(
    delivery: Delivery, storage: Storage, gateway: FakeGateway, clock: ManualClock
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(lifecycle=Lifecycle.PENDING_DELETION, deleted_at=NOW))
        await uow.commit()
    await owe(storage, FinalizeInstallation())
    gateway.failing["finalize_installation"] = VercelApiError(409, "open_invoices", "an invoice is still open")
    await delivery.deliver_due()
    assert await states(storage) == [(OutboxState.PENDING, 1)]  # a 409 here is not final: tried again later
    clock.advance(seconds=POLICY.max_delay_seconds)
    pending = await stored_installation(storage)
    assert pending is not None and pending.credentials is not None
    del gateway.failing["finalize_installation"]
    assert await delivery.deliver_due() == 1
    final = await stored_installation(storage)
    assert final is not None and (final.lifecycle, final.credentials) == (Lifecycle.FINALIZED, None)
    assert final.updated_at == clock.now()


async def test_the_provisioner_hears_of_changes_made_on_our_side_without_a_token(
    delivery: Delivery, storage: Storage, provisioner: FakeProvisioner, gateway: FakeGateway
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(credentials=None, lifecycle=Lifecycle.FINALIZED))
        await uow.commit()
    resource = a_resource()
    await owe(storage, ReconfigureResource(before=resource, after=resource.suspend(NOW)), ReleaseResource(resource=resource))
    assert await delivery.deliver_due() == 2
    assert provisioner.calls == [("reconfigure", RESOURCE), ("deprovision", RESOURCE)] and gateway.calls == []


async def test_an_invoice_vercel_already_has_counts_as_delivered(
    delivery: Delivery, storage: Storage, gateway: FakeGateway
) -> None:
    month = billing_month(NOW - timedelta(days=31))
    invoice = InvoiceRequest(invoice_date=last_instant(month), period=month, items=(ITEM,), external_id="inv-ext-1")
    await owe(storage, SubmitInvoice(invoice=invoice))
    gateway.failing["submit_invoice"] = VercelApiError(409, "conflict", "an invoice with this external id exists")
    assert await delivery.deliver_due() == 1
    assert await states(storage) == [(OutboxState.DELIVERED, 0)]


async def test_installations_are_delivered_side_by_side_each_in_order(
    delivery: Delivery, storage: Storage, gateway: FakeGateway
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_b"))
        await uow.commit()
    await owe(storage, AnnounceChange(resource_id="r1"), AnnounceChange(resource_id="r2"))
    await owe(storage, AnnounceChange(resource_id="b1"), installation_id="icfg_b")
    gateway.failing["send_event"] = VercelApiError(503, "unavailable", "busy")
    await delivery.deliver_due()
    assert sorted((i, w.resource_id) for i, _, w in gateway.calls) == [(INSTALLATION, "r1"), ("icfg_b", "b1")]  # type: ignore[attr-defined]
