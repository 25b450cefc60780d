"""Installation use cases (the Partner API's PUT, GET, PATCH and DELETE of an installation), in-process: who may,
what is recorded, what a retry with the same Idempotency-Key replays, and how an uninstall ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Conflict, Forbidden, Invalid, NotFound
from marketplace_provider.domain.installations import Credentials, InstallationDetails, Lifecycle
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import ReleaseResource
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.services.common import Ports, RequestKey
from marketplace_provider.domain.services.installations import Installations, Uninstalled
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import (
    BEFORE,
    INSTALLATION,
    NOW,
    RESOURCE,
    a_resource,
    admin,
    an_installation,
    owed,
    stored,
    stored_installation,
    system,
    viewer,
)
from tests.support.clock import ManualClock

NEW = "icfg_new"
DETAILS = InstallationDetails(
    scopes=("read:resource", "write:resource"),
    accepted_policies={"toc": "2026-01-01T00:00:00Z"},
    credentials=Credentials(access_token="vercel-token", token_type="Bearer"),
)


@pytest.fixture
def installations(ports: Ports) -> Installations:
    return Installations(ports)


def key(value: str = "idem-1", fingerprint: str = "request-1") -> RequestKey:
    return RequestKey(value, fingerprint)


async def test_a_first_upsert_starts_on_the_default_installation_plan(installations: Installations, storage: Storage) -> None:
    await installations.upsert(admin(NEW), NEW, DETAILS, None)
    installation = await stored_installation(storage, NEW)
    assert installation is not None and installation.is_active
    assert (installation.billing_plan_id, installation.created_at, installation.credentials) == ("team-free", NOW, DETAILS.credentials)
    view = await installations.get(system(NEW), NEW)
    assert view.billing_plan is not None and view.billing_plan.id == "team-free" and view.notification is None


async def test_a_reinstall_keeps_the_installation_and_takes_the_new_token(
    installations: Installations, storage: Storage, clock: ManualClock
) -> None:
    await installations.uninstall(admin(), INSTALLATION, True, None)
    clock.advance(days=1)
    await installations.upsert(admin(), INSTALLATION, DETAILS, None)
    back = await stored_installation(storage)
    assert back is not None and back.is_active and back.deleted_at is None
    assert (back.created_at, back.updated_at, back.credentials) == (BEFORE, NOW + timedelta(days=1), DETAILS.credentials)


async def test_only_an_admin_installs(installations: Installations, storage: Storage) -> None:
    for caller in (viewer(NEW), system(NEW), admin("icfg_elsewhere")):
        with pytest.raises(Forbidden):
            await installations.upsert(caller, NEW, DETAILS, None)
    assert await stored_installation(storage, NEW) is None


async def test_a_retried_upsert_replays_and_a_reused_key_is_a_conflict(
    installations: Installations, storage: Storage, clock: ManualClock
) -> None:
    await installations.upsert(admin(NEW), NEW, DETAILS, key())
    clock.advance(hours=1)
    await installations.upsert(admin(NEW), NEW, DETAILS, key())  # the same request again: nothing happens
    installation = await stored_installation(storage, NEW)
    assert installation is not None and installation.updated_at == NOW
    with pytest.raises(Conflict, match="Idempotency-Key"):
        await installations.upsert(admin(NEW), NEW, DETAILS, key(fingerprint="another request"))


async def test_reading_an_unknown_or_uninstalled_installation_is_not_found(installations: Installations) -> None:
    with pytest.raises(NotFound):
        await installations.get(system(NEW), NEW)
    await installations.uninstall(admin(), INSTALLATION, True, None)
    with pytest.raises(NotFound):
        await installations.get(system(), INSTALLATION)


async def test_the_plan_changes_only_to_an_installation_plan(
    installations: Installations, storage: Storage, clock: ManualClock
) -> None:
    clock.advance(minutes=5)
    await installations.change_plan(admin(), INSTALLATION, "team-pro", None)
    changed = await stored_installation(storage)
    assert changed is not None and (changed.billing_plan_id, changed.updated_at) == ("team-pro", NOW + timedelta(minutes=5))
    clock.advance(minutes=5)
    await installations.change_plan(admin(), INSTALLATION, "team-pro", None)  # the same plan: no change
    await installations.change_plan(admin(), INSTALLATION, None, None)  # no plan named: no change
    assert await stored_installation(storage) == changed
    for plan_id in ("pro", "no-such-plan"):  # a resource plan, or none of the catalog's
        with pytest.raises(Invalid):
            await installations.change_plan(admin(), INSTALLATION, plan_id, None)
    with pytest.raises(Forbidden):
        await installations.change_plan(viewer(), INSTALLATION, "team-free", None)
    assert await stored_installation(storage) == changed


async def test_uninstalling_with_a_paid_resource_waits_for_the_final_invoices(
    installations: Installations, storage: Storage
) -> None:
    assert await installations.uninstall(admin(), INSTALLATION, True, None) == Uninstalled(finalized=False)
    installation = await stored_installation(storage)
    assert installation is not None and installation.lifecycle is Lifecycle.PENDING_DELETION
    assert installation.credentials is not None and installation.deleted_at == NOW  # the final invoice needs the token
    resource = await stored(storage)
    assert resource is not None and resource.status is ResourceStatus.UNINSTALLED and resource.updated_at == NOW
    assert await owed(storage) == [ReleaseResource(resource=a_resource())]  # the provisioner releases it, after


async def test_uninstalling_with_only_free_plans_is_final_at_once(installations: Installations, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(NEW, billing_plan_id="team-free"))
        await uow.resources.add(a_resource("res_free", NEW, billing_plan_id="free"))
        await uow.commit()
    assert await installations.uninstall(admin(NEW), NEW, True, key()) == Uninstalled(finalized=True)
    installation = await stored_installation(storage, NEW)
    assert installation is not None and installation.lifecycle is Lifecycle.FINALIZED and installation.credentials is None
    # a retry replays the answer; a later uninstall finds nothing left to uninstall
    assert await installations.uninstall(admin(NEW), NEW, True, key()) == Uninstalled(finalized=True)
    assert await installations.uninstall(admin(NEW), NEW, True, None) == Uninstalled(finalized=None)


async def test_without_cascade_the_resources_are_left_alone(installations: Installations, storage: Storage) -> None:
    await installations.uninstall(system(), INSTALLATION, False, None)
    resource = await stored(storage, RESOURCE)
    assert resource is not None and resource.is_live
    assert await owed(storage) == []


async def test_the_notification_shown_is_part_of_the_view(installations: Installations, storage: Storage) -> None:
    notice = Notification(level=Level.WARN, title="Maintenance tonight")
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(notification=notice))
        await uow.commit()
    assert (await installations.get(viewer(), INSTALLATION)).notification == notice
