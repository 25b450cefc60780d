"""How Get Resource scales with the number of stored resources, on PostgreSQL.

Stores resources through the real adapter, then bulk-fills the table to each size with SQL (bench/growth.py), and times
`resources.get` (one unit of work, as a Partner API call does) for resources spread over the table.
Prints mean latency per size and the ratio to the smallest size: flat means close to 1.0.

    .venv/bin/python bench/get_resource.py [--sizes 1000,100000,1000000] [--reads 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.growth import fill
from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.config.settings import load_settings
from marketplace_provider.domain.installations import Credentials, Installation, Lifecycle
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.entrypoints.containers import container_for, resolved
from tests.support.postgres import scratch_database

INSTALLATIONS = 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    now = datetime.now(UTC)
    async with scratch_database() as dsn:
        # built by the composition root, as `serve` builds it
        container = container_for(
            load_settings({"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()})
        )
        storage = await resolved(container.storage())
        probes: list[tuple[str, str]] = []
        async with storage.unit_of_work() as uow:
            for n in range(INSTALLATIONS):
                iid = f"icfg_bench_{n}"
                await uow.installations.save(
                    Installation(
                        id=iid, account=None, scopes=(), accepted_policies={},
                        credentials=Credentials(access_token="t", token_type="Bearer"), billing_plan_id=None,
                        notification=None, lifecycle=Lifecycle.ACTIVE, created_at=now, updated_at=now,
                    )
                )
                if n % 10 == 0:
                    rid = "res_probe_" + secrets.token_hex(6)
                    await uow.resources.add(
                        Resource(
                            id=rid, installation_id=iid, product_id="acme-kv", name="probe", metadata={},
                            billing_plan_id="free", status=ResourceStatus.READY,
                            secrets=(Secret(name="KEY", value=secrets.token_hex(16)),), created_at=now, updated_at=now,
                        )
                    )
                    probes.append((iid, rid))
            await uow.commit()
        results: list[tuple[int, float]] = []
        for size in sizes:
            filled = await fill(dsn, size)
            timings = []
            for i in range(args.reads):
                iid, rid = probes[i % len(probes)]
                started = time.perf_counter()
                async with storage.unit_of_work() as uow:
                    found = await uow.resources.get(iid, rid)
                timings.append(time.perf_counter() - started)
                assert found is not None
            mean_us = statistics.fmean(timings) * 1e6
            results.append((size, mean_us))
            print(f"{size:>9,} resources  get: mean {mean_us:7.1f} µs  p95 {sorted(timings)[int(len(timings) * 0.95)] * 1e6:7.1f} µs  (filled in {filled:.1f} s)")
        await resolved(container.shutdown_resources())
    base = results[0][1]
    for size, mean_us in results[1:]:
        print(f"ratio {size:,} / {results[0][0]:,}: {mean_us / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
