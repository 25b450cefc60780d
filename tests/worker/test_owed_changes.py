"""Changes that start on our side record what Vercel must be told in the same transaction, never call it inline."""

from __future__ import annotations

import pytest

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.domain.errors import Forbidden, Invalid
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import PushResourceSecrets, SetInstallationNotification, SetResourceStatus
from marketplace_provider.domain.resources import ResourceStatus, Secret
from marketplace_provider.domain.roles import AuthStyle, Caller, Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.ports.storage import Storage
from tests.worker.conftest import an_installation
from tests.worker.test_jobs import a_resource


def person(installation_id: str, role: Role) -> Caller:
    return Caller(style=AuthStyle.USER, account_id="team_1", installation_id=installation_id, user_id="u1", role=role)


async def seed(storage: Storage, installation_id: str) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(installation_id))
        await uow.resources.add(a_resource(installation_id, f"res_{installation_id}"))
        await uow.commit()


async def owed(storage: Storage, installation_id: str) -> list:
    async with storage.unit_of_work() as uow:
        return [e.message for e in await uow.outbox.entries(installation_id)]


async def test_setting_and_clearing_the_installation_notification(
    storage: Storage, ports: Ports, fresh_vercel: FakeVercel
) -> None:
    await seed(storage, "icfg_note")
    notifications = Notifications(ports)
    notice = Notification(level=Level.WARN, title="Maintenance tonight", href="sso:https://acme.test/status")

    shown = await notifications.set_for_installation(person("icfg_note", Role.ADMIN), "icfg_note", notice)
    assert shown.notification == notice
    await notifications.set_for_installation(None, "icfg_note", notice)  # the same again: nothing more owed
    await notifications.set_for_installation(None, "icfg_note", None)
    assert await owed(storage, "icfg_note") == [
        SetInstallationNotification(notification=notice),
        SetInstallationNotification(notification=None),
    ]
    assert fresh_vercel.calls == []  # nothing is sent inline: the worker delivers


async def test_a_read_only_member_cannot_set_the_notification(storage: Storage, ports: Ports) -> None:
    await seed(storage, "icfg_viewer")
    with pytest.raises(Forbidden):
        await Notifications(ports).set_for_installation(
            person("icfg_viewer", Role.USER), "icfg_viewer", Notification(level=Level.INFO, title="hi")
        )
    assert await owed(storage, "icfg_viewer") == []


async def test_a_status_change_is_kept_and_owed_once(storage: Storage, ports: Ports) -> None:
    await seed(storage, "icfg_status")
    resources = ResourceActions(ports)
    changed = await resources.set_status("icfg_status", "res_icfg_status", ResourceStatus.SUSPENDED)
    assert changed.status is ResourceStatus.SUSPENDED
    await resources.set_status("icfg_status", "res_icfg_status", ResourceStatus.SUSPENDED)
    with pytest.raises(Invalid):
        await resources.set_status("icfg_status", "res_icfg_status", ResourceStatus.UNINSTALLED)
    assert await owed(storage, "icfg_status") == [
        SetResourceStatus(resource_id="res_icfg_status", status=ResourceStatus.SUSPENDED)
    ]


async def test_a_rotation_finished_later_keeps_and_pushes_the_new_secrets(storage: Storage, ports: Ports) -> None:
    await seed(storage, "icfg_rot")
    resources = ResourceActions(ports)
    new = (Secret(name="KV_TOKEN", value="fresh-token"),)
    kept = await resources.push_secrets("icfg_rot", "res_icfg_rot", new, partial=True)
    assert {s.name: s.value for s in kept.secrets} == {"KV_URL": "redis://x", "KV_TOKEN": "fresh-token"}
    (message,) = await owed(storage, "icfg_rot")
    assert message == PushResourceSecrets(resource_id="res_icfg_rot", secrets=new, partial=True)
    assert "fresh-token" not in repr(message)
    with pytest.raises(Invalid):
        await resources.push_secrets("icfg_rot", "res_icfg_rot", ())
