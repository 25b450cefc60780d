"""Outbox delivery: each message becomes its documented call; failures retry, dead-letter and never reorder."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.ids import RandomIds
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData, BillingItem, Usage, UsageType
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.money import usd
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import (
    AnnounceChange,
    FinalizeInstallation,
    OutboxMessage,
    OutboxState,
    PushResourceSecrets,
    ReportBalances,
    RetryPolicy,
    SetInstallationNotification,
    SetResourceStatus,
    SubmitBillingData,
    SubmitInvoice,
)
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import ResourceStatus, Secret
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.support.postgres import scratch_database
from tests.worker.conftest import START, an_installation, counts, drain

PERIOD = Period(start=START.replace(day=1, hour=0, minute=0), end=START.replace(day=30, hour=0, minute=0))


def an_item(total: str = "20.00") -> BillingItem:
    return BillingItem(
        billing_plan_id="pro", name="Pro", price=usd(total), quantity=1, units="month", total=usd(total), resource_id="r1"
    )


async def install(storage: Storage, *installation_ids: str, **changes: object) -> None:
    async with storage.unit_of_work() as uow:
        for installation_id in installation_ids:
            await uow.installations.save(an_installation(installation_id, **changes))
        await uow.commit()


async def record(storage: Storage, installation_id: str, *messages: OutboxMessage) -> list[str]:
    async with storage.unit_of_work() as uow:
        ids = [await uow.outbox.add(installation_id, m, START) for m in messages]
        await uow.commit()
    return ids


async def entries(storage: Storage, installation_id: str):
    async with storage.unit_of_work() as uow:
        return await uow.outbox.entries(installation_id)


def events_of(fake: FakeVercel, installation_id: str) -> list[str]:
    prefix = f"/v1/installations/{installation_id}/events"
    return [c.json["event"]["resourceId"] for c in fake.accepted if c.path == prefix]


async def test_each_message_becomes_its_documented_call(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_all")
    fresh_vercel.resources["r1"] = {"name": "kv", "status": "ready"}
    notification = Notification(level=Level.ERROR, title="Payment failed", href="sso:https://acme.test/billing")
    data = BillingData(
        timestamp=START, eod=START.replace(hour=23, minute=59), period=PERIOD, items=(an_item(),),
        usage=(Usage(name="Requests", type=UsageType.INTERVAL, units="requests", day_value=5, period_value=Decimal(50)),),
    )
    invoice = InvoiceRequest(invoice_date=START, period=PERIOD, items=(an_item(),), external_id="icfg_all-2026-11")
    await record(
        storage,
        "icfg_all",
        SetInstallationNotification(notification=notification),
        SetInstallationNotification(notification=None),
        SetResourceStatus(resource_id="r1", status=ResourceStatus.SUSPENDED),
        PushResourceSecrets(resource_id="r1", secrets=(Secret(name="KV_URL", value="redis://s3cret"),), partial=True),
        AnnounceChange(),
        AnnounceChange(resource_id="r1"),
        SubmitBillingData(data=data),
        SubmitInvoice(invoice=invoice),
        ReportBalances(timestamp=START, balances=(PrepaymentBalance(currency_value_in_cents=1234, resource_id="r1"),)),
        FinalizeInstallation(),
    )
    await drain(delivery, clock, storage)

    calls = fresh_vercel.accepted
    base = "/v1/installations/icfg_all"
    assert [(c.method, c.path) for c in calls] == [
        ("PATCH", base),
        ("PATCH", base),
        ("PATCH", base + "/resources/r1"),
        ("PUT", base + "/resources/r1/secrets"),
        ("POST", base + "/events"),
        ("POST", base + "/events"),
        ("POST", base + "/billing"),
        ("POST", base + "/billing/invoices"),
        ("POST", base + "/billing/balance"),
        ("POST", base + "/billing/finalize"),
    ]
    assert {c.authorization for c in calls} == {"Bearer token-icfg_all"}
    assert calls[0].json == {"notification": {"level": "error", "title": "Payment failed", "href": "sso:https://acme.test/billing"}}
    assert calls[1].json == {"notification": None}
    assert calls[2].json == {"status": "suspended"}
    assert calls[3].json["secrets"] == [{"name": "KV_URL", "value": "redis://s3cret"}] and calls[3].json["partial"] is True
    assert calls[4].json == {"event": {"type": "installation.updated"}}
    assert calls[5].json == {"event": {"type": "resource.updated", "resourceId": "r1"}}
    billing = calls[6].json
    assert billing["billing"]["items"][0]["total"] == "20.00" and billing["usage"][0]["periodValue"] == 50
    assert calls[7].json["externalId"] == "icfg_all-2026-11" and calls[7].json["items"][0]["price"] == "20.00"
    assert calls[8].json["balances"] == [{"currencyValueInCents": 1234, "resourceId": "r1"}]
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=0)
    assert all(e.state is OutboxState.DELIVERED for e in await entries(storage, "icfg_all"))
    async with storage.unit_of_work() as uow:
        finalized = await uow.installations.get("icfg_all")
    assert finalized is not None and finalized.lifecycle is Lifecycle.ACTIVE  # only pending deletions finalize


async def test_with_vercel_failing_half_the_calls_every_message_arrives_once_in_order(
    storage: Storage, ports: Ports, vercel, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    patient = Delivery(ports, vercel, RetryPolicy(max_attempts=100, first_delay_seconds=1, max_delay_seconds=60),
                       provisioner=ExampleProvisioner(), per_installation=7, jitter=lambda: 0.5)
    installations = [f"icfg_flaky{i}" for i in range(6)]
    await install(storage, *installations)
    for installation_id in installations:
        await record(storage, installation_id, *(AnnounceChange(resource_id=f"r{n}") for n in range(25)))
    fresh_vercel.flaky(0.5, seed=7)

    await drain(patient, clock, storage)

    failed = len(fresh_vercel.calls) - len(fresh_vercel.accepted)
    assert failed > 100  # Vercel really did fail about half the time
    for installation_id in installations:
        assert events_of(fresh_vercel, installation_id) == [f"r{n}" for n in range(25)]  # all, once, in order
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=0)


async def test_a_failing_installation_holds_back_only_its_own_later_messages(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_down", "icfg_up")
    for installation_id in ("icfg_down", "icfg_up"):
        await record(storage, installation_id, *(AnnounceChange(resource_id=f"r{n}") for n in range(3)))
    fresh_vercel.broken["icfg_down"] = 503

    assert await delivery.deliver_due() == 3
    down = await entries(storage, "icfg_down")
    assert [(e.attempts, e.last_error is not None) for e in down] == [(1, True), (0, False), (0, False)]
    assert len([c for c in fresh_vercel.calls if "icfg_down" in c.path]) == 2  # the head only (client retried once)
    assert await delivery.deliver_due() == 0  # the head waits for its backoff; nothing overtakes it

    del fresh_vercel.broken["icfg_down"]
    await drain(delivery, clock, storage)
    assert events_of(fresh_vercel, "icfg_down") == ["r0", "r1", "r2"]
    assert events_of(fresh_vercel, "icfg_up") == ["r0", "r1", "r2"]


async def test_a_refused_call_is_dead_at_once_keeps_its_error_and_can_be_retried(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_refused")
    first, *_ = await record(storage, "icfg_refused", *(AnnounceChange(resource_id=f"r{n}") for n in range(3)))
    fresh_vercel.fail_next(1, status=400)

    await drain(delivery, clock, storage)
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=1)
    dead = await entries(storage, "icfg_refused")
    assert dead[0].id == first and dead[0].state is OutboxState.DEAD and dead[0].attempts == 1
    assert "400" in (dead[0].last_error or "")
    assert events_of(fresh_vercel, "icfg_refused") == ["r1", "r2"]  # a dead message does not block the rest

    async with storage.unit_of_work() as uow:
        assert [e.id for e in await uow.outbox.dead(10)] == [first]
        assert await uow.outbox.revive([first], clock.now()) == 1
        await uow.commit()
    await drain(delivery, clock, storage)
    assert events_of(fresh_vercel, "icfg_refused") == ["r1", "r2", "r0"]
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=0)


async def test_retries_with_growing_backoff_then_dead_after_the_last_attempt(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_outage")
    await record(storage, "icfg_outage", AnnounceChange())
    fresh_vercel.fail_status = 500
    waits = []
    for attempt in range(1, 6):
        clock.advance(seconds=3600)
        assert await delivery.deliver_due() == 0
        (entry,) = await entries(storage, "icfg_outage")
        assert entry.attempts == attempt
        if entry.state is OutboxState.PENDING:
            waits.append((entry.due_at - clock.now()).total_seconds())
    assert waits == [0.5, 1.0, 2.0, 4.0]  # first delay 1 s, doubling, with jitter 0 -> half of each ceiling
    assert entry.state is OutboxState.DEAD and "500" in (entry.last_error or "")
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=1)


async def test_an_invoice_sent_twice_is_billed_once(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    """A worker that crashed after Vercel took the invoice sends it again: Vercel refuses the repeated external
    id (409) and the message counts as delivered."""
    await install(storage, "icfg_inv")
    invoice = InvoiceRequest(invoice_date=START, period=PERIOD, items=(an_item(),), external_id="icfg_inv-2026-11")
    await record(storage, "icfg_inv", SubmitInvoice(invoice=invoice), SubmitInvoice(invoice=invoice))
    await drain(delivery, clock, storage)
    assert len(fresh_vercel.invoices) == 1
    assert all(e.state is OutboxState.DELIVERED for e in await entries(storage, "icfg_inv"))


async def test_finalize_delivered_finalizes_the_installation_and_forgets_its_token(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_bye", lifecycle=Lifecycle.PENDING_DELETION, deleted_at=START)
    await record(storage, "icfg_bye", FinalizeInstallation(), AnnounceChange())
    await drain(delivery, clock, storage)
    async with storage.unit_of_work() as uow:
        installation = await uow.installations.get("icfg_bye")
    assert installation is not None and installation.lifecycle is Lifecycle.FINALIZED
    assert installation.credentials is None
    after = await entries(storage, "icfg_bye")
    assert after[1].state is OutboxState.DEAD and "access token" in (after[1].last_error or "")
    assert [c.path for c in fresh_vercel.accepted] == ["/v1/installations/icfg_bye/billing/finalize"]


async def test_finalize_waits_while_vercel_still_has_open_invoices(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_open", lifecycle=Lifecycle.PENDING_DELETION, deleted_at=START)
    await record(storage, "icfg_open", FinalizeInstallation())
    fresh_vercel.broken["icfg_open"] = 409
    assert await delivery.deliver_due() == 0
    (entry,) = await entries(storage, "icfg_open")
    assert entry.state is OutboxState.PENDING and entry.attempts == 1  # retried later, not dead
    del fresh_vercel.broken["icfg_open"]
    await drain(delivery, clock, storage)
    (entry,) = await entries(storage, "icfg_open")
    assert entry.state is OutboxState.DELIVERED


async def test_a_crashed_workers_lease_runs_out_and_its_messages_are_delivered(
    storage: Storage, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await install(storage, "icfg_crash")
    await record(storage, "icfg_crash", *(AnnounceChange(resource_id=f"r{n}") for n in range(3)))
    async with storage.unit_of_work() as uow:  # a worker takes them and dies before delivering
        taken = await uow.outbox.claim(clock.now(), clock.now() + timedelta(seconds=300), 10, 10)
        await uow.commit()
    assert len(taken) == 3
    assert await delivery.deliver_due() == 0
    clock.advance(seconds=301)
    await drain(delivery, clock, storage)
    assert events_of(fresh_vercel, "icfg_crash") == ["r0", "r1", "r2"]


async def test_two_workers_on_one_postgres_database_never_deliver_a_message_twice(
    vercel, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    """Several workers share PostgreSQL only (SQLite and memory run one), so this one needs no backend matrix."""
    installations = [f"icfg_pair{i}" for i in range(20)]
    async with scratch_database() as dsn:
        cipher = SecretCipher([("worker", os.urandom(32))])
        pools = [await PostgresStorage.open(dsn, cipher) for _ in range(2)]  # one pool per worker
        try:
            await install(pools[0], *installations)
            for installation_id in installations:
                await record(pools[0], installation_id, *(AnnounceChange(resource_id=f"r{n}") for n in range(15)))
            catalog = load_catalog(DEFAULT_PRODUCTS_FILE)
            workers = [
                Delivery(Ports(storage=pool, catalog=catalog, clock=clock, ids=RandomIds()), vercel, RetryPolicy(),
                         provisioner=ExampleProvisioner(), jitter=lambda: 0.5, installations_per_round=4,
                         per_installation=3)
                for pool in pools
            ]

            async def run(worker: Delivery) -> int:
                total = 0
                while (await counts(pools[0])).pending:
                    total += await worker.deliver_due()
                    await asyncio.sleep(0)
                return total

            shares = await asyncio.gather(*(run(w) for w in workers))
        finally:
            for pool in pools:
                await pool.close()
    assert sum(shares) == 300 and min(shares) > 0  # both worked, together exactly once each
    by_installation: dict[str, list[str]] = defaultdict(list)
    for call in fresh_vercel.accepted:
        by_installation[call.path.split("/")[3]].append(call.json["event"]["resourceId"])
    assert by_installation == {i: [f"r{n}" for n in range(15)] for i in installations}


def test_policy_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, first_delay_seconds=2, max_delay_seconds=5)
    assert policy.next_attempt(1, START, 0.999) is not None
    assert policy.next_attempt(3, START, 0.0) is None
    assert policy.next_attempt(10, START, 0.0) is None
    assert policy.next_attempt(2, START, 0.0) == START + timedelta(seconds=2)
