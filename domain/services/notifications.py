"""The installation's notification in Vercel's dashboard: set or cleared here, shown there via the outbox."""

from __future__ import annotations

from datetime import datetime

from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.outbox import SetInstallationNotification
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, active_installation
from marketplace_provider.ports.storage import UnitOfWork


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
            installation = await show(uow, installation, notification, self.ports.clock.now())
            await uow.commit()
        return installation


async def show(uow: UnitOfWork, installation: Installation, notification: Notification | None, at: datetime) -> Installation:
    """Within the caller's unit of work: keep the notification and owe it to Vercel, unless it is already shown."""
    shown = installation.show(notification, at)
    if shown is not installation:
        await uow.installations.save(shown)
        await uow.outbox.add(installation.id, SetInstallationNotification(notification=notification), at)
    return shown
