"""The worker process: deliver the outbox to Vercel, apply stored webhook events the server left, and run the
scheduled jobs, until told to stop.

Several workers may share one PostgreSQL database (claims never overlap, job runs are recorded once); with
SQLite run one. SIGTERM/SIGINT let the current round finish, then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from marketplace_provider.config.settings import Settings
from marketplace_provider.domain.errors import Unavailable
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.entrypoints.containers import WorkerContainer, resolved

log = logging.getLogger("marketplace.worker")


class WorkerParts(msgspec.Struct, frozen=True, kw_only=True):
    delivery: Delivery
    jobs: ScheduledJobs
    webhooks: Webhooks


@asynccontextmanager
async def worker_parts(settings: Settings) -> AsyncIterator[WorkerParts]:
    container = WorkerContainer(settings=settings)
    container.core.catalog()
    await resolved(container.init_resources())
    try:
        yield WorkerParts(
            delivery=await resolved(container.delivery()),
            jobs=await resolved(container.jobs()),
            webhooks=await resolved(container.webhooks()),
        )
    finally:
        await resolved(container.shutdown_resources())


async def run_worker(settings: Settings, *, once: bool = False, stop: asyncio.Event | None = None) -> None:
    """Loop until `stop` is set (or, with once, until the due jobs ran and nothing is left to deliver now)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    async with worker_parts(settings) as parts:
        log.info("worker started (%s storage)", settings.storage_backend)
        next_jobs = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_jobs:
                    report = await parts.jobs.run_due()
                    if report.runs:
                        log.info("scheduled jobs queued messages: %s", report.runs)
                    next_jobs = time.monotonic() + settings.jobs_interval_seconds
                applied = await parts.webhooks.apply_pending()  # what the server stored but did not apply
                delivered = await parts.delivery.deliver_due() + applied
            except Unavailable as exc:  # storage down: wait and try again, the work is all still stored
                log.warning("worker round failed, retrying: %s", exc)
                delivered = 0
            except Exception:  # a bug in one job must not stop delivery for good: log it, pause, go on
                log.exception("worker round failed")
                delivered = 0
            if delivered:
                continue
            if once:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.worker_poll_seconds)
            except TimeoutError:
                pass
        log.info("worker stopped")
