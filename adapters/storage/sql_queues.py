"""The repositories of work recorded to be done (the outbox of calls owed to Vercel, the inbox of webhook events,
the runs of scheduled jobs, provisioning under way), written once for PostgreSQL and SQLite: as in
sql_repositories.py, each holds its statements, built once per backend from a dialect (dialects.py).

Where units of work run side by side (PostgreSQL), transaction-scoped advisory locks keep two workers off the
same outbox rows and apply one installation's webhook events one at a time; SQLite runs one unit of work at a
time, each a write transaction from its start, and needs none.
"""

from __future__ import annotations

from datetime import datetime

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.dialects import Dialect
from marketplace_provider.adapters.storage.rows import (
    LAST_ERROR_MAX,
    OUTBOX_COLUMNS,
    OUTBOX_INSERT_COLUMNS,
    WEBHOOK_EVENT_COLUMNS,
    RowCodec,
    leasable,
    new_outbox_id,
)
from marketplace_provider.adapters.storage.sql_repositories import Executor, insert
from marketplace_provider.domain.outbox import OutboxCounts, OutboxEntry, OutboxMessage
from marketplace_provider.domain.webhooks import StoredEvent

# PostgreSQL advisory lock key spaces (class, hashtext(installation id)); see migrations.py for the others
OUTBOX_LOCK_CLASS = 0x6D72
WEBHOOKS_LOCK_CLASS = 0x6D73


