"""The worker's scheduled jobs, in-process: interim billing data each hour, last month's invoice once, balances,
and the final invoice then finalization of an uninstalled installation; each run recorded once, with a clock the
test moves from hour to hour."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketplace_provider.domain.billing_data import BillingData, BillingItem, Usage, UsageType
from marketplace_provider.domain.errors import NotFound
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.money import usd
from marketplace_provider.domain.outbox import FinalizeInstallation, ReportBalances, SubmitBillingData, SubmitInvoice
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.usage import UsageReport
from tests.domain.services.conftest import INSTALLATION, NOW, an_installation, owed
from tests.domain.services.fakes import FakeUsage
from tests.support.clock import ManualClock

OCTOBER = Period(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 11, 1, tzinfo=UTC))
NOVEMBER = Period(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC))
ITEM = BillingItem(billing_plan_id="pro", name="Pro", price=usd("20.00"), quantity=1, units="month", total=usd("20.00"))
USED = Usage(name="Storage", type=UsageType.TOTAL, units="MB", day_value=Decimal("1.5"), period_value=Decimal("1.5"))
REPORT = UsageReport(items=(ITEM,), usage=(USED,))


@pytest.fixture
def jobs(ports: Ports, usage: FakeUsage) -> ScheduledJobs:
    usage.reports[INSTALLATION] = REPORT
    return ScheduledJobs(ports, usage, page_size=2)


async def test_an_active_installation_gets_its_hourly_data_and_last_months_invoice_once(
    jobs: ScheduledJobs, storage: Storage, clock: ManualClock
) -> None:
    report = await jobs.run_due()
    assert report.runs == {"billing-data": 1, "invoice": 1}  # no balance to report
    assert await owed(storage) == [
        SubmitBillingData(data=BillingData(timestamp=NOW, eod=datetime(2026, 11, 14, 23, 59, 59, tzinfo=UTC), period=NOVEMBER,
                                           items=(ITEM,), usage=(USED,))),
        SubmitInvoice(invoice=InvoiceRequest(invoice_date=datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), period=OCTOBER,
                                             items=(ITEM,), external_id=f"{INSTALLATION}-2026-10")),
    ]
    assert (await jobs.run_due()).runs == {}  # the same hour again: done already
    clock.advance(hours=1)
    assert (await jobs.run_due()).runs == {"billing-data": 1}  # a new hour; October is invoiced already
    assert len(await owed(storage)) == 3


async def test_balances_are_reported_each_hour_when_there_are_some(jobs: ScheduledJobs, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.balances.save(INSTALLATION, {None: 1200})
        await uow.commit()
    assert (await jobs.run_due()).runs == {"billing-data": 1, "invoice": 1, "balances": 1}
    assert (await owed(storage))[-1] == ReportBalances.of({None: 1200}, NOW)


async def test_nothing_used_queues_nothing_but_the_runs_are_recorded(jobs: ScheduledJobs, storage: Storage, usage: FakeUsage) -> None:
    usage.reports.clear()
    assert (await jobs.run_due()).runs == {}
    usage.reports[INSTALLATION] = REPORT
    assert (await jobs.run_due()).runs == {}  # this hour and last month ran (with nothing to send)
    assert await owed(storage) == []


async def test_an_installation_installed_this_month_owes_no_invoice_for_the_last(
    jobs: ScheduledJobs, storage: Storage, usage: FakeUsage
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(created_at=NOVEMBER.start))
        await uow.commit()
    assert (await jobs.run_due()).runs == {"billing-data": 1}
    assert [period for _, period, _ in usage.asked] == [NOVEMBER]  # the usage source was not asked about October


async def test_an_uninstalled_installation_gets_its_final_invoice_then_is_finalized(
    jobs: ScheduledJobs, storage: Storage, clock: ManualClock
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(lifecycle=Lifecycle.PENDING_DELETION, deleted_at=NOW))
        await uow.commit()
    clock.advance(hours=2)
    assert (await jobs.run_due()).runs == {"invoice": 1, "finalize": 1}
    assert await owed(storage) == [
        SubmitInvoice(invoice=InvoiceRequest(invoice_date=datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), period=OCTOBER,
                                             items=(ITEM,), external_id=f"{INSTALLATION}-2026-10")),
        SubmitInvoice(invoice=InvoiceRequest(invoice_date=NOW, period=NOVEMBER, items=(ITEM,),
                                             external_id=f"{INSTALLATION}-2026-11-final", final=True)),
        FinalizeInstallation(),
    ]
    assert (await jobs.run_due()).runs == {}


async def test_billing_now_on_demand(jobs: ScheduledJobs, storage: Storage, usage: FakeUsage) -> None:
    data = await jobs.bill_now(INSTALLATION)
    assert data is not None and data.timestamp == NOW and data.items == (ITEM,)
    assert await owed(storage) == [SubmitBillingData(data=data)]
    usage.reports.clear()
    assert await jobs.bill_now(INSTALLATION) is None
    assert await jobs.submit_usage_now() == 0
    with pytest.raises(NotFound):  # an unknown one named: nothing queued for any
        await jobs.submit_usage_now([INSTALLATION, "icfg_unknown"])
    usage.reports[INSTALLATION] = REPORT
    assert await jobs.submit_usage_now([INSTALLATION, INSTALLATION]) == 1
    assert len(await owed(storage)) == 2


async def test_every_active_installation_is_visited_page_by_page(jobs: ScheduledJobs, storage: Storage, usage: FakeUsage) -> None:
    async with storage.unit_of_work() as uow:
        for n in range(4):
            await uow.installations.save(an_installation(f"icfg_{n}"))
            usage.reports[f"icfg_{n}"] = REPORT
        await uow.installations.save(an_installation("icfg_final", lifecycle=Lifecycle.FINALIZED))
        await uow.commit()
    assert (await jobs.run_due()).runs == {"billing-data": 5, "invoice": 5}  # page_size 2: three pages
