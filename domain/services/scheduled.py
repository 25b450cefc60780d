"""The worker's scheduled jobs: interim billing data every hour, last month's invoice, prepayment balances,
and the final invoice and finalization of an uninstalled installation.

Each run of a job for one installation and period is recorded (`uow.jobs.claim`) in the same unit of work as
the outbox messages it wrote: a crash before the commit leaves nothing, so the next run does it; after the
commit, no worker does it again. Delivery then goes through the outbox like every other call to Vercel.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec

from marketplace_provider.domain.billing_data import BillingData
from marketplace_provider.domain.errors import NotFound
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.outbox import (
    FinalizeInstallation,
    OutboxMessage,
    ReportBalances,
    SubmitBillingData,
    SubmitInvoice,
)
from marketplace_provider.domain.periods import (
    Period,
    billing_month,
    end_of_day,
    hour_key,
    last_instant,
    month_key,
    previous_month,
)
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.services.common import Ports, active_installation
from marketplace_provider.ports.usage import UsageSource

log = logging.getLogger("marketplace.jobs")

BILLING_DATA, INVOICE, BALANCES, FINALIZE = "billing-data", "invoice", "balances", "finalize"


class JobRun(msgspec.Struct, frozen=True):
    job: str
    key: str


class JobsReport(msgspec.Struct, kw_only=True):
    """What one pass queued: job name -> for how many installations it queued messages."""

    runs: dict[str, int] = msgspec.field(default_factory=dict)

    def count(self, job: str) -> None:
        self.runs[job] = self.runs.get(job, 0) + 1


class ScheduledJobs:
    def __init__(self, ports: Ports, usage: UsageSource, *, page_size: int = 200) -> None:
        self.ports = ports
        self.usage = usage
        self.page_size = page_size

    async def run_due(self) -> JobsReport:
        """One pass over every installation: do whatever is due and not done yet for this hour and month."""
        now = self.ports.clock.now()
        report = JobsReport()
        async for installation_id in self._installations(Lifecycle.ACTIVE):
            await self._active(installation_id, now, report)
        async for installation_id in self._installations(Lifecycle.PENDING_DELETION):
            await self._finalize(installation_id, now, report)
        return report

    async def submit_usage_now(self, installation_ids: list[str] | None = None) -> int:
        """On demand (the `bill` command): this month's billing data as of now for every active installation or
        the ones named (NotFound, before anything is queued, when one of those is unknown or uninstalled).
        Returns for how many installations billing data was queued."""
        if installation_ids is None:
            ids = [i async for i in self._installations(Lifecycle.ACTIVE)]
        else:
            async with self.ports.storage.unit_of_work() as uow:
                for installation_id in installation_ids:
                    await active_installation(uow, installation_id)
            ids = list(dict.fromkeys(installation_ids))
        queued = 0
        for installation_id in ids:
            try:
                queued += await self.bill_now(installation_id) is not None
            except NotFound:  # uninstalled meanwhile
                continue
        return queued

    async def bill_now(self, installation_id: str) -> BillingData | None:
        """This month's billing data as of now, whatever already ran; None when there is nothing to bill.
        Display-only data whose latest timestamp wins, so an extra submission is harmless."""
        now = self.ports.clock.now()
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, installation_id)
            resources = await uow.resources.list_all(installation_id)
        message = await self._billing_data(installation, resources, now)  # no transaction open meanwhile
        if message is None:
            return None
        async with self.ports.storage.unit_of_work() as uow:
            await uow.outbox.add(installation_id, message, now)
            await uow.commit()
        return message.data

    async def _installations(self, lifecycle: Lifecycle) -> AsyncIterator[str]:
        after: str | None = None
        while True:
            async with self.ports.storage.unit_of_work() as uow:
                page = await uow.installations.page(lifecycle, after, self.page_size)
            for installation in page:
                yield installation.id
            if len(page) < self.page_size:
                return
            after = page[-1].id

    async def _active(self, installation_id: str, now: datetime, report: JobsReport) -> None:
        last_month = previous_month(now)
        runs = {
            BILLING_DATA: JobRun(BILLING_DATA, f"{installation_id}:{hour_key(now)}"),
            INVOICE: JobRun(INVOICE, f"{installation_id}:{month_key(last_month)}"),
            BALANCES: JobRun(BALANCES, f"{installation_id}:{hour_key(now)}"),
        }
        async with self.ports.storage.unit_of_work() as uow:
            due = {job: run for job, run in runs.items() if not await uow.jobs.has_run(run.job, run.key)}
            if not due:
                return
            installation = await uow.installations.get(installation_id)
            if installation is None or not installation.is_active:
                return
            resources = await uow.resources.list_all(installation_id)
            balances = await uow.balances.get(installation_id)
        # The usage source may be slow (it asks the integrator's systems): no transaction is open meanwhile.
        messages: dict[str, list[OutboxMessage]] = {}
        if BILLING_DATA in due:
            messages[BILLING_DATA] = _some(await self._billing_data(installation, resources, now))
        if INVOICE in due:
            messages[INVOICE] = _some(await self._invoice(installation, resources, last_month, final=False))
        if BALANCES in due:
            messages[BALANCES] = [ReportBalances.of(balances, now)] if balances else []
        await self._record(installation_id, [(due[job], found) for job, found in messages.items()], now, report)

    async def _finalize(self, installation_id: str, now: datetime, report: JobsReport) -> None:
        """Uninstalled with something billable: last month's invoice if still owed, the final invoice for the
        days of the month before the uninstall, then finalize (delivered in that order)."""
        async with self.ports.storage.unit_of_work() as uow:
            installation = await uow.installations.get(installation_id)
            if installation is None or installation.lifecycle is not Lifecycle.PENDING_DELETION:
                return
            until = installation.deleted_at or now
            last_month = previous_month(until)
            finalize = JobRun(FINALIZE, installation_id)
            invoice = JobRun(INVOICE, f"{installation_id}:{month_key(last_month)}")
            if await uow.jobs.has_run(finalize.job, finalize.key):
                return
            owes_last_month = not await uow.jobs.has_run(invoice.job, invoice.key)
            resources = await uow.resources.list_all(installation_id)
        runs: list[tuple[JobRun, list[OutboxMessage]]] = []
        if owes_last_month:
            runs.append((invoice, _some(await self._invoice(installation, resources, last_month, final=False))))
        final = await self._invoice(installation, resources, billing_month(until), final=True, until=until)
        runs.append((finalize, [*_some(final), FinalizeInstallation()]))
        await self._record(installation_id, runs, now, report)

    async def _record(
        self, installation_id: str, runs: list[tuple[JobRun, list[OutboxMessage]]], now: datetime, report: JobsReport
    ) -> None:
        async with self.ports.storage.unit_of_work() as uow:
            for run, messages in runs:
                if not await uow.jobs.claim(run.job, run.key, now):
                    continue  # another worker recorded it first
                for message in messages:
                    await uow.outbox.add(installation_id, message, now)
                if messages:
                    report.count(run.job)
            await uow.commit()

    async def _billing_data(
        self, installation: Installation, resources: list[Resource], now: datetime
    ) -> SubmitBillingData | None:
        month = billing_month(now)
        usage = await self.usage.report(installation, resources, month, now)
        if not usage.items and not usage.usage:
            return None
        return SubmitBillingData(
            data=BillingData(
                timestamp=now,
                eod=min(end_of_day(now), last_instant(month)),
                period=month,
                items=usage.items,
                usage=usage.usage,
                discounts=usage.discounts,
            )
        )

    async def _invoice(
        self,
        installation: Installation,
        resources: list[Resource],
        period: Period,
        *,
        final: bool,
        until: datetime | None = None,
    ) -> SubmitInvoice | None:
        """The invoice for `period` (a whole billing month), charging what was used up to `until` (default its
        end: the final invoice of an uninstall stops at the uninstall)."""
        until = until or period.end
        if installation.created_at >= until:
            return None
        usage = await self.usage.report(installation, resources, period, until)
        if not usage.items:
            return None
        suffix = "-final" if final else ""
        return SubmitInvoice(
            invoice=InvoiceRequest(
                invoice_date=min(until, last_instant(period)),
                period=period,
                items=usage.items,
                discounts=usage.discounts,
                external_id=f"{installation.id}-{month_key(period)}{suffix}",
                final=final,
            )
        )


def _some(message: OutboxMessage | None) -> list[OutboxMessage]:
    return [] if message is None else [message]
