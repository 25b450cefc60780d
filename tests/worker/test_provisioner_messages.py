"""What our side changes inside a transaction and the integrator's provisioner must hear (a suspension for an
unpaid invoice and its end, the resources of an uninstalled installation) is owed through the outbox and told
to the provisioner by the worker after the commit, in order, once, and even after the installation's access
token is gone. Memory, SQLite and PostgreSQL, the real delivery."""

from __future__ import annotations

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.http.webhooks import read_payload
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.outbox import OutboxState, ReconfigureResource, ReleaseResource
from marketplace_provider.domain.resources import Resource, ResourceStatus
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.worker.conftest import POLICY, START, an_installation, drain
from tests.worker.test_jobs import a_resource
from tests.worker.test_webhooks import BILLING, deliver, invoice_event, seed


class Listening(ExampleProvisioner):
    def __init__(self) -> None:
        super().__init__()
        self.heard: list[tuple[str, str, str]] = []  # (call, resource id, status after)

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        self.heard.append(("reconfigure", after.id, after.status.value))

    async def deprovision(self, resource: Resource) -> None:
        self.heard.append(("deprovision", resource.id, resource.status.value))


def delivery_to(ports: Ports, vercel, provisioner: Listening) -> Delivery:  # type: ignore[no-untyped-def]
    return Delivery(ports, vercel, POLICY, provisioner=provisioner, jitter=lambda: 0.0)


async def test_a_suspension_and_its_end_reach_the_provisioner_after_the_commit_in_order(
    storage: Storage, ports: Ports, vercel, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    provisioner = Listening()
    webhooks = Webhooks(ports, vercel, Installations(ports), billing_link=BILLING, read_payload=read_payload)
    await seed(storage, "icfg_hold")
    await deliver(webhooks, invoice_event("icfg_hold", "inv_hold", "created"))
    await deliver(webhooks, invoice_event("icfg_hold", "inv_hold", "notpaid"))
    assert provisioner.heard == []  # recorded, not yet told: nothing of the integrator's ran inside the transaction
    async with storage.unit_of_work() as uow:
        owed = [e.message for e in await uow.outbox.entries("icfg_hold") if isinstance(e.message, ReconfigureResource)]
    assert [(m.before.status, m.after.status) for m in owed] == [(ResourceStatus.READY, ResourceStatus.SUSPENDED)]

    await deliver(webhooks, invoice_event("icfg_hold", "inv_hold", "paid"))
    fresh_vercel.resources["res_icfg_hold"] = {"name": "res_icfg_hold", "status": "ready"}
    await drain(delivery_to(ports, vercel, provisioner), clock, storage)
    assert provisioner.heard == [
        ("reconfigure", "res_icfg_hold", "suspended"),
        ("reconfigure", "res_icfg_hold", "ready"),
    ]
    # and once only: another round finds nothing owed
    assert await delivery_to(ports, vercel, provisioner).deliver_due() == 0


async def test_an_uninstall_releases_its_resources_through_the_worker_even_once_finalized(
    storage: Storage, ports: Ports, vercel, clock: ManualClock
) -> None:
    provisioner = Listening()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_bye"))
        await uow.resources.add(a_resource("icfg_bye", "res_bye1", plan="free"))
        await uow.resources.add(a_resource("icfg_bye", "res_bye2", plan="free"))
        installation = await uow.installations.get("icfg_bye")
        finalized = await Installations(ports).uninstall_in(uow, installation, cascade=True, at=START)
        await uow.commit()
    assert finalized  # free plans only: finalized at once, its access token erased
    async with storage.unit_of_work() as uow:
        gone = await uow.installations.get("icfg_bye")
        owed = await uow.outbox.entries("icfg_bye")
    assert gone.lifecycle is Lifecycle.FINALIZED and gone.credentials is None
    assert sorted(e.message.resource.id for e in owed if isinstance(e.message, ReleaseResource)) == ["res_bye1", "res_bye2"]

    await drain(delivery_to(ports, vercel, provisioner), clock, storage)
    assert sorted(provisioner.heard) == [("deprovision", "res_bye1", "ready"), ("deprovision", "res_bye2", "ready")]
    async with storage.unit_of_work() as uow:
        assert {e.state for e in await uow.outbox.entries("icfg_bye")} == {OutboxState.DELIVERED}


async def test_a_provisioner_that_fails_is_asked_again_later(
    storage: Storage, ports: Ports, vercel, clock: ManualClock
) -> None:
    class Flaky(Listening):
        failures = 2

        async def deprovision(self, resource: Resource) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("the backend did not answer")
            await super().deprovision(resource)

    provisioner = Flaky()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_flaky_release"))
        await uow.outbox.add("icfg_flaky_release", ReleaseResource(resource=a_resource("icfg_flaky_release", "res_f")), START)
        await uow.commit()
    await drain(delivery_to(ports, vercel, provisioner), clock, storage)
    assert provisioner.heard == [("deprovision", "res_f", "ready")] and provisioner.failures == 0

