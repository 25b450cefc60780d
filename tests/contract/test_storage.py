"""The storage port's contract, run against memory, SQLite and PostgreSQL alike (see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.migrations import (
    migrate_postgres,
    migrate_sqlite,
    migrations,
    pending_postgres,
    pending_sqlite,
    sqlite_statements,
)
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.domain.errors import Conflict, Unavailable
from marketplace_provider.domain.installations import Account, Contact, Credentials, Installation, Lifecycle
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.resources import EnvironmentOverrides, Resource, ResourceStatus, Secret
from marketplace_provider.domain.transfers import ClaimState, TransferClaim
from marketplace_provider.ports.storage import Reply, Storage
from tests.support.postgres import ADMIN_URL, with_database

NOW = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def uid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def an_installation(installation_id: str | None = None, **changes: object) -> Installation:
    installation = Installation(
        id=installation_id or uid("icfg"),
        account=Account(url="https://vercel.com/acme", name="Acme", contact=Contact(email="ops@acme.test", name="Ops")),
        scopes=("read", "write"),
        accepted_policies={"toc": "2025-01-01T00:00:00Z", "privacy": "2025-01-02T00:00:00Z"},
        credentials=Credentials(access_token=uid("tok"), token_type="Bearer"),
        billing_plan_id="pro",
        notification=Notification(level=Level.WARN, title="Heads up", message="m", href="https://acme.test/x"),
        lifecycle=Lifecycle.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(installation, **changes)


def a_resource(installation_id: str, resource_id: str | None = None, **changes: object) -> Resource:
    resource = Resource(
        id=resource_id or uid("res"),
        installation_id=installation_id,
        product_id="postgres",
        name="main-db",
        metadata={"region": "iad1", "size": 3, "nested": {"ha": True, "zones": ["a", "b"]}, "ratio": 0.5},
        billing_plan_id="pro",
        status=ResourceStatus.READY,
        secrets=(
            Secret(name="DATABASE_URL", value=uid("postgres://secret")),
            Secret(
                name="TOKEN",
                value=uid("value"),
                prefix="NEXT_PUBLIC_",
                environment_overrides=EnvironmentOverrides(preview=uid("preview")),
            ),
        ),
        created_at=NOW,
        updated_at=NOW,
        notification=Notification(level=Level.INFO, title="Ready"),
        external_id=uid("ext"),
        protocol_settings={"experimentation": {"edgeConfigId": "ecfg_1"}},
    )
    return replace(resource, **changes)


async def saved(storage: Storage, *objects: Installation | Resource) -> None:
    async with storage.unit_of_work() as uow:
        for obj in objects:
            if isinstance(obj, Installation):
                await uow.installations.save(obj)
            else:
                await uow.resources.add(obj)
        await uow.commit()


async def new_installation(storage: Storage, **changes: object) -> Installation:
    installation = an_installation(**changes)
    await saved(storage, installation)
    return installation


# Installations


async def test_installation_missing_is_none(storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(uid("icfg")) is None


async def test_installation_round_trip(storage: Storage) -> None:
    installation = await new_installation(storage)
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == installation


async def test_installation_round_trip_with_nothing_optional(storage: Storage) -> None:
    installation = await new_installation(
        storage,
        account=None,
        scopes=(),
        accepted_policies={},
        credentials=None,
        billing_plan_id=None,
        notification=None,
        lifecycle=Lifecycle.FINALIZED,
        deleted_at=NOW + timedelta(days=1),
    )
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == installation


async def test_installation_save_replaces(storage: Storage) -> None:
    installation = await new_installation(storage)
    changed = replace(
        installation,
        scopes=("read",),
        credentials=Credentials(access_token=uid("tok"), token_type="Bearer"),
        billing_plan_id="hobby",
        notification=None,
        lifecycle=Lifecycle.PENDING_DELETION,
        updated_at=NOW + timedelta(minutes=1),
        deleted_at=NOW + timedelta(minutes=1),
    )
    await saved(storage, changed)
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == changed
    erased = replace(changed, credentials=None, lifecycle=Lifecycle.FINALIZED)
    await saved(storage, erased)
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == erased


async def test_installation_times_keep_the_instant(storage: Storage) -> None:
    other_zone = datetime(2025, 3, 4, 7, 6, 7, 1, tzinfo=timezone(timedelta(hours=2)))
    installation = await new_installation(storage, created_at=other_zone, updated_at=other_zone)
    async with storage.unit_of_work() as uow:
        got = await uow.installations.get(installation.id)
    assert got is not None and got.created_at == other_zone and got.created_at.utcoffset() is not None


async def test_installations_page_by_id_within_a_lifecycle(storage: Storage) -> None:
    # ids under one fresh prefix sort together, apart from other tests' installations; byte order throughout
    prefix = uid("icfg")
    active = [an_installation(f"{prefix}{suffix}") for suffix in ("-x", "_B", "_a", "_b", "_b1")]
    finalized = [an_installation(f"{prefix}_{n}", lifecycle=Lifecycle.FINALIZED) for n in (1, 2)]
    await saved(storage, *reversed(active), *finalized)
    async with storage.unit_of_work() as uow:
        assert await uow.installations.page(Lifecycle.ACTIVE, prefix, 2) == active[:2]
        assert await uow.installations.page(Lifecycle.ACTIVE, active[1].id, 2) == active[2:4]
        rest = await uow.installations.page(Lifecycle.ACTIVE, active[3].id, 10)
        assert rest[:1] == active[4:] and not {i.id for i in rest[1:]} & {i.id for i in active + finalized}
        assert (await uow.installations.page(Lifecycle.FINALIZED, prefix, 10))[:2] == finalized
        assert await uow.installations.page(Lifecycle.ACTIVE, prefix, 0) == []
        everything = [i.id for i in await uow.installations.page(Lifecycle.ACTIVE, None, 100_000)]
    assert everything == sorted(everything) and [i for i in everything if i.startswith(prefix)] == [
        i.id for i in active
    ]


# Resources


async def test_resource_round_trip(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    await saved(storage, resource)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(installation.id, resource.id) == resource


async def test_resource_round_trip_with_nothing_optional(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(
        installation.id, metadata={}, secrets=(), notification=None, external_id=None, protocol_settings=None
    )
    await saved(storage, resource)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(installation.id, resource.id) == resource


async def test_resource_missing_or_in_another_installation_is_none(storage: Storage) -> None:
    installation = await new_installation(storage)
    other = await new_installation(storage)
    resource = a_resource(installation.id)
    await saved(storage, resource)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(other.id, resource.id) is None
        assert await uow.resources.get(installation.id, uid("res")) is None


async def test_uninstalled_resource_is_still_found_by_get(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id, status=ResourceStatus.UNINSTALLED)
    await saved(storage, resource)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(installation.id, resource.id) == resource
        assert await uow.resources.list_live(installation.id) == []


async def test_adding_an_existing_resource_is_a_conflict(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    await saved(storage, resource)
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await uow.resources.add(replace(resource, name="other"))
        # the unit of work stays usable after the conflict
        later = a_resource(installation.id)
        await uow.resources.add(later)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(installation.id, resource.id) == resource
        assert await uow.resources.get(installation.id, later.id) == later


async def test_adding_twice_in_one_unit_of_work_is_a_conflict(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    async with storage.unit_of_work() as uow:
        await uow.resources.add(resource)
        with pytest.raises(Conflict):
            await uow.resources.add(resource)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.resources.list_live(installation.id) == [resource]


async def test_resource_save_replaces_and_can_move_installation(storage: Storage) -> None:
    source = await new_installation(storage)
    target = await new_installation(storage)
    resource = a_resource(source.id)
    await saved(storage, resource)
    changed = replace(
        resource,
        name="renamed",
        metadata={"region": "fra1"},
        status=ResourceStatus.SUSPENDED,
        secrets=(Secret(name="DATABASE_URL", value=uid("rotated")),),
        notification=None,
        updated_at=NOW + timedelta(hours=1),
    )
    async with storage.unit_of_work() as uow:
        await uow.resources.save(changed)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(source.id, resource.id) == changed
    moved = replace(changed, installation_id=target.id)
    async with storage.unit_of_work() as uow:
        await uow.resources.save(moved)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(source.id, resource.id) is None
        assert await uow.resources.get(target.id, resource.id) == moved
        assert await uow.resources.list_live(source.id) == []
        assert await uow.resources.list_live(target.id) == [moved]


async def test_resource_billing_hold_round_trips(storage: Storage) -> None:
    installation = await new_installation(storage)
    held = a_resource(installation.id, status=ResourceStatus.SUSPENDED, billing_hold=True)
    await saved(storage, held)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.get(installation.id, held.id) == held
        assert await uow.resources.list_all(installation.id) == [held]
    released = replace(held, status=ResourceStatus.READY, billing_hold=False, updated_at=NOW + timedelta(hours=1))
    async with storage.unit_of_work() as uow:
        await uow.resources.save(released)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.resources.list_live(installation.id) == [released]


async def test_list_live_is_oldest_first_without_uninstalled(storage: Storage) -> None:
    installation = await new_installation(storage)
    other = await new_installation(storage)
    late = a_resource(installation.id, "res_c", created_at=NOW + timedelta(seconds=2))
    early = a_resource(installation.id, "res_z", created_at=NOW - timedelta(days=1))
    tie_b = a_resource(installation.id, "res_b", created_at=NOW)
    tie_a = a_resource(installation.id, "res_a", created_at=NOW)
    gone = a_resource(installation.id, "res_gone", status=ResourceStatus.UNINSTALLED)
    elsewhere = a_resource(other.id)
    await saved(storage, late, early, tie_b, tie_a, gone, elsewhere)
    async with storage.unit_of_work() as uow:
        assert await uow.resources.list_live(installation.id) == [early, tie_a, tie_b, late]
        assert await uow.resources.list_live(installation.id, ["res_c", "res_a", "res_gone", elsewhere.id]) == [
            tie_a,
            late,
        ]
        assert await uow.resources.list_live(installation.id, []) == []
        assert await uow.resources.list_live(uid("icfg")) == []


async def test_list_all_includes_uninstalled_oldest_first(storage: Storage) -> None:
    installation = await new_installation(storage)
    other = await new_installation(storage)
    prefix = uid("res")
    late = a_resource(installation.id, f"{prefix}_c", created_at=NOW + timedelta(seconds=2))
    gone = a_resource(installation.id, f"{prefix}_gone", status=ResourceStatus.UNINSTALLED, created_at=NOW)
    tie = a_resource(installation.id, f"{prefix}_a", created_at=NOW)
    early = a_resource(installation.id, f"{prefix}_z", created_at=NOW - timedelta(days=1))
    await saved(storage, late, gone, tie, early, a_resource(other.id))
    async with storage.unit_of_work() as uow:
        assert await uow.resources.list_all(installation.id) == [early, tie, gone, late]
        assert await uow.resources.list_all(uid("icfg")) == []


# Replies (idempotency)


async def test_reply_missing_is_none(storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        assert await uow.replies.lookup(uid("icfg"), "key", type(None)) is None


async def test_reply_round_trip_with_result_types(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    async with storage.unit_of_work() as uow:
        await uow.replies.save(installation.id, "k-resource", Reply(fingerprint="f1", result=resource))
        await uow.replies.save(installation.id, "k-none", Reply(fingerprint="f2", result=None))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.replies.lookup(installation.id, "k-resource", Resource) == Reply(
            fingerprint="f1", result=resource
        )
        assert await uow.replies.lookup(installation.id, "k-none", type(None)) == Reply(fingerprint="f2", result=None)
        # keys are per installation
        assert await uow.replies.lookup(uid("icfg"), "k-resource", Resource) is None


async def test_reply_for_another_kind_of_request_still_shows_its_fingerprint(storage: Storage) -> None:
    installation = await new_installation(storage)
    async with storage.unit_of_work() as uow:
        await uow.replies.save(installation.id, "k", Reply(fingerprint="f1", result=a_resource(installation.id)))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        reply = await uow.replies.lookup(installation.id, "k", type(None))
    assert reply is not None and reply.fingerprint == "f1"  # the caller answers Conflict from this


async def test_reply_save_replaces(storage: Storage) -> None:
    installation = await new_installation(storage)
    async with storage.unit_of_work() as uow:
        await uow.replies.save(installation.id, "k", Reply(fingerprint="f1", result=None))
        await uow.replies.save(installation.id, "k", Reply(fingerprint="f2", result=None))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.replies.lookup(installation.id, "k", type(None)) == Reply(fingerprint="f2", result=None)


# Transfer claims


async def test_claim_round_trip_and_update(storage: Storage) -> None:
    source = await new_installation(storage)
    claim = TransferClaim(
        id=uid("claim"),
        source_installation_id=source.id,
        resource_ids=("res_1", "res_2"),
        expires_at=NOW + timedelta(days=1),
        state=ClaimState.OPEN,
        created_at=NOW,
    )
    async with storage.unit_of_work() as uow:
        assert await uow.claims.get(claim.id) is None
        await uow.claims.save(claim)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.claims.get(claim.id) == claim
    done = replace(
        claim,
        verified_by=("icfg_t1", "icfg_t2"),
        state=ClaimState.COMPLETED,
        target_installation_id="icfg_t2",
        completed_at=NOW + timedelta(hours=1),
    )
    async with storage.unit_of_work() as uow:
        await uow.claims.save(done)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.claims.get(claim.id) == done


# Balances and purchases


async def test_balances_round_trip_and_replace(storage: Storage) -> None:
    installation = await new_installation(storage)
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {}
        await uow.balances.save(installation.id, {None: 1_000, "res_1": 250, "res_2": 0})
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {None: 1_000, "res_1": 250, "res_2": 0}
        await uow.balances.save(installation.id, {"res_1": 5})
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {"res_1": 5}
        await uow.balances.save(installation.id, {})
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {}


async def test_record_purchase_once_per_invoice(storage: Storage) -> None:
    installation = await new_installation(storage)
    other = await new_installation(storage)
    invoice_id = uid("inv")
    async with storage.unit_of_work() as uow:
        assert await uow.balances.record_purchase(installation.id, invoice_id, NOW) is True
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.balances.record_purchase(installation.id, invoice_id, NOW) is False
        assert await uow.balances.record_purchase(other.id, invoice_id, NOW) is False
        await uow.commit()


async def test_rolled_back_purchase_is_not_remembered(storage: Storage) -> None:
    installation = await new_installation(storage)
    invoice_id = uid("inv")
    async with storage.unit_of_work() as uow:
        assert await uow.balances.record_purchase(installation.id, invoice_id, NOW) is True
        assert await uow.balances.record_purchase(installation.id, invoice_id, NOW) is False  # own write
    async with storage.unit_of_work() as uow:
        assert await uow.balances.record_purchase(installation.id, invoice_id, NOW) is True
        await uow.commit()


# Units of work


async def test_reads_see_own_writes_before_commit(storage: Storage) -> None:
    installation = an_installation()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        resource = a_resource(installation.id)
        await uow.resources.add(resource)
        assert await uow.installations.get(installation.id) == installation
        assert await uow.resources.list_live(installation.id) == [resource]


async def test_commit_is_visible_to_later_units_of_work(storage: Storage) -> None:
    installation = an_installation()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == installation


async def test_exit_without_commit_rolls_back(storage: Storage) -> None:
    installation = an_installation()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        await uow.resources.add(a_resource(installation.id))
        await uow.replies.save(installation.id, "k", Reply(fingerprint="f", result=None))
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) is None
        assert await uow.resources.list_live(installation.id) == []
        assert await uow.replies.lookup(installation.id, "k", type(None)) is None


async def test_exception_rolls_back_and_propagates(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with storage.unit_of_work() as uow:
            await uow.installations.save(replace(installation, billing_plan_id="changed"))
            await uow.resources.add(resource)
            await uow.balances.save(installation.id, {None: 99})
            raise Boom()
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == installation
        assert await uow.resources.get(installation.id, resource.id) is None
        assert await uow.balances.get(installation.id) == {}


async def test_writes_after_a_commit_need_another_commit(storage: Storage) -> None:
    installation = an_installation()
    first, second, third = (a_resource(installation.id, created_at=NOW + timedelta(seconds=n)) for n in range(3))
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        await uow.resources.add(first)
        await uow.commit()
        await uow.resources.add(second)
        await uow.commit()
        await uow.resources.add(third)  # never committed
    async with storage.unit_of_work() as uow:
        assert await uow.resources.list_live(installation.id) == [first, second]


async def test_ping(storage: Storage, backend: str) -> None:
    """Readiness (/readyz) relies on it: it answers while the database does and raises Unavailable once the database
    is out of reach (here its connection is closed), never answering as if all were well. Memory reaches nothing."""
    assert await storage.ping() is None
    if backend == "memory":
        return
    await storage.close()
    with pytest.raises(Unavailable):
        await storage.ping()


# Concurrency


async def test_concurrent_upserts_of_one_installation_leave_one(storage: Storage) -> None:
    installation = an_installation()
    plans = {f"plan-{n}" for n in range(200)}

    async def upsert(n: int) -> None:
        async with storage.unit_of_work() as uow:
            await uow.installations.get(installation.id)  # as the use case does: read, then write
            await uow.installations.save(
                replace(installation, billing_plan_id=f"plan-{n}", updated_at=NOW + timedelta(microseconds=n))
            )
            await uow.commit()

    started = time.perf_counter()
    await asyncio.gather(*(upsert(n) for n in range(200)))
    print(f"200 concurrent upserts: {time.perf_counter() - started:.3f}s")
    async with storage.unit_of_work() as uow:
        got = await uow.installations.get(installation.id)
    assert got is not None and got.billing_plan_id in plans
    assert replace(got, billing_plan_id="pro", updated_at=NOW) == installation


async def test_concurrent_adds_of_distinct_resources_all_land_once(storage: Storage) -> None:
    installation = await new_installation(storage)
    resources = [a_resource(installation.id, created_at=NOW + timedelta(microseconds=n)) for n in range(500)]

    async def add(resource: Resource) -> None:
        async with storage.unit_of_work() as uow:
            await uow.resources.add(resource)
            await uow.commit()

    started = time.perf_counter()
    await asyncio.gather(*(add(resource) for resource in resources))
    print(f"500 concurrent adds: {time.perf_counter() - started:.3f}s")
    async with storage.unit_of_work() as uow:
        live = await uow.resources.list_live(installation.id)
    assert live == resources


async def test_concurrent_adds_of_one_id_leave_exactly_the_acknowledged(storage: Storage) -> None:
    installation = await new_installation(storage)
    ids = [uid("res") for _ in range(250)]

    async def add(resource_id: str, attempt: int) -> str | None:
        async with storage.unit_of_work() as uow:
            try:
                await uow.resources.add(a_resource(installation.id, resource_id, name=f"attempt-{attempt}"))
            except Conflict:
                return None
            await uow.commit()
            return f"{resource_id}/{attempt}"

    acknowledged = await asyncio.gather(*(add(resource_id, attempt) for attempt in (1, 2) for resource_id in ids))
    winners = sorted(a for a in acknowledged if a is not None)
    assert len(winners) == 250
    async with storage.unit_of_work() as uow:
        live = await uow.resources.list_live(installation.id)
    assert sorted(f"{r.id}/{r.name.removeprefix('attempt-')}" for r in live) == winners


async def test_concurrent_lookups_of_one_key_run_one_after_the_other(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    first_looked = asyncio.Event()

    async def first() -> None:
        async with storage.unit_of_work() as uow:
            assert await uow.replies.lookup(installation.id, "same", Resource) is None
            first_looked.set()
            await asyncio.sleep(0.2)  # the second request arrives meanwhile
            await uow.resources.add(resource)
            await uow.replies.save(installation.id, "same", Reply(fingerprint="f", result=resource))
            await uow.commit()

    async def second() -> Reply | None:
        await first_looked.wait()
        async with storage.unit_of_work() as uow:
            reply = await uow.replies.lookup(installation.id, "same", Resource)
            await uow.commit()
        return reply

    _, reply = await asyncio.gather(first(), second())
    assert reply == Reply(fingerprint="f", result=resource)


async def test_concurrent_purchases_of_one_invoice_credit_once(storage: Storage) -> None:
    installation = await new_installation(storage)
    invoice_id = uid("inv")

    async def purchase() -> bool:
        async with storage.unit_of_work() as uow:
            balances = await uow.balances.get(installation.id)
            recorded = await uow.balances.record_purchase(installation.id, invoice_id, NOW)
            if recorded:
                await uow.balances.save(installation.id, {None: balances.get(None, 0) + 100})
            await uow.commit()
            return recorded

    assert sorted(await asyncio.gather(*(purchase() for _ in range(20)))) == [False] * 19 + [True]
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {None: 100}


async def test_concurrent_purchases_of_different_invoices_all_credit(storage: Storage) -> None:
    installation = await new_installation(storage)

    async def purchase(n: int) -> None:
        async with storage.unit_of_work() as uow:
            balances = await uow.balances.get(installation.id)
            assert await uow.balances.record_purchase(installation.id, uid(f"inv{n}"), NOW)
            await asyncio.sleep(0)
            await uow.balances.save(installation.id, {None: balances.get(None, 0) + 100})
            await uow.commit()

    await asyncio.gather(*(purchase(n) for n in range(20)))
    async with storage.unit_of_work() as uow:
        assert await uow.balances.get(installation.id) == {None: 2_000}


# PostgreSQL only: locks that are finer than one writer at a time, and outages


async def test_postgres_lookups_of_different_keys_do_not_wait(postgres_storage: PostgresStorage) -> None:
    storage = postgres_storage
    installation = await new_installation(storage)
    second_done = asyncio.Event()

    async def first() -> None:
        async with storage.unit_of_work() as uow:
            await uow.replies.lookup(installation.id, "a", type(None))
            await asyncio.wait_for(second_done.wait(), 5)

    async def second() -> None:
        async with storage.unit_of_work() as uow:
            await uow.replies.lookup(installation.id, "b", type(None))
        second_done.set()

    await asyncio.gather(first(), second())


async def test_postgres_a_read_is_one_statement(postgres_dsn: str, cipher) -> None:
    """No BEGIN, ROLLBACK or reset query around reads; a transaction only from the first write (issue 13)."""
    storage = await PostgresStorage.open(postgres_dsn, cipher, min_size=1, max_size=1)
    try:
        installation = await new_installation(storage)
        sent: list[str] = []
        async with storage.pool.acquire() as conn:  # the pool's only connection: every unit of work below uses it
            conn.add_query_logger(lambda logged: sent.append(logged.query.split()[0].rstrip(";")))
        async with storage.unit_of_work() as uow:
            assert await uow.installations.get(installation.id) == installation
            assert await uow.resources.get(installation.id, uid("res")) is None
        assert sent == ["SELECT", "SELECT"]
        sent.clear()
        async with storage.unit_of_work() as uow:
            await uow.installations.get(installation.id)
            await uow.resources.add(a_resource(installation.id))
            await uow.commit()
        assert sent == ["SELECT", "BEGIN", "INSERT", "COMMIT"]
        sent.clear()
        async with storage.unit_of_work() as uow:  # not committed: rolled back
            await uow.resources.add(a_resource(installation.id))
        assert sent == ["BEGIN", "INSERT", "ROLLBACK"]
    finally:
        await storage.close()


async def test_postgres_units_of_work_wait_their_turn(postgres_dsn: str, cipher) -> None:
    """Units of work get connections first come, first served: between asking and getting one, a unit of work lets
    through at most the 15 others that asked before it (asyncpg's pool alone hands a freed connection to whoever asks
    next, asyncpg#1247: there some unit of work watched 28 to 53 others go first)."""
    storage = await PostgresStorage.open(postgres_dsn, cipher, min_size=2, max_size=2)
    try:
        events: list[tuple[str, int]] = []

        async def task(name: int) -> None:
            for _ in range(20):
                events.append(("ask", name))
                async with storage.unit_of_work() as uow:
                    events.append(("got", name))
                    await uow.installations.get("icfg_none")

        await asyncio.gather(*(task(name) for name in range(16)))
        asked_at: dict[int, int] = {}
        passed_over: list[int] = []
        for index, (what, name) in enumerate(events):
            if what == "ask":
                asked_at[name] = index
            else:
                between = events[asked_at[name] + 1 : index]
                passed_over.append(sum(1 for other in between if other[0] == "got"))
        assert len(passed_over) == 16 * 20
        assert max(passed_over) <= 15, sorted(passed_over)[-5:]
    finally:
        await storage.close()


async def test_postgres_unreachable_is_unavailable(cipher) -> None:
    with pytest.raises(Unavailable):
        await PostgresStorage.open("postgresql://postgres@127.0.0.1:1/nothing", cipher)


async def test_postgres_recovers_after_connections_are_killed(postgres_dsn: str, cipher) -> None:
    storage = await PostgresStorage.open(postgres_dsn, cipher, min_size=2, max_size=2)
    try:
        installation = await new_installation(storage)
        admin = await asyncpg.connect(postgres_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'marketplace-provider'"
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.1)
        outcomes = []
        for _ in range(4):
            try:
                async with storage.unit_of_work() as uow:
                    outcomes.append(await uow.installations.get(installation.id) == installation)
            except Unavailable:
                outcomes.append("unavailable")
        print(f"after pg_terminate_backend: {outcomes}")
        assert outcomes[-1] is True, outcomes
        await storage.ping()
    finally:
        await storage.close()


async def test_postgres_closed_pool_is_unavailable(postgres_dsn: str, cipher) -> None:
    storage = await PostgresStorage.open(postgres_dsn, cipher)
    await storage.close()
    with pytest.raises(Unavailable):
        await storage.ping()
    with pytest.raises(Unavailable):
        async with storage.unit_of_work():
            pass


# SQLite only: another process holding the write lock, and a closed file


async def test_sqlite_busy_file_is_unavailable(tmp_path, cipher) -> None:
    path = tmp_path / "busy.db"
    await migrate_sqlite(path)
    storage = await SqliteStorage.open(path, cipher, busy_timeout_ms=100)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        with pytest.raises(Unavailable):
            async with storage.unit_of_work():
                pass
        other.execute("ROLLBACK")
        installation = await new_installation(storage)  # works again once the other writer is done
        async with storage.unit_of_work() as uow:
            assert await uow.installations.get(installation.id) == installation
    finally:
        other.close()
        await storage.close()


async def test_sqlite_closed_storage_is_unavailable(sqlite_storage: SqliteStorage) -> None:
    await sqlite_storage.close()
    with pytest.raises(Unavailable):
        await sqlite_storage.ping()
    with pytest.raises(Unavailable):
        async with sqlite_storage.unit_of_work():
            pass


# Migrations: each step once, safe to run twice and at the same time


async def test_sqlite_migrations_apply_once_even_concurrently(tmp_path) -> None:
    path = tmp_path / "migrated.db"
    everything = [version for version, _ in migrations("sqlite")]
    assert await pending_sqlite(path) == everything
    assert not path.exists()  # asking does not create the file
    runs = await asyncio.gather(*(migrate_sqlite(path) for _ in range(5)))
    assert sorted(runs, key=len) == [[]] * 4 + [everything]
    assert await pending_sqlite(path) == [] and await migrate_sqlite(path) == []
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations")] == everything
    finally:
        conn.close()


async def test_postgres_migrations_apply_once_even_concurrently() -> None:
    name = uid("mp_migrate")
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(ADMIN_URL, name)
        everything = [version for version, _ in migrations("postgres")]
        assert await pending_postgres(dsn) == everything
        runs = await asyncio.gather(*(migrate_postgres(dsn) for _ in range(5)))
        assert sorted(runs, key=len) == [[]] * 4 + [everything]
        assert await pending_postgres(dsn) == [] and await migrate_postgres(dsn) == []
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_both_backends_have_the_same_migrations() -> None:
    assert [v for v, _ in migrations("sqlite")] == [v for v, _ in migrations("postgres")]
    statements = sqlite_statements(migrations("sqlite")[0][1])
    assert sum("CREATE TABLE" in s for s in statements) == 11 and all(s.endswith(";") for s in statements)


@pytest.mark.parametrize("pause", [0, 0.2], ids=["notice-pending", "socket-closed"])
async def test_postgres_connection_lost_mid_unit_of_work_is_unavailable(
    postgres_storage: PostgresStorage, postgres_dsn: str, pause: float
) -> None:
    storage = postgres_storage
    installation = await new_installation(storage)
    admin = await asyncpg.connect(postgres_dsn)
    try:
        with pytest.raises(Unavailable):
            async with storage.unit_of_work() as uow:
                pid = await uow.fetchval("SELECT pg_backend_pid()")
                await uow.installations.save(replace(installation, billing_plan_id="lost"))
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await asyncio.sleep(pause)
                await uow.installations.get(installation.id)
                await uow.commit()
    finally:
        await admin.close()
    async with storage.unit_of_work() as uow:
        assert await uow.installations.get(installation.id) == installation


async def test_a_new_sqlite_database_and_its_journal_are_owner_only(tmp_path: Path, cipher: SecretCipher) -> None:
    path = tmp_path / "private.db"
    await migrate_sqlite(path)
    storage = await SqliteStorage.open(path, cipher)
    try:
        async with storage.unit_of_work() as uow:
            await uow.installations.save(an_installation())
            await uow.commit()
        for name in ("private.db", "private.db-wal"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    finally:
        await storage.close()
