"""The `worker` loop's own /metrics (WORKER_METRICS_ADDRESS): served while it runs, behind METRICS_TOKEN, counting
the deliveries it makes; an address it cannot listen on stops it with one line."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from prometheus_client import REGISTRY

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import ConfigError, Settings, load_settings
from marketplace_provider.domain.outbox import SetInstallationNotification
from marketplace_provider.entrypoints.containers import container_for, resolved
from marketplace_provider.entrypoints.worker import run_worker
from tests.e2e.test_cli import free_port
from tests.support.observed import samples, value
from tests.worker.conftest import START, an_installation

TOKEN = "worker-scrape-token-0123"
DELIVERED = {"kind": "installation.notification", "outcome": "delivered"}


def worker_settings(fake_vercel: FakeVercel, port: int) -> Settings:
    return load_settings({
        "STORAGE_BACKEND": "memory",
        "VERCEL_API_URL": fake_vercel.url,
        "WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "METRICS_TOKEN": TOKEN,
        "WORKER_POLL_SECONDS": "0.05",
    })


async def scrape(session: aiohttp.ClientSession, url: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as reply:
        return reply.status, reply.headers["Content-Type"], await reply.text()


async def test_the_worker_serves_its_own_metrics_while_it_runs(fake_vercel: FakeVercel) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    settings = worker_settings(fake_vercel, port)
    container = container_for(settings)
    storage = await resolved(container.storage())
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_worker_metrics"))
        await uow.outbox.add("icfg_worker_metrics", SetInstallationNotification(notification=None), START)
        await uow.commit()
    delivered_before = REGISTRY.get_sample_value("marketplace_outbox_deliveries_total", DELIVERED) or 0
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, container=container))
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 10
            while True:
                try:
                    status, kind, text = await scrape(session, url)
                    if value(samples(text), "marketplace_outbox_messages", state="pending") == 0:
                        break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline and not worker.done(), "the worker's /metrics never showed the delivery"
                await asyncio.sleep(0.05)
            assert (status, kind) == (200, "text/plain; version=0.0.4; charset=utf-8")
            scraped = samples(text)
            assert value(scraped, "marketplace_outbox_deliveries_total", **DELIVERED) - delivered_before == 1
            assert value(scraped, "marketplace_storage_up") == 1
            for token in (None, "not-the-token"):
                status, _, body = await scrape(session, url, token)
                assert status == 401 and '"unauthenticated"' in body and "marketplace_" not in body
    finally:
        stop.set()
        await worker
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await scrape(session, url)  # gone with the worker


async def test_an_address_in_use_stops_the_worker_with_one_line(fake_vercel: FakeVercel) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^WORKER_METRICS_ADDRESS: cannot listen on 127.0.0.1:{port}: "):
            await run_worker(worker_settings(fake_vercel, port), stop=asyncio.Event())
