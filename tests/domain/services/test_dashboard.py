"""The provider dashboard's use cases, in-process: what a signed-in member sees, and what an ADMIN may change
(through the same permission table as the Partner API, with Vercel told through the outbox)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.adapters.http.webhooks import parse_event, read_payload
from marketplace_provider.domain.errors import Forbidden, Invalid, NotFound
from marketplace_provider.domain.invoices import Invoice, InvoiceEvent, InvoiceState, InvoiceTransition
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import AnnounceChange, PushResourceSecrets, SetInstallationNotification
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.dashboard import Dashboard
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.domain.sso import Session
from marketplace_provider.ports.provisioner import Rotation
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.usage import UsageReport
from tests.domain.services.conftest import INSTALLATION, NOW, RESOURCE, an_installation, owed, stored
from tests.domain.services.fakes import FakeProvisioner, FakeUsage
from tests.domain.services.test_scheduled import REPORT
from tests.support.clock import ManualClock


def a_session(role: Role = Role.ADMIN) -> Session:
    return Session(id_hash=b"h" * 32, installation_id=INSTALLATION, user_id="usr_1", role=role, created_at=NOW,
                   expires_at=NOW + timedelta(hours=8), user_name="Ada")


ADMIN, VIEWER = a_session(), a_session(Role.USER)


@pytest.fixture
def dashboard(ports: Ports, provisioner: FakeProvisioner, usage: FakeUsage) -> Dashboard:
    return Dashboard(ports, ResourceActions(ports), provisioner, usage, read_payload=read_payload)  # type: ignore[arg-type]


async def test_the_overview_lists_live_resources_and_unpaid_invoices(dashboard: Dashboard, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(billing_plan_id="team-pro"))
        for n, state in enumerate((InvoiceState.PAID, InvoiceState.NOTPAID, InvoiceState.OVERDUE)):
            await uow.invoices.save(Invoice(id=f"inv_{n}", installation_id=INSTALLATION, state=state, updated_at=NOW))
        await uow.commit()
    seen = await dashboard.overview(VIEWER)
    assert seen.plan is not None and seen.plan.id == "team-pro"
    assert [r.id for r in seen.resources] == [RESOURCE] and sorted(i.id for i in seen.unpaid) == ["inv_1", "inv_2"]
    assert not seen.can_change and (await dashboard.overview(ADMIN)).can_change


async def test_a_resource_page_offers_the_plans_it_may_move_to(dashboard: Dashboard) -> None:
    page = await dashboard.resource(ADMIN, RESOURCE)
    assert page.plan is not None and page.plan.id == "pro"
    assert [p.id for p in page.plans] == ["free", "pro", "credits"]  # "legacy" is disabled
    with pytest.raises(NotFound):
        await dashboard.resource(ADMIN, "res_unknown")


async def test_an_invoice_page_counts_the_deliveries_about_it(dashboard: Dashboard, storage: Storage) -> None:
    def delivery(event_id: str, invoice_id: str, kind: str = "marketplace.invoice.notpaid") -> bytes:
        return (f'{{"id":"{event_id}","type":"{kind}","createdAt":1764400000000,'
                f'"payload":{{"installationId":"{INSTALLATION}","invoiceId":"{invoice_id}"}}}}').encode()

    async with storage.unit_of_work() as uow:
        await uow.invoices.save(
            Invoice(id="inv_1", installation_id=INSTALLATION, state=InvoiceState.NOTPAID, updated_at=NOW),
            InvoiceTransition(invoice_id="inv_1", event=InvoiceEvent.NOT_PAID, from_state=None, to_state=InvoiceState.NOTPAID,
                              happened_at=NOW),
        )
        await uow.invoices.save(Invoice(id="inv_theirs", installation_id="icfg_other", state=InvoiceState.PAID, updated_at=NOW))
        for body in (delivery("evt_1", "inv_1"), delivery("evt_1", "inv_1"), delivery("evt_2", "inv_2"),
                     delivery("evt_3", "inv_1", "deployment.created")):
            await uow.webhook_events.record(parse_event(body, NOW))
        await uow.commit()
    page = await dashboard.invoice(VIEWER, "inv_1")
    assert page.deliveries == 2 and [t.to_state for t in page.history] == [InvoiceState.NOTPAID]
    assert [(e.id, e.delivery_count) for e in await dashboard.events(VIEWER)] == [("evt_3", 1), ("evt_2", 1), ("evt_1", 2)]
    with pytest.raises(NotFound):
        await dashboard.invoice(ADMIN, "inv_theirs")  # another installation's


async def test_an_admin_sets_and_clears_the_notification(dashboard: Dashboard, storage: Storage) -> None:
    await dashboard.set_notification(ADMIN, "warn", "  Maintenance  ", "  tonight ")
    await dashboard.clear_notification(ADMIN)
    shown = Notification(level=Level.WARN, title="Maintenance", message="tonight")
    assert await owed(storage) == [SetInstallationNotification(notification=shown), SetInstallationNotification(notification=None)]
    with pytest.raises(Invalid, match="level"):
        await dashboard.set_notification(ADMIN, "loud", "t", None)
    with pytest.raises(Forbidden):
        await dashboard.set_notification(VIEWER, "info", "t", None)
    assert len(await owed(storage)) == 2


async def test_an_admin_changes_a_plan_reconfiguring_first(
    dashboard: Dashboard, storage: Storage, provisioner: FakeProvisioner, clock: ManualClock
) -> None:
    clock.advance(minutes=1)
    await dashboard.change_plan(ADMIN, RESOURCE, "free")
    changed = await stored(storage)
    assert changed is not None and (changed.billing_plan_id, changed.updated_at) == ("free", NOW + timedelta(minutes=1))
    assert [(b.billing_plan_id, a.billing_plan_id) for b, a in provisioner.reconfigured] == [("pro", "free")]
    assert await owed(storage) == [AnnounceChange(resource_id=RESOURCE)]
    await dashboard.change_plan(ADMIN, RESOURCE, "free")  # already on it: nothing happens
    assert len(provisioner.reconfigured) == 1
    for plan_id in ("queue-pro", "legacy"):  # another product's, or disabled
        with pytest.raises(Invalid):
            await dashboard.change_plan(ADMIN, RESOURCE, plan_id)
    with pytest.raises(Forbidden):
        await dashboard.change_plan(VIEWER, RESOURCE, "pro")


async def test_an_admin_rotates_secrets_pushed_to_vercel(dashboard: Dashboard, storage: Storage, provisioner: FakeProvisioner) -> None:
    await dashboard.rotate_secrets(ADMIN, RESOURCE)
    [message] = await owed(storage)
    assert isinstance(message, PushResourceSecrets) and message.partial and [s.name for s in message.secrets] == ["KV_TOKEN"]
    provisioner.rotation = Rotation(sync=False)  # the provisioner pushes them itself, later
    await dashboard.rotate_secrets(ADMIN, RESOURCE)
    assert len(await owed(storage)) == 1
    with pytest.raises(Forbidden):
        await dashboard.rotate_secrets(VIEWER, RESOURCE)


async def test_usage_so_far_comes_from_the_usage_source(dashboard: Dashboard, usage: FakeUsage) -> None:
    usage.reports[INSTALLATION] = REPORT
    report, resources = await dashboard.usage(VIEWER)
    assert report == REPORT and [r.id for r in resources] == [RESOURCE]
    [(installation_id, period, until)] = usage.asked
    assert (installation_id, period.start.month, until) == (INSTALLATION, 11, NOW)
    usage.reports.clear()
    assert (await dashboard.usage(VIEWER))[0] == UsageReport()


async def test_billing_shows_the_plan_and_every_invoice(dashboard: Dashboard, storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.invoices.save(Invoice(id="inv_1", installation_id=INSTALLATION, state=InvoiceState.PAID, updated_at=NOW))
        await uow.commit()
    plan, invoices = await dashboard.billing(VIEWER)
    assert plan is None and [i.id for i in invoices] == ["inv_1"]
