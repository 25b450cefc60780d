"""Every provider-side action reaches Vercel exactly once, as its documented call, through the worker's delivery
(Delivery + the real VercelClient + FakeVercel), on each storage backend; a repeated delivery does no harm; and
reads go to Vercel at once, recording nothing."""

from __future__ import annotations

from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.vercel_client import VercelClient
from marketplace_provider.domain.experimentation import ExperimentationItem, ItemCategory
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import CreateExperimentationItems, DeleteExperimentationItem, OutboxState
from marketplace_provider.domain.resources import ResourceStatus, Secret
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.experimentation import ExperimentationActions
from marketplace_provider.domain.services.installation_actions import InstallationActions
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.resource_actions import ResourceActions, ResourceImport
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.domain.updates import Ownership
from marketplace_provider.ports.storage import Storage
from tests.support.clock import ManualClock
from tests.worker.conftest import an_installation, counts, drain
from tests.worker.test_jobs import a_resource

INST = "icfg_provider"
BASE = f"/v1/installations/{INST}"
NOTICE = Notification(level=Level.WARN, title="Almost full", href="sso:https://p.test/dashboard/usage")
FLAG = ExperimentationItem(id="flag_1", slug="new-checkout", origin="https://p.test/flags/flag_1", category=ItemCategory.FLAG)
SYNCED = {"experimentation": {"edgeConfigId": "ecfg_1"}}


async def seed(storage: Storage, fake: FakeVercel) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(INST))
        await uow.resources.add(a_resource(INST, "res_a", protocol_settings=SYNCED))
        await uow.resources.add(a_resource(INST, "res_slow", status=ResourceStatus.PENDING, secrets=()))
        await uow.commit()
    for rid in ("res_a", "res_slow"):  # provisioned through the Partner API: Vercel knows them
        fake.resources[rid] = {"id": rid, "name": rid, "productId": "acme-kv", "status": "ready"}


def actions(ports: Ports, vercel: VercelClient) -> tuple[InstallationActions, ResourceActions, ExperimentationActions]:
    jobs = ScheduledJobs(ports, ExampleUsageSource(ports.catalog))
    return InstallationActions(ports, vercel, Notifications(ports), jobs), ResourceActions(ports), ExperimentationActions(ports)


