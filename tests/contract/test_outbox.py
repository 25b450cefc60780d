"""The outbox and job-run repositories' contract, on memory, SQLite and PostgreSQL alike (see conftest.py).

claim() takes any installation's messages, so every test here has a store of its own: on PostgreSQL a
scratch database per test rather than the session's shared one."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import get_args

import asyncpg
import msgspec
import pytest

from marketplace_provider.adapters.cipher import CipherError, SecretCipher
from marketplace_provider.adapters.storage.migrations import (
    migrate_postgres,
    migrate_sqlite,
    migrations,
    pending_postgres,
    pending_sqlite,
)
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData, BillingItem, Discount, Usage, UsageType
from marketplace_provider.domain.experimentation import ExperimentationItem, ItemCategory
from marketplace_provider.domain.invoice_requests import InvoiceRequest, InvoiceTest, InvoiceTestResult
from marketplace_provider.domain.money import usd
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import (
    AnnounceChange,
    CreateExperimentationItems,
    DeleteExperimentationItem,
    FinalizeInstallation,
    FinishProvisioning,
    ImportResource,
    OutboxCounts,
    OutboxEntry,
    OutboxMessage,
    OutboxState,
    PushExperimentationConfig,
    PushResourceSecrets,
    ReconfigureResource,
    ReleaseResource,
    ReportBalances,
    SetInstallationNotification,
    SetResourceNotification,
    SetResourceStatus,
    SubmitBillingData,
    SubmitInvoice,
    UpdateExperimentationItem,
)
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import EnvironmentOverrides, Resource, ResourceStatus, Secret
from marketplace_provider.domain.updates import ImportedResource, Ownership
from marketplace_provider.ports.storage import Storage
from tests.contract.conftest import SqlDatabase
from tests.contract.test_storage import an_installation, new_installation, uid

NOW = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=30)
PERIOD = Period(start=datetime(2025, 3, 1, tzinfo=UTC), end=datetime(2025, 4, 1, tzinfo=UTC))


pytestmark = pytest.mark.own_database  # a database per test: claims and sweeps read every row


# Messages as the use cases write them


def items() -> tuple[BillingItem, ...]:
    return (
        BillingItem(
            billing_plan_id="pro",
            name="Pro plan",
            price=usd("10.00"),
            quantity=1,
            units="month",
            total=usd("10.00"),
            resource_id="res_1",
        ),
        BillingItem(
            billing_plan_id="pro",
            name="Storage",
            price=usd("0.20"),
            quantity=Decimal("2.5"),
            units="GB",
            total=usd("0.50"),
            details="above the included 10 GB",
            start=datetime(2025, 3, 2, tzinfo=UTC),
            end=datetime(2025, 3, 4, tzinfo=UTC),
        ),
    )


def every_kind() -> list[OutboxMessage]:
    """One message of each kind (two where an optional part matters)."""
    return [
        SetInstallationNotification(
            notification=Notification(level=Level.WARN, title="Payment failed", message="m", href="https://acme.test")
        ),
        SetInstallationNotification(notification=None),
        SetResourceStatus(resource_id="res_1", status=ResourceStatus.SUSPENDED),
        PushResourceSecrets(
            resource_id="res_1",
            secrets=(
                Secret(name="DATABASE_URL", value=uid("postgres://rotated")),
                Secret(
                    name="TOKEN",
                    value=uid("token"),
                    prefix="NEXT_PUBLIC_",
                    environment_overrides=EnvironmentOverrides(preview=uid("preview")),
                ),
            ),
            partial=True,
        ),
        AnnounceChange(resource_id="res_1", billing_plan_id="pro"),
        AnnounceChange(),
        SubmitBillingData(
            data=BillingData(
                timestamp=NOW,
                eod=datetime(2025, 3, 4, 23, 59, 59, 999999, tzinfo=UTC),
                period=PERIOD,
                items=items(),
                usage=(
                    Usage(
                        name="Storage",
                        type=UsageType.TOTAL,
                        units="GB",
                        day_value=Decimal("12.5"),
                        period_value=Decimal("12.5"),
                        plan_value=10,
                        resource_id="res_1",
                    ),
                    Usage(name="Queries", type=UsageType.INTERVAL, units="queries", day_value=1200, period_value=36000),
                ),
                discounts=(Discount(billing_plan_id="pro", name="Launch", amount=usd("1.00")),),
            )
        ),
        SubmitInvoice(
            invoice=InvoiceRequest(
                invoice_date=NOW,
                period=PERIOD,
                items=items(),
                external_id=uid("inv"),
                memo="March",
                test=InvoiceTest(result=InvoiceTestResult.PAID),
            )
        ),
        ReportBalances(
            timestamp=NOW,
            balances=(
                PrepaymentBalance(currency_value_in_cents=150_000, credit="1,500 Tokens", name_label="Tokens"),
                PrepaymentBalance(currency_value_in_cents=0, resource_id="res_1"),
            ),
        ),
        FinalizeInstallation(),
        # the provider-side actions' (README, "Actions from your side")
        SetResourceNotification(resource_id="res_1", notification=Notification(level=Level.INFO, title="Ready")),
        SetResourceNotification(resource_id="res_1", notification=None),
        FinishProvisioning(
            resource_id="res_1", status=ResourceStatus.READY, secrets=(Secret(name="KV_URL", value=uid("redis")),)
        ),
        ImportResource(
            resource_id="res_2",
            resource=ImportedResource(
                product_id="acme-kv",
                name="made-here",
                status=ResourceStatus.ONBOARDING,
                ownership=Ownership.LINKED,
                metadata={"region": "iad1", "max_memory_mb": 256},
                billing_plan=load_catalog(DEFAULT_PRODUCTS_FILE).plan("pro"),
                notification=Notification(level=Level.ERROR, title="Finish onboarding", href="sso:https://p.test/o"),
                extras={"console": "https://p.test/kv"},
                secrets=(Secret(name="KV_URL", value=uid("redis")),),
            ),
        ),
        CreateExperimentationItems(
            resource_id="res_1",
            items=(
                ExperimentationItem(id="f1", slug="new-checkout", origin="https://p.test/f1", category=ItemCategory.FLAG,
                                    name="New checkout", is_archived=False, created_at=1_760_000_000_000),
                ExperimentationItem(id="e1", slug="pricing", origin="https://p.test/e1"),
            ),
        ),
        UpdateExperimentationItem(
            resource_id="res_1", item=ExperimentationItem(id="f1", slug="new-checkout", origin="https://p.test/f1")
        ),
        DeleteExperimentationItem(resource_id="res_1", item_id="f1"),
        PushExperimentationConfig(resource_id="res_1", data={"new-checkout": {"enabled": True, "rollout": 0.25}}),
        # owed to the integrator's provisioner (a suspension, an uninstall made inside a transaction)
        ReconfigureResource(before=a_resource(), after=a_resource(status=ResourceStatus.SUSPENDED, billing_hold=True)),
        ReleaseResource(resource=a_resource()),
    ]


def a_resource(**changes: object) -> Resource:
    resource = Resource(
        id="res_1", installation_id="icfg_1", product_id="acme-kv", name="kv", metadata={"region": "iad1"},
        billing_plan_id="pro", status=ResourceStatus.READY, secrets=(Secret(name="KV_URL", value=uid("redis")),),
        created_at=NOW, updated_at=NOW,
    )
    return msgspec.structs.replace(resource, **changes)


def status(n: int) -> SetResourceStatus:
    return SetResourceStatus(resource_id=f"res_{n}", status=ResourceStatus.READY)


# Helpers: each call its own unit of work, committed, as the worker does


async def added(storage: Storage, installation_id: str, *messages: OutboxMessage, at: datetime = NOW) -> list[str]:
    async with storage.unit_of_work() as uow:
        ids = [await uow.outbox.add(installation_id, message, at) for message in messages]
        await uow.commit()
    return ids


async def installation_with(storage: Storage, count: int, at: datetime = NOW) -> tuple[str, list[str]]:
    """A new installation with `count` status messages; its id and theirs."""
    installation = await new_installation(storage)
    return installation.id, await added(storage, installation.id, *(status(n) for n in range(count)), at=at)


async def claim(
    storage: Storage, now: datetime = NOW, installations: int = 10, per_installation: int = 10
) -> list[OutboxEntry]:
    async with storage.unit_of_work() as uow:
        claimed = await uow.outbox.claim(now, now + LEASE, installations, per_installation)
        await uow.commit()
    return claimed


async def claimed_ids(storage: Storage, now: datetime = NOW, installations: int = 10, per: int = 10) -> list[str]:
    return [entry.id for entry in await claim(storage, now, installations, per)]


async def entries(storage: Storage, installation_id: str) -> list[OutboxEntry]:
    async with storage.unit_of_work() as uow:
        return await uow.outbox.entries(installation_id)


async def one(storage: Storage, installation_id: str, entry_id: str) -> OutboxEntry:
    return next(entry for entry in await entries(storage, installation_id) if entry.id == entry_id)


async def delivered(storage: Storage, *ids: str, at: datetime = NOW) -> None:
    async with storage.unit_of_work() as uow:
        for entry_id in ids:
            await uow.outbox.delivered(entry_id, at)
        await uow.commit()


async def failed(storage: Storage, entry_id: str, error: str, retry_at: datetime | None) -> None:
    async with storage.unit_of_work() as uow:
        await uow.outbox.failed(entry_id, error, retry_at)
        await uow.commit()


async def released(storage: Storage, *ids: str) -> None:
    async with storage.unit_of_work() as uow:
        await uow.outbox.release(list(ids))
        await uow.commit()


async def revive(storage: Storage, ids: list[str] | None, at: datetime) -> int:
    async with storage.unit_of_work() as uow:
        count = await uow.outbox.revive(ids, at)
        await uow.commit()
    return count


async def counts(storage: Storage) -> OutboxCounts:
    async with storage.unit_of_work() as uow:
        return await uow.outbox.counts()


# Recording


async def test_every_kind_round_trips(storage: Storage) -> None:
    installation = await new_installation(storage)
    messages = every_kind()
    ids = await added(storage, installation.id, *messages)
    got = await entries(storage, installation.id)
    assert [entry.id for entry in got] == ids and len(set(ids)) == len(ids)
    assert [entry.message for entry in got] == messages
    assert [entry.seq for entry in got] == sorted({entry.seq for entry in got})
    assert {entry.kind for entry in got} == {kind.__struct_config__.tag for kind in get_args(OutboxMessage)}
    for entry in got:
        assert (entry.installation_id, entry.created_at, entry.due_at) == (installation.id, NOW, NOW)
        assert (entry.attempts, entry.last_error, entry.state) == (0, None, OutboxState.PENDING)
    assert await counts(storage) == OutboxCounts(pending=len(messages), retrying=0, dead=0)


async def test_add_joins_the_unit_of_work(storage: Storage) -> None:
    installation = an_installation()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        await uow.outbox.add(installation.id, status(1), NOW)
        assert [entry.message for entry in await uow.outbox.entries(installation.id)] == [status(1)]
    assert await entries(storage, installation.id) == []  # rolled back with the installation
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        entry_id = await uow.outbox.add(installation.id, status(1), NOW)
        await uow.commit()
    assert [entry.id for entry in await entries(storage, installation.id)] == [entry_id]
    assert await counts(storage) == OutboxCounts(pending=1, retrying=0, dead=0)


async def test_entries_are_per_installation(storage: Storage) -> None:
    first, first_ids = await installation_with(storage, 2)
    second, second_ids = await installation_with(storage, 1)
    assert [entry.id for entry in await entries(storage, first)] == first_ids
    assert [entry.id for entry in await entries(storage, second)] == second_ids
    assert await entries(storage, uid("icfg")) == []


# Claiming


async def test_claim_orders_installations_by_head_due_then_seq(storage: Storage) -> None:
    a = (await new_installation(storage)).id
    b = (await new_installation(storage)).id
    c = (await new_installation(storage)).id
    d = (await new_installation(storage)).id
    # interleaved: seq order within an installation, due order (then seq) across them
    c1 = await added(storage, c, status(1))
    a1 = await added(storage, a, status(1), at=NOW - timedelta(seconds=5))
    b1 = await added(storage, b, status(1), at=NOW - timedelta(seconds=10))
    a2 = await added(storage, a, status(2), at=NOW - timedelta(seconds=20))
    d1 = await added(storage, d, status(1))
    b2 = await added(storage, b, status(2))
    got = await claim(storage)
    assert [entry.id for entry in got] == b1 + b2 + a1 + a2 + c1 + d1
    assert [entry.installation_id for entry in got] == [b, b, a, a, c, d]
    assert got[0] == await one(storage, b, b1[0])


async def test_claim_limits_installations_and_messages(storage: Storage) -> None:
    queues = [await installation_with(storage, 4, at=NOW - timedelta(seconds=10 - n)) for n in range(3)]
    (_, first), (_, second), (_, third) = queues
    assert await claimed_ids(storage, installations=2, per=3) == first[:3] + second[:3]
    # the first two installations' heads are leased: their fourth messages wait
    assert await claimed_ids(storage, installations=5, per=3) == third[:3]
    assert await claimed_ids(storage) == []
    await delivered(storage, *first[:3], *second[:3])
    assert await claimed_ids(storage) == [first[3], second[3]]
    assert await claimed_ids(storage, installations=0) == [] and await claimed_ids(storage, per=0) == []


async def test_leased_messages_are_not_claimed_until_the_lease_passes(storage: Storage) -> None:
    installation, ids = await installation_with(storage, 2)
    assert await claimed_ids(storage) == ids
    later = await added(storage, installation, status(9))  # behind a leased head: waits too
    assert await claimed_ids(storage, NOW + LEASE - timedelta(microseconds=1)) == []
    assert await claimed_ids(storage, NOW + LEASE) == ids + later


async def test_claim_stops_before_a_message_leased_by_another_worker(storage: Storage) -> None:
    _, ids = await installation_with(storage, 3)
    assert await claimed_ids(storage, per=2) == ids[:2]
    await released(storage, ids[0])
    assert await claimed_ids(storage, NOW + timedelta(seconds=1)) == ids[:1]


async def test_a_head_not_due_holds_back_its_installation(storage: Storage) -> None:
    _installation, ids = await installation_with(storage, 2)
    _, other_ids = await installation_with(storage, 1)
    assert await claimed_ids(storage) == ids + other_ids
    retry_at = NOW + timedelta(minutes=1)
    await failed(storage, ids[0], "503 Service Unavailable", retry_at)
    await released(storage, ids[1])
    await delivered(storage, *other_ids)
    # the second message is due, but goes only after the first: nothing from this installation
    assert await claimed_ids(storage, NOW + timedelta(seconds=1)) == []
    assert await claimed_ids(storage, retry_at - timedelta(microseconds=1)) == []
    got = await claim(storage, retry_at)
    assert [entry.id for entry in got] == ids
    assert (got[0].attempts, got[0].last_error, got[0].due_at) == (1, "503 Service Unavailable", retry_at)
    await delivered(storage, *ids)
    # recorded to be due later
    _, later = await installation_with(storage, 1, at=NOW + timedelta(hours=1))
    assert await claimed_ids(storage, NOW + timedelta(minutes=59)) == []
    assert await claimed_ids(storage, NOW + timedelta(hours=1)) == later


async def test_claim_stops_at_a_later_message_not_due(storage: Storage) -> None:
    # a revived message goes before a later one still waiting for its retry
    _installation, ids = await installation_with(storage, 3)
    assert await claimed_ids(storage, per=1) == ids[:1]
    await failed(storage, ids[0], "gone", None)
    assert await claimed_ids(storage, per=1) == ids[1:2]
    await failed(storage, ids[1], "busy", NOW + timedelta(hours=1))
    await revive(storage, [ids[0]], NOW)
    assert await claimed_ids(storage, NOW + timedelta(seconds=1)) == ids[:1]


async def test_release_drops_the_lease_only(storage: Storage) -> None:
    installation, ids = await installation_with(storage, 2)
    before = await entries(storage, installation)
    assert await claim(storage) == before
    await released(storage, *ids)
    assert await entries(storage, installation) == before
    assert await claimed_ids(storage, NOW + timedelta(seconds=1)) == ids


async def test_claims_and_outcomes_count_only_when_committed(storage: Storage) -> None:
    installation, ids = await installation_with(storage, 1)
    async with storage.unit_of_work() as uow:
        assert [entry.id for entry in await uow.outbox.claim(NOW, NOW + LEASE, 10, 10)] == ids
    assert await claimed_ids(storage) == ids
    async with storage.unit_of_work() as uow:
        await uow.outbox.delivered(ids[0], NOW)
        await uow.outbox.failed(ids[0], "x", None)
    assert (await one(storage, installation, ids[0])).state is OutboxState.PENDING


# Outcomes


async def test_delivered_is_final(storage: Storage) -> None:
    installation, ids = await installation_with(storage, 2)
    await claim(storage)
    await delivered(storage, ids[0])
    await failed(storage, ids[0], "late failure", None)  # no effect on a delivered message
    first, second = await entries(storage, installation)
    assert (first.state, first.attempts, first.last_error) == (OutboxState.DELIVERED, 0, None)
    assert second.state is OutboxState.PENDING
    assert await counts(storage) == OutboxCounts(pending=1, retrying=0, dead=0)
    await released(storage, ids[1])
    assert await claimed_ids(storage, NOW + timedelta(seconds=1)) == ids[1:]


async def test_failures_retry_then_die(storage: Storage) -> None:
    installation, ids = await installation_with(storage, 1)
    entry_id = ids[0]
    await claim(storage)
    await failed(storage, entry_id, "timeout", NOW + timedelta(seconds=2))
    entry = await one(storage, installation, entry_id)
    assert (entry.state, entry.attempts, entry.last_error) == (OutboxState.PENDING, 1, "timeout")
    assert entry.due_at == NOW + timedelta(seconds=2)
    assert await counts(storage) == OutboxCounts(pending=0, retrying=1, dead=0)
    await claim(storage, NOW + timedelta(seconds=2))
    await failed(storage, entry_id, "x" * 5000, None)
    entry = await one(storage, installation, entry_id)
    assert (entry.state, entry.attempts, entry.last_error) == (OutboxState.DEAD, 2, "x" * 2000)
    assert await counts(storage) == OutboxCounts(pending=0, retrying=0, dead=1)
    await delivered(storage, entry_id)  # no effect on a dead message
    await failed(storage, entry_id, "again", NOW)
    assert await one(storage, installation, entry_id) == entry
    assert await claimed_ids(storage, NOW + timedelta(days=1)) == []


async def test_dead_messages_do_not_block_later_ones(storage: Storage) -> None:
    _installation, ids = await installation_with(storage, 3)
    assert await claimed_ids(storage, per=1) == ids[:1]
    await failed(storage, ids[0], "400 Bad Request", None)
    assert await claimed_ids(storage) == ids[1:]


async def test_counts(storage: Storage) -> None:
    assert await counts(storage) == OutboxCounts(pending=0, retrying=0, dead=0)
    _, ids = await installation_with(storage, 5)
    await claim(storage)
    await delivered(storage, ids[0])
    await failed(storage, ids[1], "e", NOW + timedelta(seconds=1))
    await failed(storage, ids[2], "e", NOW + timedelta(seconds=1))
    await failed(storage, ids[3], "e", None)
    await installation_with(storage, 2)
    assert await counts(storage) == OutboxCounts(pending=3, retrying=2, dead=1)


# Dead messages


async def test_dead_lists_oldest_first_and_revive_makes_them_pending(storage: Storage) -> None:
    first, first_ids = await installation_with(storage, 2)
    second, second_ids = await installation_with(storage, 1)
    await claim(storage)
    await failed(storage, second_ids[0], "e2", None)
    await failed(storage, first_ids[0], "e1", None)
    await delivered(storage, first_ids[1])
    async with storage.unit_of_work() as uow:
        dead = await uow.outbox.dead(10)
        assert await uow.outbox.dead(1) == dead[:1]
    assert [entry.id for entry in dead] == [first_ids[0], second_ids[0]]
    assert [(entry.state, entry.attempts, entry.last_error) for entry in dead] == [
        (OutboxState.DEAD, 1, "e1"),
        (OutboxState.DEAD, 1, "e2"),
    ]
    at = NOW + timedelta(hours=1)
    assert await revive(storage, [second_ids[0], first_ids[1], uid("obx")], at) == 1  # only dead ones count
    revived = await one(storage, second, second_ids[0])
    # the last error stays until the next attempt
    assert (revived.state, revived.attempts, revived.last_error, revived.due_at) == (OutboxState.PENDING, 0, "e2", at)
    assert await counts(storage) == OutboxCounts(pending=1, retrying=0, dead=1)
    assert await claimed_ids(storage, at - timedelta(seconds=1)) == []
    assert await claimed_ids(storage, at) == second_ids
    assert await revive(storage, None, at) == 1
    assert await revive(storage, None, at) == 0
    assert (await one(storage, first, first_ids[0])).state is OutboxState.PENDING
    async with storage.unit_of_work() as uow:
        assert await uow.outbox.dead(10) == []


# Secrets at rest


async def test_sensitive_messages_are_sealed(database: SqlDatabase) -> None:
    cipher = SecretCipher([("outbox", bytes(range(32)))])
    storage = await database.open(cipher)
    secret = uid("PLAINTEXT")
    message = PushResourceSecrets(resource_id="res_1", secrets=(Secret(name="DATABASE_URL", value=secret),))
    try:
        installation = await new_installation(storage, credentials=None)  # the outbox holds the only secret
        _, plain_id = await added(storage, installation.id, message, status(1))
        assert [entry.message for entry in await entries(storage, installation.id)] == [message, status(1)]
    finally:
        await storage.close()
    rows = await database.rows("SELECT * FROM outbox WHERE installation_id = ? ORDER BY seq", installation.id)
    for row in rows:
        for value in row.values():
            raw = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode()
            assert secret.encode() not in raw
    sealed, plain = rows
    assert (sealed["kind"], sealed["secret_key_id"]) == ("resource.secrets", "outbox")
    assert msgspec.json.decode(sealed["payload"]) == message.public()
    assert (plain["kind"], plain["secret_key_id"], plain["secret_sealed"]) == ("resource.status", None, None)
    assert msgspec.json.decode(plain["payload"]) == msgspec.to_builtins(status(1))
    # the ciphertext is bound to its row, and the start-up key check covers the outbox
    await database.execute(
        "UPDATE outbox SET secret_sealed = ?, secret_key_id = 'outbox' WHERE id = ?", sealed["secret_sealed"], plain_id
    )
    storage = await database.open(cipher, verify_keys=False)
    try:
        with pytest.raises(CipherError):
            await entries(storage, installation.id)
    finally:
        await storage.close()
    with pytest.raises(CipherError, match="outbox"):
        await database.open(SecretCipher([("other", bytes(32))]))


# Job runs


async def claim_run(storage: Storage, job: str, key: str) -> bool:
    async with storage.unit_of_work() as uow:
        claimed = await uow.jobs.claim(job, key, NOW)
        await uow.commit()
    return claimed


async def test_a_job_run_is_claimed_once(storage: Storage) -> None:
    key = uid("icfg") + "/2025-03-04"
    async with storage.unit_of_work() as uow:
        assert await uow.jobs.has_run("billing.data", key) is False
        assert await uow.jobs.claim("billing.data", key, NOW) is True
        assert await uow.jobs.claim("billing.data", key, NOW) is False  # own write
        assert await uow.jobs.has_run("billing.data", key) is True
        await uow.commit()
    assert await claim_run(storage, "billing.data", key) is False
    assert await claim_run(storage, "billing.usage", key) is True  # runs are per (job, key)
    assert await claim_run(storage, "billing.data", key + "x") is True


async def test_a_rolled_back_run_is_not_recorded_nor_its_messages(storage: Storage) -> None:
    installation = await new_installation(storage)
    async with storage.unit_of_work() as uow:
        assert await uow.jobs.claim("billing.invoice", installation.id, NOW)
        await uow.outbox.add(installation.id, every_kind()[7], NOW)
    async with storage.unit_of_work() as uow:
        assert await uow.jobs.has_run("billing.invoice", installation.id) is False
        assert await uow.outbox.entries(installation.id) == []


# PostgreSQL only: workers in several processes


async def test_postgres_concurrent_claims_never_share_an_installation(
    own_postgres_dsn: str, cipher: SecretCipher
) -> None:
    writer, *workers = [await PostgresStorage.open(own_postgres_dsn, cipher) for _ in range(3)]
    try:
        expected: dict[str, list[str]] = {}
        for _ in range(50):
            installation_id, ids = await installation_with(writer, 5)
            expected[installation_id] = ids
        taken: dict[str, list[list[str]]] = {}  # installation -> the batches claimed of it
        calls = 0

        async def work(storage: Storage) -> None:
            nonlocal calls
            while sum(map(len, taken.values())) < len(expected) and calls < 500:
                calls += 1
                batches: dict[str, list[str]] = {}
                for entry in await claim(storage, installations=3, per_installation=5):
                    batches.setdefault(entry.installation_id, []).append(entry.id)
                for installation_id, batch in batches.items():
                    taken.setdefault(installation_id, []).append(batch)

        # two pools, as two worker processes would have, with several claims in flight on each
        await asyncio.gather(*(work(storage) for storage in workers for _ in range(3)))
        print(f"{calls} concurrent claims")
        assert {installation_id: batches for installation_id, batches in taken.items()} == {
            installation_id: [ids] for installation_id, ids in expected.items()
        }
    finally:
        for storage in (writer, *workers):
            await storage.close()


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
async def test_postgres_concurrent_job_claims_wait_for_the_first(
    postgres_storage: PostgresStorage, first_commits: bool
) -> None:
    key = uid("icfg")
    async with postgres_storage.unit_of_work() as first:
        assert await first.jobs.claim("billing.data", key, NOW) is True
        second = asyncio.create_task(claim_run(postgres_storage, "billing.data", key))
        await asyncio.sleep(0.3)
        assert not second.done()  # waits for the first transaction to end
        if first_commits:
            await first.commit()
    assert await asyncio.wait_for(second, 5) is (not first_commits)


# Migrations: a database made before job runs gets them


async def test_sqlite_database_from_before_job_runs_is_migrated(tmp_path) -> None:
    assert [version for version, _ in migrations("sqlite")][:2] == ["0001_initial", "0002_jobs"]
    path = tmp_path / "old.db"
    await migrate_sqlite(path)
    conn = sqlite3.connect(path)
    try:
        with conn:
            for statement in UNDO_0002:
                conn.execute(statement)
    finally:
        conn.close()
    assert await pending_sqlite(path) == ["0002_jobs"]
    assert await migrate_sqlite(path) == ["0002_jobs"]
    assert await pending_sqlite(path) == [] and await migrate_sqlite(path) == []


async def test_postgres_database_from_before_job_runs_is_migrated(own_postgres_dsn: str) -> None:
    assert [version for version, _ in migrations("postgres")][:2] == ["0001_initial", "0002_jobs"]
    conn = await asyncpg.connect(own_postgres_dsn)
    try:
        for statement in UNDO_0002:
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await pending_postgres(own_postgres_dsn) == ["0002_jobs"]
    assert await migrate_postgres(own_postgres_dsn) == ["0002_jobs"]
    assert await pending_postgres(own_postgres_dsn) == [] and await migrate_postgres(own_postgres_dsn) == []


UNDO_0002 = (
    "DROP TABLE job_runs",
    "DROP INDEX installations_by_lifecycle_id",
    "DROP INDEX outbox_by_key",
    "DELETE FROM schema_migrations WHERE version = '0002_jobs'",
)
