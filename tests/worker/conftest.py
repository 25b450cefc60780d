"""The worker's services (outbox delivery, scheduled jobs) against each storage backend, a fresh database per
test (delivery claims whatever is due in the whole database), a real VercelClient and the recording FakeVercel."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.ids import RandomIds
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.adapters.storage.migrations import migrate_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.adapters.vercel_client import VercelClient
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.installations import Credentials, Installation, Lifecycle
from marketplace_provider.domain.outbox import OutboxCounts, RetryPolicy
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.support.postgres import scratch_database

START = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_vercel(fake_vercel: FakeVercel) -> FakeVercel:
    fake_vercel.reset()
    fake_vercel.invoices.clear()
    return fake_vercel


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    cipher = SecretCipher([("worker", os.urandom(32))])
    opened: Storage
    if request.param == "memory":
        opened = MemoryStorage()
        yield opened
    elif request.param == "sqlite":
        await migrate_sqlite(tmp_path / "worker.db")
        opened = await SqliteStorage.open(tmp_path / "worker.db", cipher)
        yield opened
    else:
        async with scratch_database() as dsn:
            opened = await PostgresStorage.open(dsn, cipher)
            yield opened
            await opened.close()
        return
    await opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ports(storage: Storage, clock: ManualClock) -> Ports:
    return Ports(storage=storage, catalog=load_catalog(DEFAULT_PRODUCTS_FILE), clock=clock, ids=RandomIds())


@pytest.fixture
async def vercel(fake_vercel: FakeVercel) -> AsyncIterator[VercelClient]:
    client = VercelClient(fake_vercel.url, timeout_seconds=5, max_attempts=2, backoff_base_seconds=0.001)
    yield client
    await client.close()


POLICY = RetryPolicy(max_attempts=5, first_delay_seconds=1, max_delay_seconds=60)


@pytest.fixture
def delivery(ports: Ports, vercel: VercelClient) -> Delivery:
    return Delivery(ports, vercel, POLICY, provisioner=ExampleProvisioner(), jitter=lambda: 0.0)


@pytest.fixture
def jobs(ports: Ports) -> ScheduledJobs:
    return ScheduledJobs(ports, ExampleUsageSource(ports.catalog), page_size=7)


def an_installation(installation_id: str, **changes: object) -> Installation:
    installation = Installation(
        id=installation_id,
        account=None,
        scopes=("read:resource",),
        accepted_policies={},
        credentials=Credentials(access_token=f"token-{installation_id}", token_type="Bearer"),
        billing_plan_id=None,
        notification=None,
        lifecycle=Lifecycle.ACTIVE,
        created_at=START.replace(month=1),
        updated_at=START.replace(month=1),
    )
    return replace(installation, **changes)


async def counts(storage: Storage) -> OutboxCounts:
    async with storage.unit_of_work() as uow:
        return await uow.outbox.counts()


async def drain(delivery: Delivery, clock: ManualClock, storage: Storage, rounds: int = 2000) -> None:
    """Deliver until nothing is pending; when only retries are left, move the clock to when they are due."""
    for _ in range(rounds):
        if await delivery.deliver_due():
            continue
        left = await counts(storage)
        if left.pending == left.retrying == 0:
            return
        clock.advance(seconds=POLICY.max_delay_seconds)
    raise AssertionError(f"the outbox did not drain: {await counts(storage)}")
