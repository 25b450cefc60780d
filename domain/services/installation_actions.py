"""What the provider's own code does about an installation (README, "Actions from your side"): its notification,
a change event and billing now, recorded with what Vercel must be told; and two reads from Vercel, its account
and a member's information, which are asked at once (nothing changes, so nothing goes through the outbox)."""

from __future__ import annotations

from marketplace_provider.domain.billing_data import BillingData
from marketplace_provider.domain.errors import Invalid, NotFound
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.members import AccountInfo, MemberInfo
from marketplace_provider.domain.notifications import Notification, checked
from marketplace_provider.domain.outbox import AnnounceChange
from marketplace_provider.domain.services.common import Ports, active_installation
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.ports.vercel import VercelApiError, VercelGateway


class InstallationActions:
    def __init__(self, ports: Ports, vercel: VercelGateway, notifications: Notifications, jobs: ScheduledJobs) -> None:
        self.ports = ports
        self.vercel = vercel
        self.notifications = notifications
        self.jobs = jobs

    async def notify(self, installation_id: str, notification: Notification | None) -> Installation:
        """Show `notification` on the installation in Vercel's dashboard and ours (None: remove it)."""
        return await self.notifications.set_for_installation(None, installation_id, checked(notification))

    async def announce(self, installation_id: str) -> AnnounceChange:
        """Ask Vercel to read the installation again (its installation.updated event)."""
        message = AnnounceChange()
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            await uow.outbox.add(installation_id, message, self.ports.clock.now())
            await uow.commit()
        return message

    async def bill_now(self, installation_id: str) -> BillingData | None:
        """This month's billing data as of now, as the hourly job sends it; None when there is nothing to bill."""
        return await self.jobs.bill_now(installation_id)

    async def bill_all_now(self, installation_ids: list[str] | None = None) -> int:
        """`bill_now` for every active installation, or the ones named (NotFound for an unknown one, before any
        is billed); returns for how many billing data was queued."""
        return await self.jobs.submit_usage_now(installation_ids)

    async def account(self, installation_id: str) -> AccountInfo:
        """The team's name, its installation URL and its best contact, as Vercel has them now."""
        installation = await self._installation(installation_id)
        return await self.vercel.get_account(installation)

    async def member(self, installation_id: str, member_id: str) -> MemberInfo:
        """A member's role (and e-mail) as Vercel has it now; `member_id` is the user_id of their token."""
        if not isinstance(member_id, str) or not member_id.strip():
            raise Invalid.field("member_id", "is required")
        installation = await self._installation(installation_id)
        try:
            return await self.vercel.get_member(installation, member_id)
        except VercelApiError as exc:
            if exc.status == 404:
                raise NotFound(f"member {member_id} not found in installation {installation_id}") from None
            raise

    async def _installation(self, installation_id: str) -> Installation:
        async with self.ports.storage.unit_of_work() as uow:
            return await active_installation(uow, installation_id)
