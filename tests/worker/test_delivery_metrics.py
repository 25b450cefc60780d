"""Outbox deliveries counted by outcome, and their lag, through the real Delivery on every backend with the
DeliveryMeter the composition root gives it; and the provisioner's calls through MeteredProvisioner."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.metered import DeliveryMeter, MeteredProvisioner
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.vercel_client import VercelClient
from marketplace_provider.domain.errors import Conflict
from marketplace_provider.domain.outbox import SetInstallationNotification
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.entrypoints.containers import metered_delivery_ports
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.worker.conftest import POLICY
from tests.worker.test_delivery import install, record

KIND = "installation.notification"


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("marketplace_outbox_deliveries_total", {"kind": KIND, "outcome": outcome}) or 0.0


def lag() -> tuple[float, float]:
    labels = {"kind": KIND}
    count = REGISTRY.get_sample_value("marketplace_outbox_delivery_lag_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("marketplace_outbox_delivery_lag_seconds_sum", labels) or 0.0
    return count, total


@pytest.fixture
def metered(ports: Ports, vercel: VercelClient) -> Delivery:
    return Delivery(metered_delivery_ports(ports), vercel, POLICY, provisioner=ExampleProvisioner(), jitter=lambda: 0.0)


async def test_deliveries_are_counted_by_outcome_once_committed(
    storage: Storage, metered: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    assert isinstance(metered.ports.storage, DeliveryMeter) and metered.ports.storage.inner is storage
    await install(storage, "icfg_metered")
    await record(storage, "icfg_metered", SetInstallationNotification(notification=None))
    before = {outcome: count(outcome) for outcome in ("delivered", "retrying", "dead")}
    lag_before = lag()

    fresh_vercel.fail_next(2, status=503)  # the client's two attempts fail: tried again later
    clock.advance(seconds=30)
    assert await metered.deliver_due() == 0
    assert count("retrying") - before["retrying"] == 1

    clock.advance(seconds=POLICY.max_delay_seconds)
    assert await metered.deliver_due() == 1
    assert count("delivered") - before["delivered"] == 1
    lag_count, lag_sum = lag()
    assert lag_count - lag_before[0] == 1
    assert lag_sum - lag_before[1] == pytest.approx(30 + POLICY.max_delay_seconds)  # recorded at START

    await record(storage, "icfg_metered", SetInstallationNotification(notification=None))
    fresh_vercel.fail_next(1, status=400)  # refused as it is: dead at once
    assert await metered.deliver_due() == 0
    assert count("dead") - before["dead"] == 1
    assert count("delivered") - before["delivered"] == 1


async def test_an_outcome_rolled_back_is_not_counted(storage: Storage, ports: Ports) -> None:
    await install(storage, "icfg_rolled_back")
    await record(storage, "icfg_rolled_back", SetInstallationNotification(notification=None))
    meter = DeliveryMeter(storage)
    before = count("delivered")
    async with meter.unit_of_work() as uow:
        [entry] = await uow.outbox.claim(ports.clock.now(), ports.clock.now().replace(year=2100), 5, 5)
        await uow.outbox.delivered(entry.id, ports.clock.now())
        # no commit: nothing was delivered
    assert count("delivered") == before
    async with storage.unit_of_work() as uow:
        assert [e.state.value for e in await uow.outbox.entries("icfg_rolled_back")] == ["pending"]


class Refusing(ExampleProvisioner):
    async def reconfigure(self, before, after):  # type: ignore[no-untyped-def]
        raise Conflict("not now")


def calls(operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("marketplace_provisioner_calls_total", labels) or 0.0


async def test_provisioner_failures_are_counted_and_still_raised() -> None:
    inner = Refusing()
    metered = MeteredProvisioner(inner)
    before = calls("reconfigure", "failed"), calls("reconfigure", "ok")
    timed = REGISTRY.get_sample_value("marketplace_provisioner_duration_seconds_count", {"operation": "reconfigure"}) or 0
    with pytest.raises(Conflict):
        await metered.reconfigure(None, None)  # type: ignore[arg-type]
    assert (calls("reconfigure", "failed") - before[0], calls("reconfigure", "ok") - before[1]) == (1, 0)
    assert REGISTRY.get_sample_value("marketplace_provisioner_duration_seconds_count", {"operation": "reconfigure"}) == timed + 1
    assert metered.inner is inner and metered.domain is inner.domain  # the integrator's own attributes still reach
