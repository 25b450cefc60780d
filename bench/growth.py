"""Scenario 8: Get Resource over HTTP (scenario 2) with 1 thousand, 100 thousand and 1 million stored resources on
PostgreSQL. The benchmark's installations get their resources through the Partner API; the rest of the table is
bulk-filled with SQL, spread over 1,000 installations of its own (`fill`, which bench/get_resource.py uses too).
"""

from __future__ import annotations

import time

import asyncpg

from bench.load import Load, measure
from bench.scenarios import get_resource, install
from bench.server import Vercel, backend_server

BULK_INSTALLATIONS = 1000


async def fill(dsn: str, target: int, *, installations: int = BULK_INSTALLATIONS) -> float:
    """Add bulk resources until the table holds `target` rows; seconds it took. Their sealed secrets are copied
    from a resource stored through the adapter, so every row opens with the server's key."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """
            INSERT INTO installations (id, lifecycle, created_at, updated_at)
            SELECT 'icfg_bulk_' || g, 'active', now(), now() FROM generate_series(0, $1::int - 1) AS g
            ON CONFLICT (id) DO NOTHING
            """,
            installations,
        )
        have = await connection.fetchval("SELECT count(*) FROM resources")
        await connection.execute(
            """
            INSERT INTO resources (id, installation_id, product_id, name, metadata, billing_plan_id, status,
                                   secrets_sealed, secrets_key_id, created_at, updated_at)
            SELECT 'res_bulk_' || g, 'icfg_bulk_' || (g % $2), 'acme-kv', 'bulk', '{}', 'free', 'ready',
                   model.secrets_sealed, model.secrets_key_id, now(), now()
            FROM generate_series($1::bigint, $3::bigint - 1) AS g,
                 (SELECT secrets_sealed, secrets_key_id FROM resources ORDER BY created_at LIMIT 1) AS model
            """,
            have,
            installations,
            target,
        )
        await connection.execute("ANALYZE installations")
        await connection.execute("ANALYZE resources")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def measure_growth(side: Vercel, load: Load, sizes: list[int], tenants: int, log_level: str) -> list[dict[str, object]]:
    """One server on one database, grown size by size; Get Resource measured at each size."""
    results = []
    async with backend_server("postgres", side, load.workdir, log_level, name="growth") as (server, store):
        installed = await install(server.url, side.kit, tenants)
        for size in sizes:
            seconds = await fill(store.url, size)
            figures = await measure(load, server.url, server.pid, f"growth-{size}", get_resource(side.kit, installed))
            results.append({"resources": size, "fill_seconds": round(seconds, 1), **figures.to_json()})
    return results
