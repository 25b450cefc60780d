"""The Partner API's provision, update, rotation and delete call the integrator's provisioner with no storage
transaction open: while it runs, other work commits at once, even on SQLite, whose writers take turns. And what
a slow provisioner makes possible stays correct: a retry with the same key waits for the first call and never
provisions twice, a failure leaves nothing, a stale intent is taken over, and a provisioning that outlives its
installation is released again. Memory, SQLite and PostgreSQL, a manual clock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.ids import RandomIds
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.adapters.storage.migrations import migrate_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.errors import Conflict, Invalid, NotFound
from marketplace_provider.domain.resources import ProvisionRequest, Resource, ResourceChanges, ResourceStatus
from marketplace_provider.domain.roles import AuthStyle, Caller, Role
from marketplace_provider.domain.services.common import Ports, RequestKey
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, Rotation
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.support.postgres import scratch_database
from tests.worker.conftest import an_installation

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INSTALLATION = "icfg_slow"
OTHER = "icfg_bystander"
ADMIN = Caller(style=AuthStyle.USER, account_id="team_1", installation_id=INSTALLATION, user_id="u1", role=Role.ADMIN)


class GatedProvisioner(ExampleProvisioner):
    """Each call waits until the test opens the gate; it counts what it was asked and can fail once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.calls: list[str] = []
        self.fail_next = False
        self.status = ResourceStatus.READY

    async def _wait(self, what: str) -> None:
        self.calls.append(what)
        self.entered.set()
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise Invalid.field("metadata.region", "is full")

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        await self._wait("provision")
        made = await super().provision(draft)
        return Provisioned(secrets=made.secrets, status=self.status)

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        await self._wait("reconfigure")

    async def deprovision(self, resource: Resource) -> None:
        await self._wait("deprovision")

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        await self._wait("rotate")
        return await super().rotate_secrets(resource, reason, keep_old_hours)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    cipher = SecretCipher([("test", os.urandom(32))])
    if request.param == "memory":
        yield MemoryStorage()
    elif request.param == "sqlite":
        await migrate_sqlite(tmp_path / "slow.db")
        opened = await SqliteStorage.open(tmp_path / "slow.db", cipher)
        yield opened
        await opened.close()
    else:
        async with scratch_database() as dsn:
            opened = await PostgresStorage.open(dsn, cipher)
            yield opened
            await opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def provisioner() -> GatedProvisioner:
    return GatedProvisioner()


@pytest.fixture
async def resources(storage: Storage, clock: ManualClock, provisioner: GatedProvisioner) -> Resources:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(INSTALLATION))
        await uow.installations.save(an_installation(OTHER))
        await uow.commit()
    ports = Ports(storage=storage, catalog=load_catalog(DEFAULT_PRODUCTS_FILE), clock=clock, ids=RandomIds())
    return Resources(ports, provisioner, retry_wait_seconds=0.5)


REQUEST = ProvisionRequest(product_id="acme-kv", name="my-kv", metadata={}, billing_plan_id="free")


def key(value: str = "idem-1") -> RequestKey:
    return RequestKey(value, "fingerprint-1")


async def others_commit_meanwhile(storage: Storage, provisioner: GatedProvisioner) -> None:
    """Once the provisioner runs, a write for another installation commits at once: nothing is held."""
    await asyncio.wait_for(provisioner.entered.wait(), 5)
    async with asyncio.timeout(1):
        async with storage.unit_of_work() as uow:
            other = await uow.installations.get(OTHER)
            assert other is not None
            await uow.installations.save(other)
            await uow.commit()


async def live(storage: Storage) -> list[Resource]:
    async with storage.unit_of_work() as uow:
        return await uow.resources.list_live(INSTALLATION)


async def test_provisioning_holds_no_transaction(resources: Resources, storage: Storage, provisioner: GatedProvisioner) -> None:
    running = asyncio.create_task(resources.provision(ADMIN, INSTALLATION, REQUEST, key()))
    await others_commit_meanwhile(storage, provisioner)
    assert await live(storage) == []  # nothing visible to Vercel while it runs
    provisioner.gate.set()
    made = await running
    assert [r.id for r in await live(storage)] == [made.id]


