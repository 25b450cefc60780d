"""Scenario 6: the outbox drained to the fake Vercel (5 ms per call) by `marketplace-provider worker` processes
on PostgreSQL, as a deployment scales delivery apart from `serve --no-worker`.

The workers start on an empty outbox and idle; then `messages` messages over `installations` installations are
recorded in one transaction (through the storage adapter, as bench/outbox_delivery.py does) and the clock runs
from that commit to the last message Vercel takes. Each message must arrive exactly once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from bench.load import peak_rss_mb
from bench.outbox_delivery import seed
from bench.server import ROOT, SCRIPT, Vercel, storage
from marketplace_provider.adapters.simulator.vercel_answers import Call
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.containers import container_for, resolved


async def drain(
    side: Vercel, workers: int, *, installations: int, messages: int, latency_ms: float, workdir: Path,
    timeout: float = 300,
) -> dict[str, object]:
    total = installations * messages
    delivered: list[tuple[str, str]] = []
    last = [0.0]

    def heard(call: Call) -> None:
        if call.method == "POST" and call.path.endswith("/events") and call.status and call.status < 300:
            delivered.append((call.path, call.json["event"]["resourceId"]))
            last[0] = time.monotonic()

    async with storage("postgres") as store:
        # INFO: the default level, and the "worker started" line tells when a worker is up
        env = {**side.env("INFO"), **store.env, "WORKER_POLL_SECONDS": "0.05", "JOBS_INTERVAL_SECONDS": "3600"}
        logs = [workdir / f"worker-{workers}-{n}.log" for n in range(workers)]
        processes = [_start(env, log) for log in logs]
        side.api.reset()
        side.api.delay_next(3 * total, latency_ms / 1000)  # every call waits as a real API would
        side.api.on_call = heard
        try:
            await _until_started(processes, logs)
            container = container_for(load_settings(env))
            try:
                await seed(await resolved(container.storage()), installations, messages)  # one commit
                started = time.monotonic()
            finally:
                await resolved(container.shutdown_resources())
            deadline = started + timeout
            while len(delivered) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # a late duplicate would show here
            rss = max(peak_rss_mb(p.pid) for p in processes)
        finally:
            side.api.on_call = None
            side.api.reset()
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
    seconds = max(last[0] - started, 1e-9)
    return {
        "workers": workers,
        "messages": total,
        "delivered": len(delivered),
        "each_once": len(delivered) == len(set(delivered)) == total,
        "seconds": round(seconds, 2),
        "messages_per_s": round(len(set(delivered)) / seconds, 1),
        "rss_mb": rss,
    }


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([SCRIPT, "worker"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


async def _until_started(processes: list[subprocess.Popen], logs: list[Path], timeout: float = 60) -> None:
    """Each worker logs "worker started" once its storage pool and services are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited with status {process.returncode}: {log.read_text()[-1000:]}")
        if all("worker started" in log.read_text() for log in logs):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the workers did not start within a minute")
