"""One composition root: a provisioner and a usage source overridden once, in one place, serve the Partner API,
the dashboard and the worker loop that `serve` runs in-process, on a real server with Vercel faked on 127.0.0.1.
Either way of overriding counts: the container's own `override`, or `create_app(provisioner=..., usage_source=...)`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from dependency_injector import providers

import marketplace_provider
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.entrypoints.containers import Container, resolved
from marketplace_provider.entrypoints.provider import marketplace_of
from tests.entrypoints.parts import METRIC, MineProvisioner, MineUsage
from tests.http.conftest import Installation, new_installation_id
from tests.http.test_sso import cookies, session_of, sso
from tests.http.test_webhooks import event, invoice_payload, sign
from tests.support.server import serving


def settings_for(tmp_path: Path, token_kit: TokenKit, fake_vercel: FakeVercel) -> Settings:
    return load_settings(
        {
            "STORAGE_BACKEND": "sqlite",
            "DATABASE_URL": str(tmp_path / "marketplace.db"),
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": "test-client-secret",  # what tests.http.test_webhooks signs with
            "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
            "VERCEL_API_URL": fake_vercel.url,
            "JWKS_REFETCH_SECONDS": "0",
            "WORKER_POLL_SECONDS": "0.05",
            "JOBS_INTERVAL_SECONDS": "0.2",  # the hourly billing job bills a new installation at its next look
        }
    )


async def eventually(check: Callable[[], Awaitable[object] | object], what: str, timeout: float = 15) -> None:
    for _ in range(int(timeout / 0.05)):
        held = check()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def posted(fake: FakeVercel, installation_id: str, path: str = "") -> list[dict]:
    """The bodies Vercel took at /v1/installations/{installation_id}{path}, in order."""
    wanted = f"/v1/installations/{installation_id}{path}"
    return [c.json for c in fake.accepted if c.method in ("POST", "PATCH", "PUT") and c.path == wanted]


@pytest.fixture(params=["container override", "create_app arguments"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, token_kit: TokenKit, fake_vercel: FakeVercel
) -> AsyncIterator[tuple[Api, MineProvisioner]]:
    settings = settings_for(tmp_path, token_kit, fake_vercel)
    provisioner, usage = MineProvisioner(), MineUsage()
    if request.param == "container override":
        container = Container(settings=settings)
        container.provisioner.override(providers.Object(provisioner))
        container.usage.override(providers.Object(usage))
        app = marketplace_provider.create_app(container=container)
    else:
        app = marketplace_provider.create_app(settings, provisioner=provisioner, usage_source=usage)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        yield Api(url, session), provisioner


async def test_one_override_reaches_the_partner_api_the_dashboard_and_the_worker(
    served: tuple[Api, MineProvisioner], token_kit: TokenKit, fake_vercel: FakeVercel
) -> None:
    api, provisioner = served
    installed = Installation(new_installation_id(), api, token_kit)
    assert (await installed.upsert()).status == 204

    # The Partner API provisions with ours: its secrets, never the example's ACME_*.
    created = await installed.provision(billingPlanId="pro")
    assert created.status == 200, created.body
    resource_id = created.json["id"]
    assert [s["name"] for s in created.json["secrets"]] == ["MINE_URL"]
    fake_vercel.resources[resource_id] = {"id": resource_id, "name": "my-kv", "productId": "acme-kv", "status": "ready"}

    # The dashboard's usage page reads ours.
    session = session_of(await sso(installed, fake_vercel, token_kit, "ADMIN"))
    page = await api.get("/dashboard/usage", headers=cookies(mp_session=session))
    assert page.status == 200 and METRIC.encode() in page.body

    # The worker, in-process, bills with ours...
    await eventually(
        lambda: any(u["name"] == METRIC for b in posted(fake_vercel, installed.id, "/billing") for u in b["usage"]),
        "the worker delivered billing data from our usage source",
    )
    # ...and a notpaid invoice suspends through ours, and Vercel hears of it, with no `worker` process anywhere.
    fake_vercel.invoices["inv_mine"] = {
        "invoiceId": "inv_mine", "state": "notpaid", "total": "20.00", "invoiceDate": "2026-11-01T00:00:00Z",
        "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "items": [],
        "created": "2026-11-01T00:00:00Z", "updated": "2026-11-02T00:00:00Z",
    }
    body = event("marketplace.invoice.notpaid", installed.id, **invoice_payload("inv_mine"))
    delivered = await api.post("/webhook", raw=body, headers={"x-vercel-signature": sign(body), "Content-Type": "application/json"})
    assert delivered.status == 200, delivered.body
    await eventually(
        lambda: any(r.id == resource_id and r.status is ResourceStatus.SUSPENDED for r in provisioner.reconfigured),
        "our provisioner was told of the suspension",
    )
    await eventually(
        lambda: posted(fake_vercel, installed.id, f"/resources/{resource_id}")
        and any("notification" in b for b in posted(fake_vercel, installed.id)),
        "Vercel was told the resource status and the notification",
    )
    assert posted(fake_vercel, installed.id, f"/resources/{resource_id}")[-1]["status"] == "suspended"
    notifications = [b["notification"] for b in posted(fake_vercel, installed.id) if "notification" in b]
    assert notifications[-1]["level"] == "error"


async def test_each_part_exists_once_per_process(tmp_path: Path, token_kit: TokenKit, fake_vercel: FakeVercel) -> None:
    container = Container(settings=settings_for(tmp_path, token_kit, fake_vercel))
    try:
        services = await resolved(container.services())
        dashboard = await resolved(container.dashboard())
        jobs = await resolved(container.jobs())
        webhooks = await resolved(container.webhooks())
        assert services.resources is await resolved(container.resources())
        assert dashboard.actions is await resolved(container.resource_actions())
        marketplace = await marketplace_of(container)
        assert marketplace.installations.jobs is jobs and marketplace.installations.notifications is services.notifications
        assert services.webhooks is webhooks
        assert dashboard.usage_source is jobs.usage is await resolved(container.usage())
        delivery = await resolved(container.delivery())
        assert services.resources.provisioner is delivery.provisioner is await resolved(container.metered_provisioner())
        assert delivery.provisioner.inner is await resolved(container.provisioner())  # counted for /metrics
        assert services.resources.ports.storage is jobs.ports.storage is await resolved(container.storage())
    finally:
        await resolved(container.shutdown_resources())

