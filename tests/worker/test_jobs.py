"""Scheduled jobs: interim billing data hourly, last month's invoice, balances, finalization; each period once."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.ids import RandomIds
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.errors import NotFound
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.outbox import FinalizeInstallation, ReportBalances, SubmitBillingData, SubmitInvoice
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.usage import UsageReport
from tests.support.clock import ManualClock
from tests.support.postgres import scratch_database
from tests.worker.conftest import START, an_installation, drain

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def a_resource(installation_id: str, resource_id: str, plan: str = "pro", **changes: object) -> Resource:
    resource = Resource(
        id=resource_id,
        installation_id=installation_id,
        product_id="acme-kv",
        name=resource_id,
        metadata={},
        billing_plan_id=plan,
        status=ResourceStatus.READY,
        secrets=(Secret(name="KV_URL", value="redis://x"),),
        created_at=OCTOBER,
        updated_at=OCTOBER,
    )
    return replace(resource, **changes)


async def seed(storage: Storage, installation_id: str, *resources: Resource, **changes: object) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(installation_id, created_at=OCTOBER, **changes))
        for resource in resources:
            await uow.resources.add(resource)
        await uow.commit()


async def messages(storage: Storage, installation_id: str) -> list:
    async with storage.unit_of_work() as uow:
        return [e.message for e in await uow.outbox.entries(installation_id)]


def kinds(found: list) -> list[str]:
    return [type(m).__name__ for m in found]


async def test_billing_data_is_sent_once_an_hour_and_last_month_is_invoiced_once(
    storage: Storage, jobs: ScheduledJobs, clock: ManualClock
) -> None:
    await seed(storage, "icfg_paid", a_resource("icfg_paid", "res_a"), a_resource("icfg_paid", "res_free", plan="free"))
    first = await jobs.run_due()
    assert first.runs == {"billing-data": 1, "invoice": 1}  # no balances: nothing was bought
    again = await jobs.run_due()
    assert again.runs == {}  # the same hour: already done

    recorded = await messages(storage, "icfg_paid")
    assert sorted(kinds(recorded)) == ["SubmitBillingData", "SubmitInvoice"]
    data = next(m for m in recorded if isinstance(m, SubmitBillingData)).data
    assert data.period.start == datetime(2026, 11, 1, tzinfo=UTC) and data.period.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert data.timestamp == START and data.eod == START.replace(hour=23, minute=59, second=59)
    assert {u.resource_id for u in data.usage} == {"res_a", "res_free"}
    assert [i.resource_id for i in data.items] == ["res_a"]  # the free resource owes nothing
    invoice = next(m for m in recorded if isinstance(m, SubmitInvoice)).invoice
    assert invoice.external_id == "icfg_paid-2026-10" and invoice.final is False
    assert invoice.period.start == OCTOBER and str(invoice.items[0].total) == "20.00"  # a whole month of pro

    clock.advance(hours=1)
    later = await jobs.run_due()
    assert later.runs == {"billing-data": 1}  # a new hour; October stays invoiced once
    assert kinds(await messages(storage, "icfg_paid")).count("SubmitBillingData") == 2


async def test_a_new_worker_after_a_restart_sends_nothing_twice(storage: Storage, ports: Ports) -> None:
    await seed(storage, "icfg_restart", a_resource("icfg_restart", "res_a"))
    await ScheduledJobs(ports, ExampleUsageSource(ports.catalog)).run_due()
    restarted = ScheduledJobs(ports, ExampleUsageSource(ports.catalog))
    assert (await restarted.run_due()).runs == {}
    assert len(await messages(storage, "icfg_restart")) == 2


class FailingOnce:
    """A usage source whose first report fails (the integrator's metering was down)."""

    def __init__(self, real: ExampleUsageSource) -> None:
        self.real = real
        self.failed = False

    async def report(self, *args: object) -> UsageReport:
        if not self.failed:
            self.failed = True
            raise ConnectionError("metering is down")
        return await self.real.report(*args)  # type: ignore[arg-type]


async def test_a_run_that_failed_midway_records_nothing_and_the_next_pass_does_it(
    storage: Storage, ports: Ports
) -> None:
    await seed(storage, "icfg_midway", a_resource("icfg_midway", "res_a"))
    flaky = ScheduledJobs(ports, FailingOnce(ExampleUsageSource(ports.catalog)))  # type: ignore[arg-type]
    try:
        await flaky.run_due()
    except ConnectionError:
        pass
    assert await messages(storage, "icfg_midway") == []
    assert (await flaky.run_due()).runs == {"billing-data": 1, "invoice": 1}


async def test_balances_are_reported_hourly_for_installations_with_credit(
    storage: Storage, jobs: ScheduledJobs, clock: ManualClock
) -> None:
    await seed(storage, "icfg_credit", a_resource("icfg_credit", "res_c", plan="credits"))
    async with storage.unit_of_work() as uow:
        await uow.balances.save("icfg_credit", {None: 500, "res_c": 1250})
        await uow.commit()
    await jobs.run_due()
    (report,) = [m for m in await messages(storage, "icfg_credit") if isinstance(m, ReportBalances)]
    assert [(b.resource_id, b.currency_value_in_cents) for b in report.balances] == [(None, 500), ("res_c", 1250)]
    assert (await jobs.run_due()).runs == {}
    clock.advance(hours=1)
    assert (await jobs.run_due()).runs.get("balances") == 1


async def test_an_uninstalled_installation_gets_its_invoices_then_finalize_in_that_order(
    storage: Storage, jobs: ScheduledJobs, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    deleted_at = datetime(2026, 11, 10, tzinfo=UTC)
    await seed(
        storage,
        "icfg_leaving",
        a_resource("icfg_leaving", "res_a", status=ResourceStatus.UNINSTALLED, updated_at=deleted_at),
        lifecycle=Lifecycle.PENDING_DELETION,
        deleted_at=deleted_at,
    )
    assert (await jobs.run_due()).runs == {"invoice": 1, "finalize": 1}
    recorded = await messages(storage, "icfg_leaving")
    assert kinds(recorded) == ["SubmitInvoice", "SubmitInvoice", "FinalizeInstallation"]
    october, final = recorded[0].invoice, recorded[1].invoice
    assert october.external_id == "icfg_leaving-2026-10" and not october.final
    assert final.external_id == "icfg_leaving-2026-11-final" and final.final
    assert final.period.start == datetime(2026, 11, 1, tzinfo=UTC) and final.invoice_date == deleted_at
    assert str(final.items[0].total) == "6.00"  # 9 of 30 days of $20
    assert (await jobs.run_due()).runs == {}

    await drain(delivery, clock, storage)
    assert [c.path.rsplit("/", 1)[-1] for c in fresh_vercel.accepted] == ["invoices", "invoices", "finalize"]
    assert [c.json.get("final", False) for c in fresh_vercel.accepted[:2]] == [False, True]
    async with storage.unit_of_work() as uow:
        installation = await uow.installations.get("icfg_leaving")
    assert installation is not None and installation.lifecycle is Lifecycle.FINALIZED


async def test_an_uninstall_with_nothing_to_bill_only_finalizes(storage: Storage, jobs: ScheduledJobs) -> None:
    await seed(
        storage,
        "icfg_freeleaver",
        a_resource("icfg_freeleaver", "res_f", plan="free"),
        lifecycle=Lifecycle.PENDING_DELETION,
        deleted_at=START,
    )
    await jobs.run_due()
    assert [type(m) for m in await messages(storage, "icfg_freeleaver")] == [FinalizeInstallation]


async def test_on_demand_billing_data_is_queued_whatever_already_ran(storage: Storage, jobs: ScheduledJobs) -> None:
    await seed(storage, "icfg_now", a_resource("icfg_now", "res_a"))
    await seed(storage, "icfg_empty")
    await jobs.run_due()
    assert await jobs.submit_usage_now(["icfg_now", "icfg_empty"]) == 1
    assert kinds(await messages(storage, "icfg_now")).count("SubmitBillingData") == 2
    assert await messages(storage, "icfg_empty") == []
    with pytest.raises(NotFound, match="icfg_unknown"):  # a named installation that does not exist: nothing queued
        await jobs.submit_usage_now(["icfg_now", "icfg_unknown"])
    assert kinds(await messages(storage, "icfg_now")).count("SubmitBillingData") == 2


async def test_paging_reaches_every_installation(storage: Storage, jobs: ScheduledJobs) -> None:
    ids = [f"icfg_page{n:02d}" for n in range(17)]  # the fixture pages by 7
    for installation_id in ids:
        await seed(storage, installation_id, a_resource(installation_id, f"res_{installation_id}"))
    report = await jobs.run_due()
    assert report.runs["billing-data"] == 17


async def test_two_workers_on_one_postgres_database_run_each_period_once(clock: ManualClock) -> None:
    """Several workers share PostgreSQL only, so this one needs no backend matrix."""
    async with scratch_database() as dsn:
        cipher = SecretCipher([("jobs", os.urandom(32))])
        pools = [await PostgresStorage.open(dsn, cipher) for _ in range(2)]
        try:
            for n in range(10):
                await seed(pools[0], f"icfg_twice{n}", a_resource(f"icfg_twice{n}", f"res_twice{n}"))
            catalog = load_catalog(DEFAULT_PRODUCTS_FILE)
            workers = [
                ScheduledJobs(Ports(storage=pool, catalog=catalog, clock=clock, ids=RandomIds()), ExampleUsageSource(catalog))
                for pool in pools
            ]
            reports = await asyncio.gather(*(w.run_due() for w in workers), *(w.run_due() for w in workers))
            total = sum(r.runs.get("billing-data", 0) for r in reports)
            assert total == 10  # each installation's hour recorded by exactly one of them
            for n in range(10):
                assert kinds(await messages(pools[0], f"icfg_twice{n}")).count("SubmitBillingData") == 1
        finally:
            for pool in pools:
                await pool.close()
