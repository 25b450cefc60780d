"""The worker: deliver the outbox to Vercel, apply stored webhook events the server left, and run the scheduled
jobs, until told to stop. `serve` runs the same loop in-process (unless `--no-worker`); the `worker` command
runs it alone, for deployments that scale it separately.

Several workers may share one database (claims never overlap, job runs are recorded once). SIGTERM/SIGINT let
the current round finish (for at most STOP_GRACE_SECONDS), then the `worker` command exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from marketplace_provider.adapters.metrics_server import metrics_endpoint
from marketplace_provider.config.settings import ConfigError, Settings
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


STOP_GRACE_SECONDS = 10.0
"""Once told to stop, how long a round under way may go on (a slow or failing Vercel can make a round last
minutes). Then it is cancelled: the messages it held stay leased and are taken again after OUTBOX_LEASE_SECONDS,
by this process restarted or by another, so nothing is lost; a call cut short may reach Vercel twice, which every
message is made to tolerate."""


async def work(parts: WorkerParts, settings: Settings, stop: asyncio.Event, *, once: bool = False) -> None:
    """Rounds of jobs, left-over webhook events and deliveries until `stop` is set (or, with once, until the due
    jobs ran and nothing is left to deliver now). No failure ends the loop: everything owed is still stored."""
    jobs_due_at = 0.0
    while not stop.is_set():
        jobs_due = time.monotonic() >= jobs_due_at
        jobs_ran, delivered = await _finish_or_cancel(_round(parts, jobs_due), stop)
        if jobs_ran:
            jobs_due_at = time.monotonic() + settings.jobs_interval_seconds
        if delivered:
            continue
        if once:
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.worker_poll_seconds)
        except TimeoutError:
            pass


async def _round(parts: WorkerParts, jobs_due: bool) -> tuple[bool, int]:
    """One round: (whether the due jobs ran, how much was delivered or applied)."""
    jobs_ran = False
    try:
        if jobs_due:
            report = await parts.jobs.run_due()
            jobs_ran = True
            if report.runs:
                log.info("scheduled jobs queued messages: %s", report.runs)
        applied = await parts.webhooks.apply_pending()  # what the server stored but did not apply
        return jobs_ran, await parts.delivery.deliver_due() + applied
    except Unavailable as exc:  # storage down: wait and try again, the work is all still stored
        log.warning("worker round failed, retrying: %s", exc)
    except Exception:  # a bug in one job must not stop delivery for good: log it, pause, go on
        log.exception("worker round failed")
    return jobs_ran, 0


async def _finish_or_cancel(round_: Coroutine[Any, Any, tuple[bool, int]], stop: asyncio.Event) -> tuple[bool, int]:
    """Run the round to its end, but once `stop` is set give it STOP_GRACE_SECONDS more, then cancel it."""
    task = asyncio.ensure_future(round_)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not task.done():
            log.warning(
                "stopping: the round under way was cut short after %g s; its messages are retried after their lease",
                STOP_GRACE_SECONDS,
            )
            return False, 0
        return task.result()
    finally:
        stopping.cancel()
        if not task.done():  # cut short, or this loop itself was cancelled
            task.cancel()
            await asyncio.wait({task})


async def _serve_metrics(stack: AsyncExitStack, settings: Settings, container: Container) -> None:
    """WORKER_METRICS_ADDRESS: this process's /metrics (its deliveries, provisioner calls) until `stack` closes."""
    if settings.worker_metrics_bind is None:
        return
    host, port = settings.worker_metrics_bind
    storage = await resolved(container.storage())
    try:
        url = await stack.enter_async_context(
            metrics_endpoint(host, port, token=settings.metrics_token, storage=storage)
        )
    except OSError as exc:
        raise ConfigError(f"WORKER_METRICS_ADDRESS: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    log.info("worker metrics at %s", url)


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
        async with AsyncExitStack() as stack:
            if not once:
                await _serve_metrics(stack, settings, container)
            log.info("worker started (%s storage)", settings.storage_backend)
            await work(parts, settings, stop, once=once)
    finally:
        await resolved(container.shutdown_resources())
    log.info("worker stopped")