@pytest.mark.parametrize("step", ["update", "rotate", "delete"])
async def test_update_rotation_and_delete_hold_no_transaction(
    step: str, resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    provisioner.gate.set()
    made = await resources.provision(ADMIN, INSTALLATION, REQUEST, None)
    provisioner.gate.clear()
    provisioner.entered.clear()
    calls = {
        "update": lambda: resources.update(ADMIN, INSTALLATION, made.id, ResourceChanges(billing_plan_id="pro"), key("u")),
        "rotate": lambda: resources.rotate_secrets(ADMIN, INSTALLATION, made.id, None, 0, key("r")),
        "delete": lambda: resources.delete(ADMIN, INSTALLATION, made.id, key("d")),
    }
    running = asyncio.create_task(calls[step]())
    await others_commit_meanwhile(storage, provisioner)
    provisioner.gate.set()
    await running
    after = await live(storage)
    if step == "update":
        assert after[0].billing_plan_id == "pro"
    elif step == "rotate":
        assert after[0].secrets != made.secrets
    else:
        assert after == []


async def test_a_retry_while_the_first_call_runs_gets_its_answer_and_nothing_is_made_twice(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    first = asyncio.create_task(resources.provision(ADMIN, INSTALLATION, REQUEST, key()))
    await asyncio.wait_for(provisioner.entered.wait(), 5)
    retry = asyncio.create_task(resources.provision(ADMIN, INSTALLATION, REQUEST, key()))
    await asyncio.sleep(0.2)
    assert not retry.done()  # it waits for the first call's reply
    provisioner.gate.set()
    made, replayed = await first, await retry
    assert replayed == made
    assert provisioner.calls == ["provision"]
    assert len(await live(storage)) == 1


async def test_a_retry_that_waited_long_enough_is_told_to_come_back(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    first = asyncio.create_task(resources.provision(ADMIN, INSTALLATION, REQUEST, key()))
    await asyncio.wait_for(provisioner.entered.wait(), 5)
    with pytest.raises(Conflict, match="still being provisioned"):
        await resources.provision(ADMIN, INSTALLATION, REQUEST, key())  # half a second of waiting here
    provisioner.gate.set()
    await first
    assert provisioner.calls == ["provision"]


async def test_a_failed_provisioning_leaves_nothing_and_may_be_retried_at_once(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    provisioner.gate.set()
    provisioner.fail_next = True
    with pytest.raises(Invalid):
        await resources.provision(ADMIN, INSTALLATION, REQUEST, key())
    assert await live(storage) == []
    made = await resources.provision(ADMIN, INSTALLATION, REQUEST, key())
    assert [r.id for r in await live(storage)] == [made.id]


async def test_an_intent_left_by_a_dead_process_is_taken_over_once_stale(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner, clock: ManualClock
) -> None:
    resource_id = resources.ports.ids.stable_id("res", INSTALLATION, key().value)
    async with storage.unit_of_work() as uow:  # what a process that died mid-provisioning left
        assert await uow.intents.begin(INSTALLATION, resource_id, START, stale_before=START)
        await uow.commit()
    provisioner.gate.set()
    with pytest.raises(Conflict):
        await resources.provision(ADMIN, INSTALLATION, REQUEST, key())
    clock.advance(minutes=11)
    made = await resources.provision(ADMIN, INSTALLATION, REQUEST, key())
    assert made.id == resource_id and [r.id for r in await live(storage)] == [resource_id]


async def test_a_resource_made_after_its_installation_went_is_released_again(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    running = asyncio.create_task(resources.provision(ADMIN, INSTALLATION, REQUEST, None))
    await asyncio.wait_for(provisioner.entered.wait(), 5)
    async with storage.unit_of_work() as uow:  # uninstalled while the provisioner ran
        await uow.installations.save(an_installation(INSTALLATION, lifecycle=an_installation(INSTALLATION).lifecycle.FINALIZED))
        await uow.commit()
    provisioner.gate.set()
    with pytest.raises(NotFound):
        await running
    assert provisioner.calls == ["provision", "deprovision"]
    assert await live(storage) == []


async def test_a_pending_answer_is_recorded_as_pending(
    resources: Resources, storage: Storage, provisioner: GatedProvisioner
) -> None:
    provisioner.gate.set()
    provisioner.status = ResourceStatus.PENDING
    made = await resources.provision(ADMIN, INSTALLATION, REQUEST, key())
    assert made.status is ResourceStatus.PENDING
    assert [r.status for r in await live(storage)] == [ResourceStatus.PENDING]
