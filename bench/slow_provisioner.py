"""Does a slow provisioner hold anyone up? A real `serve` process (SQLite, then PostgreSQL) whose provisioner
takes 5 s for resources named `slow-*`; 50 concurrent clients read and rename resources of their own
installations, first with nothing else running (the floor), then while a slow provisioning runs. Prints p50 and
p99 of both phases and their ratio: close to 1 means the provisioner holds no transaction, lock or connection
that others wait for. Everything talks to 127.0.0.1 only.

    .venv/bin/python bench/slow_provisioner.py [--seconds 3] [--clients 50] [--provision-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.server import Vercel, backend_server, vercel
from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft
from tests.http.conftest import Installation, new_installation_id, upsert_body


class SlowProvisioner(ExampleProvisioner):
    """The example, but `slow-*` resources take SLOW_PROVISION_SECONDS to make (a real database might)."""

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        if draft.name.startswith("slow"):
            await asyncio.sleep(float(os.environ.get("SLOW_PROVISION_SECONDS", "5")))
        return await super().provision(draft)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def load(
    api: Api, installations: list[tuple[Installation, str]], seconds: float, pace: float
) -> tuple[list[float], int]:
    """Each client alternates GET and PATCH of its own resource for `seconds`, pausing `pace` seconds between
    requests (0: as fast as the server answers, so latency is mostly queueing); latencies in ms, and errors."""
    latencies: list[float] = []
    errors = 0

    async def client(installed: Installation, resource_id: str) -> None:
        nonlocal errors
        path = f"{installed.path}/resources/{resource_id}"
        deadline = time.monotonic() + seconds
        n = 0
        await asyncio.sleep(random.uniform(0, pace))  # clients spread out, not in lockstep
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if n % 2:
                reply = await api.patch(path, token=installed.admin, style="user", body={"name": f"renamed-{n}"})
            else:
                reply = await api.get(path, token=installed.system, style="system")
            latencies.append((time.perf_counter() - started) * 1000)
            errors += reply.status != 200
            n += 1
            await asyncio.sleep(pace)

    await asyncio.gather(*(client(i, r) for i, r in installations))
    return latencies, errors


async def run(backend: str, side: Vercel, args: argparse.Namespace, workdir: Path) -> None:
    extra = {"PROVISIONER": "bench.slow_provisioner:SlowProvisioner", "SLOW_PROVISION_SECONDS": str(args.provision_seconds)}
    async with backend_server(backend, side, workdir, "WARNING", worker=True, extra=extra) as (server, _):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.clients + 10)) as session:
            api = Api(server.url, session)
            installations = []
            for _ in range(args.clients):
                installed = Installation(new_installation_id(), api, side.kit)
                assert (await installed.upsert()).status == 204
                created = await installed.provision()
                assert created.status == 200, created.body
                installations.append((installed, created.json["id"]))
            for pace in args.pace:
                await phases(api, side.kit, installations, backend, args, pace)


async def phases(
    api: Api, kit: TokenKit, installations: list[tuple[Installation, str]], backend: str, args: argparse.Namespace,
    pace: float,
) -> None:
    """The floor, then the same load while a slow provisioning runs."""
    floor, floor_errors = await load(api, installations, args.seconds, pace)
    slow = Installation(new_installation_id(), api, kit)
    await api.put(slow.path, token=slow.admin, style="user", body=upsert_body())
    started = time.monotonic()
    provisioning = asyncio.create_task(slow.provision(name="slow-db"))
    await asyncio.sleep(0.3)
    during, during_errors = await load(api, installations, args.seconds, pace)
    overlapped = not provisioning.done()
    reply = await provisioning
    took = time.monotonic() - started
    load_name = "saturating" if pace == 0 else f"paced {pace:g} s"
    for name, values, errs in (("floor", floor, floor_errors), ("during", during, during_errors)):
        print(
            f"  {backend:<8} {load_name:<13} {name:<7} {len(values):6d} requests  p50 {statistics.median(values):6.1f} ms"
            f"  p99 {percentile(values, 0.99):6.1f} ms  errors {errs}"
        )
    print(
        f"  {backend:<8} {load_name:<13} ratio during/floor: p50 {statistics.median(during) / statistics.median(floor):.2f}"
        f"  p99 {percentile(during, 0.99) / percentile(floor, 0.99):.2f}; the slow provisioning answered"
        f" {reply.status} after {took:.1f} s, {'overlapping the whole phase' if overlapped else 'BEFORE the phase ended'}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--provision-seconds", type=float, default=5.0)
    parser.add_argument(
        "--pace", type=float, nargs="+", default=[0.5, 0.0],
        help="pause of each client between requests; 0 saturates the server (default: 0.5 then 0)",
    )
    args = parser.parse_args()
    print(f"{args.clients} clients, {args.seconds} s per phase, a provisioner taking {args.provision_seconds} s")
    async with vercel() as side:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("sqlite", "postgres"):
                await run(backend, side, args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