async def test_every_action_reaches_vercel_once_as_its_documented_call(
    storage: Storage, ports: Ports, vercel: VercelClient, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    await seed(storage, fresh_vercel)
    installations, resources, experimentation = actions(ports, vercel)
    url = (Secret(name="KV_URL", value="redis://s3cret-url"),)
    token = (Secret(name="KV_TOKEN", value="s3cret-token"),)

    await installations.notify(INST, NOTICE)
    await resources.notify(INST, "res_a", NOTICE)
    await resources.set_status(INST, "res_a", ResourceStatus.SUSPENDED)
    await resources.finish_provisioning(INST, "res_slow", url)
    await resources.push_secrets(INST, "res_a", token, partial=True)
    await installations.announce(INST)
    await resources.announce(INST, "res_a")
    await resources.import_resource(
        INST,
        ResourceImport(resource_id="res_imp", product_id="acme-kv", name="imported", billing_plan_id="free",
                       secrets=url, ownership=Ownership.LINKED),
    )
    await experimentation.create_items(INST, "res_a", [FLAG])
    await experimentation.update_item(INST, "res_a", FLAG)
    await experimentation.delete_item(INST, "res_a", FLAG.id)
    assert await experimentation.push_config(INST, "res_a", {"new-checkout": True})
    assert await installations.bill_now(INST) is not None
    assert fresh_vercel.calls == []  # nothing inline: the worker delivers
    await drain(delivery, clock, storage)

    calls = fresh_vercel.accepted
    assert [(c.method, c.path) for c in calls] == [
        ("PATCH", BASE),
        ("PATCH", f"{BASE}/resources/res_a"),
        ("PATCH", f"{BASE}/resources/res_a"),
        ("PATCH", f"{BASE}/resources/res_slow"),
        ("PUT", f"{BASE}/resources/res_a/secrets"),
        ("POST", f"{BASE}/events"),
        ("POST", f"{BASE}/events"),
        ("PUT", f"{BASE}/resources/res_imp"),
        ("POST", f"{BASE}/resources/res_a/experimentation/items"),
        ("PATCH", f"{BASE}/resources/res_a/experimentation/items/flag_1"),
        ("DELETE", f"{BASE}/resources/res_a/experimentation/items/flag_1"),
        ("PUT", f"{BASE}/resources/res_a/experimentation/edge-config"),
        ("POST", f"{BASE}/billing"),
    ]
    assert len(fresh_vercel.calls) == len(calls)  # nothing refused, nothing repeated
    notice = {"level": "warn", "title": "Almost full", "href": "sso:https://p.test/dashboard/usage"}
    assert calls[0].json == {"notification": notice}
    assert calls[1].json == {"notification": notice}
    assert calls[2].json == {"status": "suspended"}
    assert calls[3].json == {"status": "ready", "secrets": [{"name": "KV_URL", "value": "redis://s3cret-url"}]}
    assert calls[4].json == {"secrets": [{"name": "KV_TOKEN", "value": "s3cret-token"}], "partial": True}
    assert calls[5].json == {"event": {"type": "installation.updated"}}
    assert calls[6].json == {"event": {"type": "resource.updated", "resourceId": "res_a"}}
    imported = calls[7].json
    assert (imported["productId"], imported["name"], imported["status"], imported["ownership"]) == (
        "acme-kv", "imported", "ready", "linked"
    )
    assert imported["billingPlan"]["id"] == "free" and imported["secrets"] == [{"name": "KV_URL", "value": "redis://s3cret-url"}]
    assert calls[8].json == {"items": [{"id": "flag_1", "slug": "new-checkout", "origin": FLAG.origin, "category": "flag"}]}
    assert calls[11].json == {"data": {"new-checkout": True}}
    assert {c.authorization for c in calls} == {f"Bearer token-{INST}"}
    assert fresh_vercel.resources["res_imp"]["name"] == "imported"
    assert await counts(storage) == type(await counts(storage))(pending=0, retrying=0, dead=0)


async def test_reads_are_asked_at_once_and_record_nothing(
    storage: Storage, ports: Ports, vercel: VercelClient, fresh_vercel: FakeVercel
) -> None:
    await seed(storage, fresh_vercel)
    installations, _, _ = actions(ports, vercel)
    fresh_vercel.account_info = {"name": "Acme", "url": "https://vercel.com/acme", "contact": {"email": "ops@acme.test"}}
    fresh_vercel.members["user_7"] = {"id": "user_7", "role": "USER", "userEmail": "u@acme.test"}
    account = await installations.account(INST)
    member = await installations.member(INST, "user_7")
    assert (account.name, account.contact.email if account.contact else None) == ("Acme", "ops@acme.test")
    assert (member.role, member.user_email) == (Role.USER, "u@acme.test")
    assert [(c.method, c.path) for c in fresh_vercel.accepted] == [("GET", f"{BASE}/account"), ("GET", f"{BASE}/member/user_7")]
    async with storage.unit_of_work() as uow:
        assert await uow.outbox.entries(INST) == []


async def test_experimentation_messages_delivered_twice_do_no_harm(
    storage: Storage, ports: Ports, delivery: Delivery, clock: ManualClock, fresh_vercel: FakeVercel
) -> None:
    """A worker that died after Vercel's answer sends a message again: items that exist already are brought to
    what the message says, an item deleted already stays deleted; nothing is dead-lettered."""
    await seed(storage, fresh_vercel)
    create = CreateExperimentationItems(resource_id="res_a", items=(FLAG,))
    delete = DeleteExperimentationItem(resource_id="res_a", item_id=FLAG.id)
    async with storage.unit_of_work() as uow:
        for message in (create, create, delete, delete):
            await uow.outbox.add(INST, message, clock.now())
        await uow.commit()
    await drain(delivery, clock, storage)

    items = f"{BASE}/resources/res_a/experimentation/items"
    assert [(c.method, c.path) for c in fresh_vercel.calls] == [
        ("POST", items),
        ("POST", items),  # 409: it exists...
        ("PATCH", f"{items}/flag_1"),  # ...so it is made as the message says
        ("DELETE", f"{items}/flag_1"),
        ("DELETE", f"{items}/flag_1"),  # 404: deleted already
    ]
    async with storage.unit_of_work() as uow:
        assert {e.state for e in await uow.outbox.entries(INST)} == {OutboxState.DELIVERED}
    assert fresh_vercel.experimentation_items["res_a"] == {}
