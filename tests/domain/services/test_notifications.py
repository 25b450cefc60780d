"""The installation's notification: kept, and owed to Vercel once per change."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Forbidden, NotFound
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import SetInstallationNotification
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import INSTALLATION, NOW, admin, owed, stored_installation, system, viewer

NOTICE = Notification(level=Level.INFO, title="Welcome", href="https://p.test/start")


@pytest.fixture
def notifications(ports: Ports) -> Notifications:
    return Notifications(ports)


async def test_a_notification_is_kept_and_owed_once_per_change(notifications: Notifications, storage: Storage) -> None:
    shown = await notifications.set_for_installation(admin(), INSTALLATION, NOTICE)
    assert (shown.notification, shown.updated_at) == (NOTICE, NOW)
    await notifications.set_for_installation(None, INSTALLATION, NOTICE)  # our own code, the same one: nothing new
    await notifications.set_for_installation(None, INSTALLATION, None)
    assert await owed(storage) == [SetInstallationNotification(notification=NOTICE), SetInstallationNotification(notification=None)]
    installation = await stored_installation(storage)
    assert installation is not None and installation.notification is None


async def test_only_an_admin_person_sets_one(notifications: Notifications, storage: Storage) -> None:
    for caller in (viewer(), system()):
        with pytest.raises(Forbidden):
            await notifications.set_for_installation(caller, INSTALLATION, NOTICE)
    with pytest.raises(NotFound):
        await notifications.set_for_installation(None, "icfg_unknown", NOTICE)
    assert await owed(storage) == []
