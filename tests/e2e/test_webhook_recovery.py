"""A webhook event acknowledged by a real `serve` that was SIGKILLed before applying it: the next start applies
it, once, and neither a second delivery nor a worker run applies it again (SQLite and PostgreSQL). Data is
seeded and checked through the storage adapters with the key the processes get."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.simulator.webhooks import signed_headers
from marketplace_provider.domain.invoices import InvoiceState
from marketplace_provider.domain.notifications import Level
from marketplace_provider.domain.outbox import OutboxMessage, SetInstallationNotification, SetResourceStatus
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Storage
from tests.e2e.conftest import Backend, serve_process, tail
from tests.e2e.test_cli import free_port
from tests.e2e.test_worker import cli, kill, worker_env
from tests.worker.conftest import an_installation
from tests.worker.test_jobs import a_resource

SECRET = "recovery-client-secret"  # INTEGRATION_CLIENT_SECRET of the servers: it signs the deliveries
INSTALLATION = "icfg_recovery0000000000001"
RESOURCE = "res_recovery"
INVOICE = "inv_recovery"
EVENT = "evt_recovery_notpaid"
INVOICE_PATH = f"/v1/installations/{INSTALLATION}/billing/invoices/{INVOICE}"


def notpaid_body() -> bytes:
    return json.dumps({
        "id": EVENT,
        "type": "marketplace.invoice.notpaid",
        "createdAt": int(time.time() * 1000),
        "payload": {
            "configuration": {"id": INSTALLATION},
            "installationId": INSTALLATION,
            "invoiceId": INVOICE,
            "invoiceDate": "2026-11-01T00:00:00Z",
            "invoiceTotal": "20.00",
            "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
        },
    }).encode()


def vercel_knows_the_invoice_unpaid(fake: FakeVercel) -> None:
    """What Vercel answers when asked, and the resource it updates when told to."""
    fake.invoices[INVOICE] = {
        "invoiceId": INVOICE, "state": "notpaid", "total": "20.00", "invoiceDate": "2026-11-01T00:00:00Z",
        "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "items": [],
        "created": "2026-11-01T00:00:00Z", "updated": "2026-11-02T00:00:00Z",
    }
    fake.resources[RESOURCE] = {"id": RESOURCE, "internalId": "store_recovery", "name": RESOURCE,
                                "productId": "acme-kv", "status": "ready", "metadata": {}}


async def seed(storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(INSTALLATION))
        await uow.resources.add(a_resource(INSTALLATION, RESOURCE, plan="pro"))
        await uow.commit()


async def stored_event(storage: Storage) -> StoredEvent | None:
    async with storage.unit_of_work() as uow:
        return await uow.webhook_events.hold(EVENT)


async def owed(storage: Storage) -> list[OutboxMessage]:
    """The installation's outbox messages about suspending (the worker's jobs may add billing ones)."""
    async with storage.unit_of_work() as uow:
        entries = await uow.outbox.entries(INSTALLATION)
    return [e.message for e in entries if isinstance(e.message, (SetResourceStatus, SetInstallationNotification))]


def invoice_calls(fake: FakeVercel) -> list:
    return [c for c in fake.calls if (c.method, c.path) == ("GET", INVOICE_PATH)]


async def stopped(process: subprocess.Popen, timeout: float) -> int:
    """Wait for the process without blocking the event loop, which serves the FakeVercel."""
    for _ in range(int(timeout / 0.05)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.05)
    raise AssertionError(f"the process did not exit within {timeout} s")


async def until(
    condition: Callable[[], Awaitable[object]], timeout: float, process: subprocess.Popen, log: Path, what: str
) -> None:
    for _ in range(int(timeout / 0.05)):
        if await condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"serve exited ({process.returncode}) before {what}:\n{tail(log)}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}:\n{tail(log)}")


async def deliver(port: int, body: bytes) -> tuple[int, object]:
    headers = signed_headers(body, SECRET)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as reply:
            return reply.status, await reply.json()


async def test_an_event_stored_by_a_killed_server_is_applied_once_on_restart(
    backend: Backend, fake: FakeVercel, tmp_path: Path
) -> None:
    storage = backend.storage
    await seed(storage)
    vercel_knows_the_invoice_unpaid(fake)
    # the worker runs as its own command here (step 2), so that what the server alone does is seen
    env = worker_env(
        fake, backend, INTEGRATION_CLIENT_ID="oac_recovery", INTEGRATION_CLIENT_SECRET=SECRET, SERVE_WORKER="false"
    )
    port = free_port()
    body = notpaid_body()
    first_log, second_log = tmp_path / "serve-1.log", tmp_path / "serve-2.log"

    # 1. Acknowledged, then killed while asking Vercel about the invoice: stored, nothing applied.
    fake.delay_next(1, 5)
    first = await serve_process(env, port, first_log.parent, first_log)
    try:
        assert await deliver(port, body) == (200, {"received": True, "duplicate": False})

        async def asking_vercel() -> bool:
            return bool(invoice_calls(fake))

        await until(asking_vercel, 15, first, first_log, "the server asked Vercel for the invoice")
        first.send_signal(signal.SIGKILL)
        assert await stopped(first, 10) == -signal.SIGKILL
    except BaseException:
        print(f"--- serve (first) log:\n{tail(first_log)}")
        raise
    finally:
        kill(first)
    event = await stored_event(storage)
    assert event is not None and event.applied_at is None
    async with storage.unit_of_work() as uow:
        resource = await uow.resources.get(INSTALLATION, RESOURCE)
        assert await uow.outbox.entries(INSTALLATION) == []
        assert await uow.invoices.get(INVOICE) is None
    assert resource.status is ResourceStatus.READY and not resource.billing_hold

    # 2. The next start applies it; a second delivery and a worker run do not apply it again.
    second = await serve_process(env, port, second_log.parent, second_log)
    try:

        async def applied() -> bool:
            held = await stored_event(storage)
            return held is not None and held.applied_at is not None

        await until(applied, 30, second, second_log, "the restarted server applied the event")
        async with storage.unit_of_work() as uow:
            resource = await uow.resources.get(INSTALLATION, RESOURCE)
            invoice = await uow.invoices.get(INVOICE)
            installation = await uow.installations.get(INSTALLATION)
        assert resource.status is ResourceStatus.SUSPENDED and resource.billing_hold
        assert invoice is not None and (invoice.state, invoice.failed_attempts) == (InvoiceState.NOTPAID, 1)
        assert installation.notification is not None and installation.notification.level is Level.ERROR
        assert await owed(storage) == [
            SetResourceStatus(resource_id=RESOURCE, status=ResourceStatus.SUSPENDED),
            SetInstallationNotification(notification=installation.notification),
        ]

        assert await deliver(port, body) == (200, {"received": True, "duplicate": True})
        once = await cli(env, "worker", "--once")
        assert once.returncode == 0, once.stderr[-3000:]
        second.send_signal(signal.SIGTERM)  # lets the background apply of the repeat finish first
        # uvicorn re-raises the signal it caught once it has shut down cleanly
        assert await stopped(second, 40) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in second_log.read_text()
    except BaseException:
        print(f"--- serve (second) log:\n{tail(second_log)}")
        raise
    finally:
        kill(second)

    event = await stored_event(storage)
    assert event is not None and event.applied_at is not None and event.delivery_count == 2
    async with storage.unit_of_work() as uow:
        invoice = await uow.invoices.get(INVOICE)
        resource = await uow.resources.get(INSTALLATION, RESOURCE)
    assert (invoice.state, invoice.failed_attempts) == (InvoiceState.NOTPAID, 1)
    assert resource.status is ResourceStatus.SUSPENDED
    kinds = [type(m).__name__ for m in await owed(storage)]
    assert kinds == ["SetResourceStatus", "SetInstallationNotification"]
    assert len(invoice_calls(fake)) == 2  # the killed server's question, then the restarted server's
    # the worker told Vercel, once
    resource_path = f"/v1/installations/{INSTALLATION}/resources/{RESOURCE}"
    patches = [c for c in fake.accepted if (c.method, c.path) == ("PATCH", resource_path)]
    assert [c.json["status"] for c in patches] == ["suspended"]
    assert fake.resources[RESOURCE]["status"] == "suspended"
