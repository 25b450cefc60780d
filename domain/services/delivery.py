"""Outbox delivery: hand what we owe Vercel to the gateway, in order per installation, until Vercel has it.

A message is leased, sent, then marked in a unit of work of its own. A crash between Vercel's answer and the
mark sends it again after the lease; every message states an absolute value, so that repeat is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import groupby

from marketplace_provider.domain.errors import DomainError, Unavailable
from marketplace_provider.domain.experimentation import ExperimentationItem
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.outbox import (
    FOR_THE_PROVISIONER,
    AnnounceChange,
    CreateExperimentationItems,
    DeleteExperimentationItem,
    FinalizeInstallation,
    FinishProvisioning,
    ImportResource,
    OutboxEntry,
    OutboxMessage,
    PushExperimentationConfig,
    PushResourceSecrets,
    ReconfigureResource,
    ReleaseResource,
    ReportBalances,
    RetryPolicy,
    SetInstallationNotification,
    SetResourceNotification,
    SetResourceStatus,
    SubmitBillingData,
    SubmitInvoice,
    UpdateExperimentationItem,
)
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.updates import (
    CLEAR,
    InstallationEvent,
    InstallationUpdate,
    ResourceEvent,
    ResourceUpdate,
)
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.storage import UnitOfWork
from marketplace_provider.ports.vercel import VercelApiError, VercelGateway

log = logging.getLogger("marketplace.outbox")


class Undeliverable(Exception):
    """Sending again cannot help (Vercel refused the call as it is, or there is no one to send it as)."""


class Delivery:
    def __init__(
        self,
        ports: Ports,
        vercel: VercelGateway,
        policy: RetryPolicy,
        *,
        provisioner: ResourceProvisioner,
        jitter: Callable[[], float],
        lease_seconds: float = 300.0,
        installations_per_round: int = 32,
        per_installation: int = 20,
    ) -> None:
        """`jitter` gives a number in [0, 1) that spreads the retries of many messages (the composition root
        passes `random.random`; tests a constant)."""
        self.ports = ports
        self.vercel = vercel
        self.provisioner = provisioner
        self.policy = policy
        self.lease = timedelta(seconds=lease_seconds)
        self.installations_per_round = installations_per_round
        self.per_installation = per_installation
        self.jitter = jitter

    async def deliver_due(self) -> int:
        """One round: lease what is due, deliver it (installations side by side), return how many were delivered."""
        now = self.ports.clock.now()
        async with self.ports.storage.unit_of_work() as uow:
            claimed = await uow.outbox.claim(now, now + self.lease, self.installations_per_round, self.per_installation)
            await uow.commit()
        chains = [list(chain) for _, chain in groupby(claimed, key=lambda e: e.installation_id)]
        # Stop starting new deliveries well before the lease ends, so no other worker takes a message meanwhile.
        deadline = now + self.lease / 2
        delivered = await asyncio.gather(*(self._deliver_in_order(chain, deadline) for chain in chains))
        return sum(delivered)

    async def _deliver_in_order(self, chain: list[OutboxEntry], deadline: datetime) -> int:
        """Deliver one installation's messages one after another. A failure (or the lease running short) stops
        the chain; the rest are released unattempted and wait behind it, so that order holds."""
        for done, entry in enumerate(chain):
            if self.ports.clock.now() > deadline or not await self._deliver(entry):
                async with self.ports.storage.unit_of_work() as uow:
                    await uow.outbox.release([e.id for e in chain[done + 1 :]])
                    await uow.commit()
                return done
        return len(chain)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        async with self.ports.storage.unit_of_work() as uow:
            installation = await uow.installations.get(entry.installation_id)
        try:
            if isinstance(entry.message, FOR_THE_PROVISIONER):
                await self._tell_provisioner(entry.message)
            elif installation is None or installation.credentials is None:
                raise Undeliverable("the installation has no access token any more")
            else:
                await self._send(installation, entry.message)
        except VercelApiError as exc:
            if exc.retryable or self._try_later(entry.message, exc):
                await self._failed(entry, str(exc), give_up=False)
            else:
                await self._failed(entry, str(exc), give_up=True)
            return False
        except Undeliverable as exc:
            await self._failed(entry, str(exc), give_up=True)
            return False
        except Unavailable as exc:
            await self._failed(entry, str(exc), give_up=False)
            return False
        except DomainError as exc:  # the message no longer fits the domain's rules: a bug, not a Vercel outage
            await self._failed(entry, f"{type(exc).__name__}: {exc}", give_up=True)
            return False
        except Exception as exc:  # a bug in an adapter: keep the message and try later, loudly
            log.exception("outbox %s (%s): unexpected failure", entry.id, entry.kind)
            await self._failed(entry, f"{type(exc).__name__}: {exc}", give_up=False)
            return False
        async with self.ports.storage.unit_of_work() as uow:
            await uow.outbox.delivered(entry.id, self.ports.clock.now())
            if isinstance(entry.message, FinalizeInstallation):
                await self._finalized(uow, entry.installation_id)
            await uow.commit()
        log.info("outbox %s (%s) delivered for %s", entry.id, entry.kind, entry.installation_id)
        return True

    @staticmethod
    def _try_later(message: OutboxMessage, exc: VercelApiError) -> bool:
        # Open invoices block finalization until they are settled (billing.md 5): wait, do not give up.
        return isinstance(message, FinalizeInstallation) and exc.status in (400, 409, 422)

    async def _failed(self, entry: OutboxEntry, error: str, *, give_up: bool) -> None:
        attempts = entry.attempts + 1
        retry_at = None if give_up else self.policy.next_attempt(attempts, self.ports.clock.now(), self.jitter())
        async with self.ports.storage.unit_of_work() as uow:
            await uow.outbox.failed(entry.id, error, retry_at)
            await uow.commit()
        if retry_at is None:
            log.error("outbox %s (%s) for %s is dead after %d attempt(s): %s",
                      entry.id, entry.kind, entry.installation_id, attempts, error)
        else:
            log.warning("outbox %s (%s) for %s failed (attempt %d), next at %s: %s",
                        entry.id, entry.kind, entry.installation_id, attempts, retry_at.isoformat(), error)

    async def _finalized(self, uow: UnitOfWork, installation_id: str) -> None:
        """Vercel has the finalization: nothing more will be billed and the access token no longer works."""
        installation = await uow.installations.get(installation_id)
        if installation is None:
            return
        finalized = installation.finalize(self.ports.clock.now())
        if finalized is not installation:
            await uow.installations.save(finalized)

    async def _tell_provisioner(self, message: ReconfigureResource | ReleaseResource) -> None:
        """Outside any transaction, like every call to the integrator's code; a failure is retried like Vercel's."""
        match message:
            case ReconfigureResource(before=before, after=after):
                await self.provisioner.reconfigure(before, after)
            case ReleaseResource(resource=resource):
                await self.provisioner.deprovision(resource)

    async def _send(self, installation: Installation, message: OutboxMessage) -> None:
        vercel = self.vercel
        match message:
            case SetInstallationNotification(notification=notification):
                await vercel.update_installation(installation, InstallationUpdate(notification=notification or CLEAR))
            case SetResourceStatus(resource_id=resource_id, status=status):
                await vercel.update_resource(installation, resource_id, ResourceUpdate(status=status))
            case PushResourceSecrets(resource_id=resource_id, secrets=secrets, partial=partial):
                await vercel.update_resource_secrets(installation, resource_id, secrets, partial=partial)
            case AnnounceChange(resource_id=None, billing_plan_id=plan_id):
                await vercel.send_event(installation, InstallationEvent(billing_plan_id=plan_id))
            case AnnounceChange(resource_id=str(resource_id)):
                await vercel.send_event(installation, ResourceEvent(resource_id=resource_id))
            case SubmitBillingData(data=data):
                await vercel.submit_billing_data(installation, data)
            case SubmitInvoice():
                await self._submit_invoice(installation, message)
            case ReportBalances(timestamp=timestamp, balances=balances):
                await vercel.submit_prepayment_balances(installation, timestamp, balances)
            case FinalizeInstallation():
                await vercel.finalize_installation(installation)
            case SetResourceNotification(resource_id=resource_id, notification=notification):
                update = ResourceUpdate(notification=notification or CLEAR)
                await vercel.update_resource(installation, resource_id, update)
            case FinishProvisioning(resource_id=resource_id, status=status, secrets=secrets):
                update = ResourceUpdate(status=status, secrets=secrets or None)
                await vercel.update_resource(installation, resource_id, update)
            case ImportResource(resource_id=resource_id, resource=resource):
                await vercel.import_resource(installation, resource_id, resource)
            case CreateExperimentationItems(resource_id=resource_id, items=items):
                await self._create_items(installation, resource_id, items)
            case UpdateExperimentationItem(resource_id=resource_id, item=item):
                await vercel.update_experimentation_item(installation, resource_id, item)
            case DeleteExperimentationItem(resource_id=resource_id, item_id=item_id):
                await self._delete_item(installation, resource_id, item_id)
            case PushExperimentationConfig(resource_id=resource_id, data=data):
                await vercel.put_experimentation_config(installation, resource_id, data)

    async def _create_items(
        self, installation: Installation, resource_id: str, items: tuple[ExperimentationItem, ...]
    ) -> None:
        try:
            await self.vercel.create_experimentation_items(installation, resource_id, items)
        except VercelApiError as exc:
            if exc.status != 409:
                raise
            # They exist: an earlier attempt got through (or the provider made them twice). Make them as given.
            for item in items:
                await self.vercel.update_experimentation_item(installation, resource_id, item)

    async def _delete_item(self, installation: Installation, resource_id: str, item_id: str) -> None:
        try:
            await self.vercel.delete_experimentation_item(installation, resource_id, item_id)
        except VercelApiError as exc:
            if exc.status != 404:  # not found: an earlier attempt deleted it
                raise

    async def _submit_invoice(self, installation: Installation, message: SubmitInvoice) -> None:
        try:
            submitted = await self.vercel.submit_invoice(installation, message.invoice)
        except VercelApiError as exc:
            if exc.status == 409:  # Vercel has an invoice with our external id: an earlier attempt got through
                log.info("invoice %s was already submitted for %s", message.invoice.external_id, installation.id)
                return
            raise
        if submitted.validation_errors:
            raise Undeliverable("Vercel refused the invoice: " + "; ".join(submitted.validation_errors))
