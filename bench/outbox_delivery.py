"""Outbox delivery throughput on PostgreSQL: 1, 2 and 4 workers (separate pools) against a recording Vercel on
127.0.0.1 that answers each call after a fixed delay (Vercel's own latency). Prints messages per second and the
ratio to one worker; every message must arrive exactly once.

    .venv/bin/python bench/outbox_delivery.py [--installations 50] [--messages 20] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import load_settings
from marketplace_provider.domain.installations import Credentials, Installation, Lifecycle
from marketplace_provider.domain.outbox import AnnounceChange
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.entrypoints.containers import container_for, resolved
from marketplace_provider.ports.storage import Storage
from tests.support.postgres import scratch_database


async def seed(storage: Storage, installations: int, messages: int) -> None:
    now = datetime.now(UTC)
    async with storage.unit_of_work() as uow:
        for i in range(installations):
            installation_id = f"icfg_bench{i:04d}"
            await uow.installations.save(Installation(
                id=installation_id, account=None, scopes=(), accepted_policies={},
                credentials=Credentials(access_token="token", token_type="Bearer"), billing_plan_id=None,
                notification=None, lifecycle=Lifecycle.ACTIVE, created_at=now, updated_at=now,
            ))
            for n in range(messages):
                await uow.outbox.add(installation_id, AnnounceChange(resource_id=f"r{n}"), now)
        await uow.commit()


async def run(workers: int, installations: int, messages: int, fake: FakeVercel) -> float:
    """Each worker is built by the composition root, as a `worker` process builds its own (own pool, own client)."""
    async with scratch_database() as dsn:
        settings = load_settings(
            {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text(), "VERCEL_API_URL": fake.url}
        )
        containers = [container_for(settings) for _ in range(workers)]
        try:
            await seed(await resolved(containers[0].storage()), installations, messages)
            deliveries = [await resolved(container.delivery()) for container in containers]
            fake.accepted.clear()
            started = time.perf_counter()

            async def work(delivery: Delivery) -> None:
                while await delivery.deliver_due():
                    pass

            await asyncio.gather(*(work(d) for d in deliveries))
            elapsed = time.perf_counter() - started
        finally:
            for container in containers:
                await resolved(container.shutdown_resources())
    delivered = [(c.path, c.json["event"]["resourceId"]) for c in fake.accepted]
    assert len(delivered) == len(set(delivered)) == installations * messages, "a message was lost or sent twice"
    return installations * messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--installations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    fake = FakeVercel()
    await fake.start()
    for _ in range(10 * args.installations * args.messages):  # every call waits like a real API would
        fake.delay_next(1, args.latency_ms / 1000)
    try:
        total = args.installations * args.messages
        print(f"{total} messages over {args.installations} installations, Vercel latency {args.latency_ms} ms")
        base = None
        for workers in (1, 2, 4):
            rate = await run(workers, args.installations, args.messages, fake)
            base = base or rate
            print(f"  {workers} worker(s): {rate:8.0f} messages/s   ratio {rate / base:4.2f}")
    finally:
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
