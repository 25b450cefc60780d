"""The installation's notification in Vercel's dashboard: set or cleared here, shown there via the outbox."""

from __future__ import annotations

from msgspec.structs import replace

from domain.installations import Installation
from domain.notifications import Notification
from domain.outbox import SetInstallationNotification
from domain.roles import Action, Caller, authorize
from domain.services.common import Ports, active_installation


class Notifications:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def set_for_installation(
        self, caller: Caller | None, installation_id: str, notification: Notification | None
    ) -> Installation:
        """Show `notification` (None: remove it). caller None: our own code acting (invoice events, jobs)."""
        if caller is not None:
            authorize(caller, Action.SET_NOTIFICATION, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, installation_id)
            if installation.notification == notification:
                return installation
            now = self.ports.clock.now()
            installation = replace(installation, notification=notification, updated_at=now)
            await uow.installations.save(installation)
            await uow.outbox.add(installation_id, SetInstallationNotification(notification=notification), now)
            await uow.commit()
        return installation
