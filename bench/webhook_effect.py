"""Scenario 5's second half: how long after the 200 a webhook's effect is in storage.

The server acknowledges an event once it is stored and applies it just after the answer. Here `count` invoice
events are posted (8 at a time), the moment of each acknowledgement is kept, and the store is polled every few
milliseconds for the invoices the events record: acknowledgement -> invoice visible, p50 and p99. Before that,
the backlog the wrk run left (events stored, not yet applied) is timed until it is gone. SQLite and PostgreSQL
only: the memory backend's state lives inside the server process.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import statistics
import time
from collections.abc import Iterable

import aiohttp
import asyncpg

from bench.scenarios import Tenant, invoice_event, signed

POLL_SECONDS = 0.003


class StoreProbe:
    """Read-only queries on the server's store, from outside the server."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def __aenter__(self) -> StoreProbe:
        if self.backend == "postgres":
            self._pg = await asyncpg.connect(self.url)
        else:
            self._sqlite = sqlite3.connect(f"file:{self.url}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()

    async def unapplied(self) -> int:
        return (await self._rows("SELECT count(*) FROM webhook_events WHERE applied_at IS NULL", []))[0][0]

    async def invoices_among(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        if not wanted:
            return set()
        if self._pg is not None:
            return {r[0] for r in await self._pg.fetch("SELECT id FROM invoices WHERE id = ANY($1::text[])", wanted)}
        marks = ",".join("?" * len(wanted))
        return {r[0] for r in await self._rows(f"SELECT id FROM invoices WHERE id IN ({marks})", wanted)}

    async def _rows(self, sql: str, args: list[str]) -> list[tuple]:
        if self._pg is not None:
            return [tuple(r) for r in await self._pg.fetch(sql, *args)]
        assert self._sqlite is not None
        return await asyncio.to_thread(lambda: self._sqlite.execute(sql, args).fetchall())  # type: ignore[union-attr]


async def drain_seconds(probe: StoreProbe, timeout: float = 300) -> tuple[int, float]:
    """Events left unapplied when the load stopped, and how long until none is."""
    started = time.monotonic()
    left = await probe.unapplied()
    while await probe.unapplied() and time.monotonic() - started < timeout:
        await asyncio.sleep(0.05)
    return left, round(time.monotonic() - started, 2)


async def ack_to_effect(url: str, probe: StoreProbe, tenants: list[Tenant], count: int) -> dict[str, float]:
    """Post `count` events, 8 at a time; p50/p99 of acknowledgement -> effect visible, in ms."""
    tag = secrets.token_hex(3)
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    queue = [(tenants[n % len(tenants)], f"inv_effect_{tag}_{n}") for n in range(count)]
    sending = True

    async def sender(session: aiohttp.ClientSession) -> None:
        while queue:
            tenant, invoice_id = queue.pop()
            body = invoice_event(tenant, invoice_id)
            async with session.post(url + "/webhook", data=body, headers=signed(body)) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"webhook refused: {reply.status}")
            acked[invoice_id] = time.monotonic()

    async def poller() -> None:
        while sending or len(seen) < len(acked):
            waiting = [i for i in acked if i not in seen]
            for invoice_id in await probe.invoices_among(waiting):
                seen[invoice_id] = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    watching = asyncio.create_task(poller())
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(8)))
    sending = False
    await asyncio.wait_for(watching, timeout=120)
    delays = sorted((seen[i] - acked[i]) * 1000 for i in acked)
    return {
        "events": count,
        "p50_ms": round(statistics.median(delays), 1),
        "p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 1),
        "max_ms": round(delays[-1], 1),
    }
