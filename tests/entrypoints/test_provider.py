"""The provider-side API from code: `connect(...)` builds the actions from the composition root and closes what it
opened; what they record survives the process (recorded by one, delivered by a fresh container on the same SQLite
file or PostgreSQL database, each call reaching Vercel once); and a resource notification shows on our pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import marketplace_provider
from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.domain.errors import NotFound
from marketplace_provider.domain.installations import Credentials, Installation, Lifecycle
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.resources import ResourceStatus, Secret
from marketplace_provider.domain.services.resource_actions import ResourceImport
from marketplace_provider.entrypoints.containers import container_for, resolved
from tests.entrypoints.test_composition_root import settings_for
from tests.http.conftest import Installation as ApiInstallation
from tests.http.conftest import new_installation_id
from tests.http.test_sso import cookies, session_of, sso
from tests.support.postgres import scratch_database
from tests.support.server import serving
from tests.worker.test_jobs import OCTOBER, a_resource

INST = "icfg_restart"
BASE = f"/v1/installations/{INST}"


@pytest.fixture(params=["sqlite", "postgres"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path, fake_vercel: FakeVercel) -> AsyncIterator[Settings]:
    fake_vercel.reset()
    common = {"VERCEL_API_URL": fake_vercel.url, "LOG_LEVEL": "WARNING"}
    if request.param == "sqlite":
        yield load_settings({**common, "STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(tmp_path / "m.db")})
    else:
        async with scratch_database() as dsn:
            yield load_settings({**common, "STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()})


async def seed(settings: Settings, fake: FakeVercel) -> None:
    container = container_for(settings)
    try:
        storage = await resolved(container.storage())
        async with storage.unit_of_work() as uow:  # type: ignore[attr-defined]
            await uow.installations.save(
                Installation(
                    id=INST, account=None, scopes=(), accepted_policies={},
                    credentials=Credentials(access_token="token-restart", token_type="Bearer"), billing_plan_id=None,
                    notification=None, lifecycle=Lifecycle.ACTIVE, created_at=OCTOBER, updated_at=OCTOBER,
                )
            )
            await uow.resources.add(a_resource(INST, "res_r", status=ResourceStatus.PENDING, secrets=()))
            await uow.commit()
    finally:
        await resolved(container.shutdown_resources())
    fake.resources["res_r"] = {"id": "res_r", "name": "res_r", "productId": "acme-kv", "status": "pending"}


async def deliver_with_a_new_container(settings: Settings) -> int:
    """What a restarted worker does: a fresh composition root on the same database delivers what is owed."""
    container = container_for(settings)
    delivered = 0
    try:
        delivery = await resolved(container.delivery())
        while done := await delivery.deliver_due():  # type: ignore[attr-defined]
            delivered += done
    finally:
        await resolved(container.shutdown_resources())
    return delivered


async def test_what_connect_records_survives_a_restart_and_reaches_vercel_once(
    settings: Settings, fake_vercel: FakeVercel
) -> None:
    await seed(settings, fake_vercel)
    secret = Secret(name="KV_URL", value="redis://s3cret")
    async with marketplace_provider.connect(settings) as marketplace:
        note = Notification(level=Level.INFO, title="Ready soon", href=marketplace.sso_link("/dashboard/resources/res_r"))
        assert note.href == "sso:http://127.0.0.1:8000/dashboard/resources/res_r"
        await marketplace.installations.notify(INST, note)
        await marketplace.resources.notify(INST, "res_r", note)
        await marketplace.resources.finish_provisioning(INST, "res_r", [secret])
        await marketplace.resources.import_resource(
            INST, ResourceImport(resource_id="res_mine", product_id="acme-kv", name="mine", billing_plan_id="free", secrets=(secret,))
        )
        await marketplace.installations.announce(INST)
        with pytest.raises(NotFound):  # refused, and the rest still commits and is delivered
            await marketplace.resources.set_status(INST, "res_unknown", ResourceStatus.READY)
    assert fake_vercel.calls == []

    assert await deliver_with_a_new_container(settings) == 5
    assert [(c.method, c.path) for c in fake_vercel.accepted] == [
        ("PATCH", BASE),
        ("PATCH", f"{BASE}/resources/res_r"),
        ("PATCH", f"{BASE}/resources/res_r"),
        ("PUT", f"{BASE}/resources/res_mine"),
        ("POST", f"{BASE}/events"),
    ]
    assert fake_vercel.accepted[2].json == {"status": "ready", "secrets": [{"name": "KV_URL", "value": "redis://s3cret"}]}
    assert fake_vercel.accepted[3].json["secrets"] == [{"name": "KV_URL", "value": "redis://s3cret"}]
    assert len(fake_vercel.calls) == 5
    assert await deliver_with_a_new_container(settings) == 0  # delivered once: a second worker has nothing left

    async with marketplace_provider.connect(settings) as marketplace:  # what was kept, read back
        kept = await marketplace.resources.set_status(INST, "res_r", ResourceStatus.READY)
    assert kept.secrets == (secret,) and kept.notification == note


async def test_connect_closes_only_what_it_opened(settings: Settings) -> None:
    container = container_for(settings)
    async with marketplace_provider.connect(container=container) as marketplace:
        assert isinstance(marketplace, marketplace_provider.Marketplace)
    storage = await resolved(container.storage())  # still open: the container's owner closes it
    await storage.ping()  # type: ignore[attr-defined]
    await resolved(container.shutdown_resources())


async def test_a_resource_notification_shows_on_the_resource_page_and_the_overview(
    tmp_path: Path, token_kit: TokenKit, fake_vercel: FakeVercel
) -> None:
    container = container_for(settings_for(tmp_path, token_kit, fake_vercel))
    async with serving(marketplace_provider.create_app(container=container)) as url, aiohttp.ClientSession() as session:
        api = Api(url, session)
        installed = ApiInstallation(new_installation_id(), api, token_kit)
        assert (await installed.upsert()).status == 204
        created = await installed.provision()
        assert created.status == 200, created.body
        resource_id = created.json["id"]
        page = f"/dashboard/resources/{resource_id}"
        async with marketplace_provider.connect(container=container) as marketplace:
            notice = Notification(
                level=Level.WARN, title="Maintenance at 02:00 UTC", message="Writes pause for a minute.",
                href=marketplace.sso_link(page),
            )
            await marketplace.resources.notify(installed.id, resource_id, notice)
        signed_in = cookies(mp_session=session_of(await sso(installed, fake_vercel, token_kit, "USER")))
        shown = await api.get(page, headers=signed_in)
        assert shown.status == 200, shown.body[:300]
        assert b"Maintenance at 02:00 UTC" in shown.body and b"Writes pause for a minute." in shown.body
        assert b"notice-warn" in shown.body and b"sso:http://127.0.0.1:8000" + page.encode() in shown.body
        overview = await api.get("/dashboard", headers=signed_in)
        assert b"Maintenance at 02:00 UTC" in overview.body

        async with marketplace_provider.connect(container=container) as marketplace:
            await marketplace.resources.notify(installed.id, resource_id, None)
        cleared = await api.get(page, headers=signed_in)
        assert b"Maintenance at 02:00 UTC" not in cleared.body