class Outbox:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            columns = ", ".join(OUTBOX_COLUMNS)
            self.add = d.sql(insert("outbox", OUTBOX_INSERT_COLUMNS))
            # installations whose oldest pending message is due and not leased, by that message's due time
            self.heads = d.sql(
                "SELECT o.installation_id FROM outbox o WHERE o.state = 'pending' AND o.due_at <= $1 "
                "AND (o.leased_until IS NULL OR o.leased_until <= $1) AND NOT EXISTS (SELECT 1 FROM outbox p "
                "WHERE p.installation_id = o.installation_id AND p.state = 'pending' AND p.seq < o.seq) "
                "ORDER BY o.due_at, o.seq LIMIT $2"
            )
            self.lock = d.try_lock("$1", OUTBOX_LOCK_CLASS)
            # FOR UPDATE: a row that the previous lease holder marks delivered or failed meanwhile is read as it ends up
            self.queue = d.sql(
                f"SELECT {columns}, leased_until FROM outbox WHERE installation_id = $1 AND state = 'pending' "
                f"ORDER BY seq LIMIT $2{d.for_update}"
            )
            self.lease = d.sql(f"UPDATE outbox SET leased_until = $2 WHERE {d.in_array('id', '$1')}")
            self.release = d.sql(
                f"UPDATE outbox SET leased_until = NULL WHERE {d.in_array('id', '$1')} AND state = 'pending'"
            )
            self.delivered = d.sql(
                "UPDATE outbox SET state = 'delivered', delivered_at = $2, leased_until = NULL "
                "WHERE id = $1 AND state = 'pending'"
            )
            self.failed = d.sql(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, leased_until = NULL, state = CASE WHEN "
                f"CAST($3 AS {d.time_type}) IS NULL THEN 'dead' ELSE state END, due_at = coalesce($3, due_at) "
                "WHERE id = $1 AND state = 'pending'"
            )
            self.counts = d.sql(
                "SELECT count(*) FILTER (WHERE state = 'pending' AND attempts = 0) AS pending, "
                "count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying, "
                "count(*) FILTER (WHERE state = 'dead') AS dead FROM outbox WHERE state IN ('pending', 'dead')"
            )
            self.dead = d.sql(f"SELECT {columns} FROM outbox WHERE state = 'dead' ORDER BY seq LIMIT $1")
            # last_error stays: operators still see why it died until the next attempt
            revive = (
                "UPDATE outbox SET state = 'pending', attempts = 0, due_at = $1, leased_until = NULL "
                "WHERE state = 'dead'"
            )
            self.revive = d.sql(revive)
            self.revive_of = d.sql(f"{revive} AND {d.in_array('id', '$2')}")
            self.entries = d.sql(f"SELECT {columns} FROM outbox WHERE installation_id = $1 ORDER BY seq")
            self.array, self.time = d.array, d.time

    __slots__ = ("cipher", "db", "rows", "sql")

    def __init__(self, db: Executor, sql: Outbox.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows, self.cipher = db, sql, rows, cipher

    async def add(self, installation_id: str, message: OutboxMessage, at: datetime) -> str:
        entry_id = new_outbox_id()
        await self.db.execute(self.sql.add, *self.rows.outbox_row(entry_id, installation_id, message, at, self.cipher))
        return entry_id

    async def claim(
        self, now: datetime, lease_until: datetime, installations: int, per_installation: int
    ) -> list[OutboxEntry]:
        # Other processes may claim at the same time. Where units of work run side by side (PostgreSQL), an
        # installation is taken only under its lock (held until commit), and its rows are re-read after the lock
        # in a statement of their own, which sees a lease that another worker committed meanwhile. Candidates lost
        # to other workers are skipped, hence twice as many candidates as installations wanted.
        if installations <= 0 or per_installation <= 0:
            return []
        at = self.sql.time(now)
        claimed: list[OutboxEntry] = []
        taken = 0
        for (installation_id,) in await self.db.fetch(self.sql.heads, at, 2 * installations):
            if self.sql.lock is not None and not await self.db.fetchval(self.sql.lock, installation_id):
                continue  # another worker is claiming it right now
            rows = leasable(await self.db.fetch(self.sql.queue, installation_id, per_installation), at)
            if not rows:
                continue
            ids = self.sql.array([row["id"] for row in rows])
            await self.db.execute(self.sql.lease, ids, self.sql.time(lease_until))
            claimed += [self.rows.outbox_entry(row, self.cipher) for row in rows]
            taken += 1
            if taken == installations:
                break
        return claimed

    async def release(self, ids: list[str]) -> None:
        await self.db.execute(self.sql.release, self.sql.array(ids))

    async def delivered(self, entry_id: str, at: datetime) -> None:
        await self.db.execute(self.sql.delivered, entry_id, self.sql.time(at))

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        await self.db.execute(self.sql.failed, entry_id, error[:LAST_ERROR_MAX], self.sql.time(retry_at))

    async def counts(self) -> OutboxCounts:
        row = await self.db.select_row(self.sql.counts)
        assert row is not None
        return OutboxCounts(pending=row["pending"], retrying=row["retrying"], dead=row["dead"])

    async def dead(self, limit: int) -> list[OutboxEntry]:
        rows = await self.db.select(self.sql.dead, max(limit, 0))
        return [self.rows.outbox_entry(row, self.cipher) for row in rows]

    async def revive(self, ids: list[str] | None, at: datetime) -> int:
        if ids is None:
            return await self.db.execute(self.sql.revive, self.sql.time(at))
        return await self.db.execute(self.sql.revive_of, self.sql.time(at), self.sql.array(ids))

    async def entries(self, installation_id: str) -> list[OutboxEntry]:
        rows = await self.db.select(self.sql.entries, installation_id)
        return [self.rows.outbox_entry(row, self.cipher) for row in rows]


class Jobs:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            self.has_run = d.sql("SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = $1 AND key = $2)")
            # on PostgreSQL, a concurrent claim of the same run is waited for: False once it commits, True if it
            # rolls back
            self.claim = d.sql(insert("job_runs", ("job", "key", "ran_at"), conflict="job, key"))
            self.time = d.time

    __slots__ = ("db", "sql")

    def __init__(self, db: Executor, sql: Jobs.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql = db, sql

    async def has_run(self, job: str, key: str) -> bool:
        return bool(await self.db.fetchval(self.sql.has_run, job, key))

    async def claim(self, job: str, key: str, at: datetime) -> bool:
        return await self.db.execute(self.sql.claim, job, key, self.sql.time(at)) == 1


class Intents:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            # on PostgreSQL, a concurrent begin of the same resource waits for this one's transaction, then sees its row
            self.begin = d.sql(
                "INSERT INTO provisioning_intents (resource_id, installation_id, started_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (resource_id) DO UPDATE SET installation_id = excluded.installation_id,"
                " started_at = excluded.started_at WHERE provisioning_intents.started_at < $4"
            )
            self.end = d.sql("DELETE FROM provisioning_intents WHERE resource_id = $1")
            self.time = d.time

    __slots__ = ("db", "sql")

    def __init__(self, db: Executor, sql: Intents.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql = db, sql

    async def begin(self, installation_id: str, resource_id: str, at: datetime, stale_before: datetime) -> bool:
        time = self.sql.time
        return await self.db.execute(self.sql.begin, resource_id, installation_id, time(at), time(stale_before)) == 1

    async def end(self, resource_id: str) -> None:
        await self.db.execute(self.sql.end, resource_id)


class WebhookEvents:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            select = f"SELECT {', '.join(WEBHOOK_EVENT_COLUMNS)} FROM webhook_events"
            # on PostgreSQL, a concurrent insert of the id is waited for: counted as a redelivery once it commits
            self.add = d.sql(insert("webhook_events", WEBHOOK_EVENT_COLUMNS, conflict="id"))
            self.again = d.sql(
                "UPDATE webhook_events SET delivery_count = delivery_count + 1, last_received_at = $2 WHERE id = $1"
            )
            self.installation = d.sql("SELECT coalesce(installation_id, id) FROM webhook_events WHERE id = $1")
            self.lock = d.lock("$1", WEBHOOKS_LOCK_CLASS)
            self.held = d.sql(f"{select} WHERE id = $1{d.for_update}")
            self.applied = d.sql("UPDATE webhook_events SET applied_at = $2, error = $3 WHERE id = $1")
            self.unapplied = d.sql(
                "SELECT id FROM webhook_events WHERE applied_at IS NULL "
                f"ORDER BY created_at, {d.bytewise('id')} LIMIT $1"
            )
            self.list = d.sql(
                f"{select} WHERE installation_id = $1 ORDER BY created_at DESC, {d.bytewise('id')} DESC LIMIT $2"
            )
            self.time = d.time

    __slots__ = ("db", "rows", "sql")

    def __init__(self, db: Executor, sql: WebhookEvents.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows = db, sql, rows

    async def record(self, event: StoredEvent) -> bool:
        if await self.db.execute(self.sql.add, *self.rows.webhook_event_row(event)) == 1:
            return True
        await self.db.execute(self.sql.again, event.id, self.sql.time(event.received_at))
        return False

    async def hold(self, event_id: str) -> StoredEvent | None:
        # Where units of work run side by side (PostgreSQL), the installation's lock holds all its events. An
        # event's installation never changes, so it can be read before the lock. The row is read again after the
        # wait, in a statement of its own: it then shows an `applied_at` committed meanwhile.
        if self.sql.lock is not None:
            key = await self.db.fetchval(self.sql.installation, event_id)
            if key is None:
                return None
            await self.db.execute(self.sql.lock, key)
        row = await self.db.fetchrow(self.sql.held, event_id)
        return None if row is None else self.rows.webhook_event(row)

    async def applied(self, event_id: str, at: datetime, error: str | None = None) -> None:
        await self.db.execute(self.sql.applied, event_id, self.sql.time(at), error)

    async def unapplied(self, limit: int) -> list[str]:
        return [row["id"] for row in await self.db.select(self.sql.unapplied, max(limit, 0))]

    async def list_for_installation(self, installation_id: str, limit: int) -> list[StoredEvent]:
        rows = await self.db.select(self.sql.list, installation_id, max(limit, 0))
        return [self.rows.webhook_event(row) for row in rows]
