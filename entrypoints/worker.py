"""The worker: deliver the outbox to Vercel, apply stored webhook events the server left, and run the scheduled
jobs, until told to stop. `serve` runs the same loop in-process (unless `--no-worker`); the `worker` command
runs it alone, for deployments that scale it separately.

Several workers may share one database (claims never overlap, job runs are recorded once). SIGTERM/SIGINT let
the current round finish, then the `worker` command exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import msgspec

from marketplace_provider.config.settings import Settings
from marketplace_provider.domain.errors import Unavailable
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.entrypoints.containers import Container, container_for, resolved
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.usage import UsageSource

log = logging.getLogger("marketplace.worker")


class WorkerParts(msgspec.Struct, frozen=True, kw_only=True):
    delivery: Delivery
    jobs: ScheduledJobs
    webhooks: Webhooks


async def worker_parts(container: Container) -> WorkerParts:
    """The worker's services, from a container whose resources the caller opens and shuts down."""
    container.catalog()
    return WorkerParts(
        delivery=await resolved(container.delivery()),
        jobs=await resolved(container.jobs()),
        webhooks=await resolved(container.webhooks()),
    )


async def work(parts: WorkerParts, settings: Settings, stop: asyncio.Event, *, once: bool = False) -> None:
    """Rounds of jobs, left-over webhook events and deliveries until `stop` is set (or, with once, until the due
    jobs ran and nothing is left to deliver now). No failure ends the loop: everything owed is still stored."""
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


async def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    stop: asyncio.Event | None = None,
    container: Container | None = None,
    provisioner: ResourceProvisioner | None = None,
    usage_source: UsageSource | None = None,
) -> None:
    """The `worker` command: the loop alone, until SIGTERM/SIGINT or `stop`. From code, pass your parts (or a
    container you built) as `create_app` takes them."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    container = container or container_for(settings, provisioner=provisioner, usage_source=usage_source)
    try:
        parts = await worker_parts(container)
        log.info("worker started (%s storage)", settings.storage_backend)
        await work(parts, settings, stop, once=once)
    finally:
        await resolved(container.shutdown_resources())
    log.info("worker stopped")
