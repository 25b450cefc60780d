"""Provider-side installation actions: the notification and change events owed through the outbox, billing now
as the hourly job does it, and the two reads asked of Vercel at once."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Invalid, NotFound
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.members import MemberInfo
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import AnnounceChange, SetInstallationNotification, SubmitBillingData
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.installation_actions import InstallationActions
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import INSTALLATION, NOW, RESOURCE, FakeGateway, an_installation, owed

NOTICE = Notification(level=Level.ERROR, title="Payment failed", href="sso:https://p.test/dashboard/billing")


async def installation_notification(storage: Storage) -> Notification | None:
    async with storage.unit_of_work() as uow:
        found = await uow.installations.get(INSTALLATION)
    assert found is not None
    return found.notification


async def test_the_installation_notification_is_kept_and_owed_once(
    installations: InstallationActions, storage: Storage
) -> None:
    shown = await installations.notify(INSTALLATION, NOTICE)
    assert shown.notification == NOTICE and shown.updated_at == NOW
    await installations.notify(INSTALLATION, NOTICE)
    await installations.notify(INSTALLATION, None)
    assert await installation_notification(storage) is None
    assert await owed(storage) == [
        SetInstallationNotification(notification=NOTICE),
        SetInstallationNotification(notification=None),
    ]


async def test_a_bad_notification_is_refused_and_nothing_recorded(
    installations: InstallationActions, storage: Storage
) -> None:
    with pytest.raises(Invalid) as caught:
        await installations.notify(INSTALLATION, Notification(level=Level.INFO, title="t", href="ftp://x"))
    assert [f.key for f in caught.value.fields] == ["notification.href"]
    assert await owed(storage) == [] and await installation_notification(storage) is None


async def test_a_change_event_is_owed(installations: InstallationActions, storage: Storage) -> None:
    assert await installations.announce(INSTALLATION) == AnnounceChange()
    assert await owed(storage) == [AnnounceChange()]


async def test_billing_now_queues_this_months_data_as_of_now(installations: InstallationActions, storage: Storage) -> None:
    data = await installations.bill_now(INSTALLATION)
    assert data is not None and data.timestamp == NOW
    assert [i.resource_id for i in data.items] == [RESOURCE]
    assert await owed(storage) == [SubmitBillingData(data=data)]
    assert await installations.bill_all_now([INSTALLATION]) == 1
    assert await installations.bill_all_now() == 1  # every active installation: the one here


async def test_billing_an_installation_with_nothing_to_bill_queues_nothing(
    installations: InstallationActions, storage: Storage
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_empty"))
        await uow.commit()
    assert await installations.bill_now("icfg_empty") is None
    assert await owed(storage, "icfg_empty") == []


async def test_the_account_and_a_member_are_read_from_vercel(
    installations: InstallationActions, gateway: FakeGateway
) -> None:
    assert await installations.account(INSTALLATION) == gateway.account_info
    gateway.members["user_1"] = MemberInfo(id="user_1", role=Role.ADMIN, user_email="a@acme.test")
    assert await installations.member(INSTALLATION, "user_1") == gateway.members["user_1"]
    with pytest.raises(NotFound, match="member user_2"):
        await installations.member(INSTALLATION, "user_2")  # Vercel's 404
    with pytest.raises(Invalid):
        await installations.member(INSTALLATION, " ")
    assert gateway.asked == [(INSTALLATION, "account"), (INSTALLATION, "member user_1"), (INSTALLATION, "member user_2")]


@pytest.mark.parametrize("installation_id", ["icfg_unknown", "icfg_gone"])
async def test_unknown_or_uninstalled_installations_are_not_found_and_vercel_is_not_asked(
    installations: InstallationActions, storage: Storage, gateway: FakeGateway, installation_id: str
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_gone", lifecycle=Lifecycle.PENDING_DELETION))
        await uow.commit()
    for act in (
        lambda: installations.notify(installation_id, NOTICE),
        lambda: installations.announce(installation_id),
        lambda: installations.bill_now(installation_id),
        lambda: installations.bill_all_now([INSTALLATION, installation_id]),
        lambda: installations.account(installation_id),
        lambda: installations.member(installation_id, "user_1"),
    ):
        with pytest.raises(NotFound, match=installation_id):
            await act()
    assert gateway.asked == []
    assert await owed(storage) == [] and await owed(storage, "icfg_gone") == []
