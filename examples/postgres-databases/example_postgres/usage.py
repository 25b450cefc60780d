"""Database sizes as Marketplace usage: `ports.usage.UsageSource` on the same server as the provisioner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from example_postgres.names import names_of
from example_postgres.server import AdminServer
from example_postgres.settings import PostgresSettings
from marketplace_provider.domain.billing_data import Usage, UsageType
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import Resource
from marketplace_provider.ports.usage import UsageReport

if TYPE_CHECKING:  # the kit's loader module; nothing here needs it at run time
    from marketplace_provider.entrypoints.plugins import PluginContext

METRIC = "Database size"
UNITS = "MB"
_MB = Decimal(1024 * 1024)  # as pg_size_pretty counts
_CENTI = Decimal("0.01")


class DatabaseSizeUsage:
    """Reports, per live resource, the size of its database now (a `total` metric, in MB with two decimals).

    A size is a level, not an amount used: `day_value` and `period_value` are both the size at the time of the
    report, which later reports of the period replace. For an invoice asked after the period ended, that is
    the size then. Resources whose database is gone are left out. No billing items: plans are not priced here.
    Same settings and `async with` use as `PostgresProvisioner`.
    """

    def __init__(self, context: PluginContext | None = None, *, settings: PostgresSettings | None = None) -> None:
        # The kit passes its PluginContext (its settings and catalog) or nothing; this plug-in needs neither.
        self.settings = PostgresSettings.from_env() if settings is None else settings
        self.server = AdminServer(self.settings)

    async def __aenter__(self) -> DatabaseSizeUsage:
        await self.server.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.close()

    async def report(
        self, installation: Installation, resources: Sequence[Resource], period: Period, until: datetime
    ) -> UsageReport:
        wanted: dict[tuple[str, str], str] = {}  # (database, role) -> resource id
        for resource in resources:
            if not resource.is_live:
                continue
            try:
                names = names_of(self.settings.prefix, resource.id, resource.metadata)
            except Invalid:  # a name we never could have created
                continue
            wanted[(names.database, names.role)] = resource.id
        if not wanted:
            return UsageReport()
        databases, roles = zip(*wanted, strict=True)
        async with self.server.connection() as conn:
            # Only databases still owned by the resource's role: never another's that bears the name.
            rows = await conn.fetch(
                "SELECT d.datname, pg_get_userbyid(d.datdba) AS owner, pg_database_size(d.oid) AS bytes"
                " FROM pg_database d JOIN unnest($1::text[], $2::text[]) AS w(datname, role)"
                " ON w.datname = d.datname AND w.role = pg_get_userbyid(d.datdba)",
                list(databases),
                list(roles),
            )
        usage = []
        for row in sorted(rows, key=lambda r: wanted[(r["datname"], r["owner"])]):
            size = (Decimal(row["bytes"]) / _MB).quantize(_CENTI)
            usage.append(
                Usage(
                    name=METRIC,
                    type=UsageType.TOTAL,
                    units=UNITS,
                    day_value=size,
                    period_value=size,
                    resource_id=wanted[(row["datname"], row["owner"])],
                )
            )
        return UsageReport(usage=tuple(usage))
