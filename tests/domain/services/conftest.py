"""Use cases in-process, in milliseconds: the memory storage, a clock that moves only when the test moves it,
ids that count up, and in-process fakes of Vercel, the token verifier, the provisioner and the usage source
(fakes.py; cosmicpython's fake repository, for every other port). No server, no database, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.installations import Credentials, Installation, Lifecycle
from marketplace_provider.domain.outbox import OutboxMessage
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.domain.roles import AuthStyle, Caller, Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.experimentation import ExperimentationActions
from marketplace_provider.domain.services.installation_actions import InstallationActions
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.ports.storage import Storage
from tests.domain.services.fakes import FakeGateway, FakeProvisioner, FakeUsage, FakeVerifier
from tests.support.clock import ManualClock

NOW = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)
BEFORE = datetime(2026, 10, 1, tzinfo=UTC)
INSTALLATION = "icfg_actions"
RESOURCE = "res_kv"


class CountingIds:
    """Ids that count up (res_1, res_2...), stable ids that show what they were made from, tokens that count."""

    def __init__(self) -> None:
        self.count = 0

    def new_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def stable_id(self, prefix: str, *parts: str) -> str:
        return f"{prefix}_{'_'.join(parts)}"

    def secret_token(self) -> str:
        return f"token_{self.new_id('t')}"


def an_installation(installation_id: str = INSTALLATION, **changes: object) -> Installation:
    installation = Installation(
        id=installation_id,
        account=None,
        scopes=("read:resource",),
        accepted_policies={},
        credentials=Credentials(access_token="token", token_type="Bearer"),
        billing_plan_id=None,
        notification=None,
        lifecycle=Lifecycle.ACTIVE,
        created_at=BEFORE,
        updated_at=BEFORE,
    )
    return replace(installation, **changes)


def a_resource(resource_id: str = RESOURCE, installation_id: str = INSTALLATION, **changes: object) -> Resource:
    fields: dict[str, object] = {
        "id": resource_id,
        "installation_id": installation_id,
        "product_id": "acme-kv",
        "name": "kv",
        "metadata": {"region": "iad1", "max_memory_mb": 256, "eviction": False},
        "billing_plan_id": "pro",
        "status": ResourceStatus.READY,
        "secrets": (Secret(name="KV_URL", value="redis://old"), Secret(name="KV_TOKEN", value="old-token")),
        "created_at": BEFORE,
        "updated_at": BEFORE,
        **changes,
    }
    return Resource(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def storage() -> Storage:
    storage = MemoryStorage()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation())
        await uow.resources.add(a_resource())
        await uow.commit()
    return storage


CATALOG = load_catalog(DEFAULT_PRODUCTS_FILE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ports(storage: Storage, clock: ManualClock) -> Ports:
    return Ports(storage=storage, catalog=CATALOG, clock=clock, ids=CountingIds())


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def provisioner() -> FakeProvisioner:
    return FakeProvisioner()


@pytest.fixture
def usage() -> FakeUsage:
    return FakeUsage()


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def resources(ports: Ports) -> ResourceActions:
    return ResourceActions(ports)


@pytest.fixture
def installations(ports: Ports, gateway: FakeGateway) -> InstallationActions:
    jobs = ScheduledJobs(ports, ExampleUsageSource(ports.catalog))
    return InstallationActions(ports, gateway, Notifications(ports), jobs)  # type: ignore[arg-type]


@pytest.fixture
def experimentation(ports: Ports) -> ExperimentationActions:
    return ExperimentationActions(ports)


async def owed(storage: Storage, installation_id: str = INSTALLATION) -> list[OutboxMessage]:
    async with storage.unit_of_work() as uow:
        return [e.message for e in await uow.outbox.entries(installation_id)]


async def stored(storage: Storage, resource_id: str = RESOURCE, installation_id: str = INSTALLATION) -> Resource | None:
    async with storage.unit_of_work() as uow:
        return await uow.resources.get(installation_id, resource_id)


async def stored_installation(storage: Storage, installation_id: str = INSTALLATION) -> Installation | None:
    async with storage.unit_of_work() as uow:
        return await uow.installations.get(installation_id)


def admin(installation_id: str = INSTALLATION, user_id: str = "usr_admin") -> Caller:
    """A person with the ADMIN role on the team, as a verified user token shows them."""
    return Caller(style=AuthStyle.USER, account_id="team_1", installation_id=installation_id, user_id=user_id, role=Role.ADMIN)


def viewer(installation_id: str = INSTALLATION, user_id: str = "usr_viewer") -> Caller:
    return Caller(style=AuthStyle.USER, account_id="team_1", installation_id=installation_id, user_id=user_id, role=Role.USER)


def system(installation_id: str = INSTALLATION) -> Caller:
    """Vercel itself (a system token)."""
    return Caller(style=AuthStyle.SYSTEM, account_id="team_1", installation_id=installation_id)
