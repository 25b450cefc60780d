"""DatabaseSizeUsage against a real server: the size of each live resource's database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import msgspec
from pg_support import NOW, draft, env_of, resource_of

from marketplace_provider.domain.billing_data import UsageType
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import ResourceStatus

PERIOD = Period(datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
INSTALLATION = Installation(
    id="icfg_test",
    account=None,
    scopes=(),
    accepted_policies={},
    credentials=None,
    billing_plan_id=None,
    notification=None,
    lifecycle=Lifecycle.ACTIVE,
    created_at=NOW,
    updated_at=NOW,
)


async def test_each_live_resource_reports_its_database_size(provisioner, usage_source):
    small, big, gone, uninstalled = (draft(f"res_{n}") for n in ("small", "big", "gone", "uninstalled"))
    await provisioner.provision(small)
    await provisioner.provision(gone)
    env = env_of((await provisioner.provision(big)).secrets)
    await provisioner.deprovision(resource_of(gone))  # the kit still lists it, but its database is gone
    resources = [
        resource_of(small),
        resource_of(big),
        resource_of(gone),
        msgspec.structs.replace(resource_of(uninstalled), status=ResourceStatus.UNINSTALLED),
    ]

    first = await usage_source.report(INSTALLATION, resources, PERIOD, NOW)

    assert first.items == () and first.discounts == ()
    assert [u.resource_id for u in first.usage] == ["res_big", "res_small"]
    for usage in first.usage:
        assert (usage.name, usage.type, usage.units) == ("Database size", UsageType.TOTAL, "MB")
        assert usage.day_value == usage.period_value > Decimal(1)  # even an empty database has a few MB
        assert usage.period_value == usage.period_value.quantize(Decimal("0.01"))

    conn = await asyncpg.connect(env["DATABASE_URL"])
    await conn.execute("CREATE TABLE filler AS SELECT repeat('x', 1000) AS t FROM generate_series(1, 5000)")
    await conn.close()
    second = await usage_source.report(INSTALLATION, resources, PERIOD, NOW)

    sizes = {u.resource_id: u.period_value for u in first.usage}
    grown = {u.resource_id: u.period_value for u in second.usage}
    assert grown["res_big"] >= sizes["res_big"] + Decimal(4)
    assert grown["res_small"] == sizes["res_small"]


async def test_nothing_to_report_without_live_databases(usage_source):
    report = await usage_source.report(INSTALLATION, [resource_of(draft("res_never_made"))], PERIOD, NOW)
    assert report.usage == () and report.items == ()

    assert (await usage_source.report(INSTALLATION, [], PERIOD, NOW)).usage == ()
