"""Plug-ins of a made-up integrator, for the composition-root tests: named by import path in settings
(`PROVISIONER=tests.entrypoints.parts:...`) or handed over from code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.domain.billing_data import Usage, UsageType
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import Resource, Secret
from marketplace_provider.entrypoints.plugins import PluginContext
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft
from marketplace_provider.ports.usage import UsageReport

METRIC = "Widgets polished"


class MineProvisioner(ExampleProvisioner):
    """Hands out MINE_URL instead of the example's ACME_* secrets, and remembers every change it was told of."""

    def __init__(self, context: PluginContext | None = None) -> None:
        super().__init__()
        self.context = context
        self.reconfigured: list[Resource] = []
        self.events: list[str] = []

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        return Provisioned(secrets=(Secret(name="MINE_URL", value=f"mine://{draft.resource_id}"),))

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        self.reconfigured.append(after)


class MineUsage:
    """One metric per resource, named so that nothing else could have produced it."""

    async def report(
        self, installation: Installation, resources: Sequence[Resource], period: Period, until: datetime
    ) -> UsageReport:
        return UsageReport(
            usage=tuple(
                Usage(name=METRIC, type=UsageType.TOTAL, units="widgets", day_value=7, period_value=7, resource_id=r.id)
                for r in resources
            )
        )


# What the settings can name: a factory taking the context, one taking nothing, an async context manager.
OPENED: list[MineProvisioner] = []  # what `pooled` made, for the test to look at


def with_context(context: PluginContext) -> MineProvisioner:
    return MineProvisioner(context)


class Pooled:
    """Like a provisioner holding a connection pool: entered at start-up, exited at shutdown."""

    def __init__(self) -> None:
        self.part = MineProvisioner()
        OPENED.append(self.part)

    async def __aenter__(self) -> MineProvisioner:
        self.part.events.append("entered")
        return self.part

    async def __aexit__(self, *exc: Any) -> None:
        self.part.events.append("exited")


class Incomplete:
    async def provision(self, draft: ResourceDraft) -> Provisioned:
        raise NotImplementedError


class NotAsync(ExampleProvisioner):
    def deprovision(self, resource: Resource) -> None:  # type: ignore[override]
        pass


def failing() -> MineProvisioner:
    raise RuntimeError("cannot reach the backend at db.internal")


NOT_CALLABLE = "a string"
