"""SQLite storage, the embedded default: one file, one connection, one unit of work at a time.

Semantics match the memory adapter (adapters/storage/memory.py), checked by tests/contract/. Every unit
of work is a `BEGIN IMMEDIATE` transaction on the process's single connection, taken under an asyncio
lock, so writes serialize inside the process; other processes on the same file (a worker) wait for the
file lock up to the busy timeout. The file is in WAL mode with foreign keys on; aiosqlite keeps the
blocking calls on its own thread. Access tokens, resource secrets, stored replies and sensitive outbox
messages are sealed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiosqlite
import msgspec

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.rows import CLAIM_COLUMNS, INSTALLATION_COLUMNS, RESOURCE_COLUMNS, SEALED, RowCodec, aad
from marketplace_provider.adapters.storage.rows import LAST_ERROR_MAX, OUTBOX_COLUMNS, OUTBOX_INSERT_COLUMNS, leasable, new_outbox_id
from marketplace_provider.adapters.storage.rows import INVOICE_COLUMNS, SESSION_COLUMNS, TRANSITION_COLUMNS, WEBHOOK_EVENT_COLUMNS
from marketplace_provider.adapters.storage.rows import key_ids_in_use, open_reply, seal_reply
from marketplace_provider.domain.errors import Conflict, Unavailable
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.outbox import OutboxCounts, OutboxEntry, OutboxMessage
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Reply

BUSY_TIMEOUT_MS = 10_000
# OperationalErrors that mean "the file cannot be used right now", not a bug in a statement
_UNAVAILABLE = (
    "database is locked", "database is busy", "disk i/o error", "unable to open", "database or disk is full",
)  # fmt: skip


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).lower().startswith(_UNAVAILABLE)
    # aiosqlite, after close(): "Connection closed" / "no active connection"
    return isinstance(exc, ValueError) and str(exc).lower().startswith(("connection closed", "no active connection"))


class _UnavailableOnOutage:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and _is_unavailable(exc):
            raise Unavailable("storage unavailable") from exc


_mapped = _UnavailableOnOutage()


def _time(value: datetime | None) -> str | None:
    """One fixed-width UTC text form, so that text order is time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _json(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _from_json(value: str | None) -> Any:
    return None if value is None else msgspec.json.decode(value)


def _upsert(table: str, columns: tuple[str, ...], key: str = "id") -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


# Rows <-> domain (adapters/storage/rows.py): JSON and times are stored as text


_rows = RowCodec(json=_json, from_json=_from_json, time=_time)


# Repositories


class _Installations:
    _select = f"SELECT {', '.join(INSTALLATION_COLUMNS)} FROM installations WHERE id = ?"
    _save = _upsert("installations", INSTALLATION_COLUMNS)
    _page = (
        f"SELECT {', '.join(INSTALLATION_COLUMNS)} FROM installations "
        "WHERE lifecycle = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
    )

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str) -> Installation | None:
        row = await self.uow.fetchone(self._select, (installation_id,))
        return None if row is None else _rows.installation(row, self.uow.cipher)

    async def save(self, installation: Installation) -> None:
        await self.uow.execute(self._save, _rows.installation_row(installation, self.uow.cipher))

    async def page(self, lifecycle: Lifecycle, after: str | None, limit: int) -> list[Installation]:
        rows = await self.uow.fetchall(self._page, (lifecycle.value, after, limit))
        return [_rows.installation(row, self.uow.cipher) for row in rows]


class _Resources:
    _columns = ", ".join(RESOURCE_COLUMNS)
    _select = f"SELECT {_columns} FROM resources WHERE id = ? AND installation_id = ?"
    _live = f"SELECT {_columns} FROM resources WHERE installation_id = ? AND status <> 'uninstalled'"
    _all = f"SELECT {_columns} FROM resources WHERE installation_id = ?"
    _order = " ORDER BY created_at, id"
    _add = (
        f"INSERT INTO resources ({_columns}) VALUES ({', '.join('?' * len(RESOURCE_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )
    _save = _upsert("resources", RESOURCE_COLUMNS)

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        row = await self.uow.fetchone(self._select, (resource_id, installation_id))
        return None if row is None else _rows.resource(row, self.uow.cipher)

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        if ids is None:
            rows = await self.uow.fetchall(self._live + self._order, (installation_id,))
        elif not ids:
            return []
        else:
            query = f"{self._live} AND id IN ({', '.join('?' * len(ids))}){self._order}"
            rows = await self.uow.fetchall(query, (installation_id, *ids))
        return [_rows.resource(row, self.uow.cipher) for row in rows]

    async def list_all(self, installation_id: str) -> list[Resource]:
        rows = await self.uow.fetchall(self._all + self._order, (installation_id,))
        return [_rows.resource(row, self.uow.cipher) for row in rows]

    async def add(self, resource: Resource) -> None:
        if await self.uow.execute(self._add, _rows.resource_row(resource, self.uow.cipher)) == 0:
            raise Conflict(f"resource {resource.id} exists")

    async def save(self, resource: Resource) -> None:
        await self.uow.execute(self._save, _rows.resource_row(resource, self.uow.cipher))


class _Replies:
    _select = "SELECT fingerprint, result_sealed, result_key_id FROM replies WHERE installation_id = ? AND key = ?"
    _save = (
        "INSERT INTO replies (installation_id, key, fingerprint, result_sealed, result_key_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')) "
        "ON CONFLICT (installation_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
        "result_sealed = excluded.result_sealed, result_key_id = excluded.result_key_id, "
        "created_at = excluded.created_at"
    )

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def lookup(self, installation_id: str, key: str, result_type: type) -> Reply | None:
        # Units of work already run one at a time (BEGIN IMMEDIATE): the key is held until this one ends.
        row = await self.uow.fetchone(self._select, (installation_id, key))
        if row is None:
            return None
        result = open_reply(
            self.uow.cipher, installation_id, key, row["result_key_id"], row["result_sealed"], result_type
        )
        return Reply(fingerprint=row["fingerprint"], result=result)

    async def save(self, installation_id: str, key: str, reply: Reply) -> None:
        key_id, sealed = seal_reply(self.uow.cipher, installation_id, key, reply.result)
        await self.uow.execute(self._save, (installation_id, key, reply.fingerprint, sealed, key_id))


class _Claims:
    _select = f"SELECT {', '.join(CLAIM_COLUMNS)} FROM transfer_claims WHERE id = ?"
    _save = _upsert("transfer_claims", CLAIM_COLUMNS)

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def get(self, claim_id: str) -> TransferClaim | None:
        row = await self.uow.fetchone(self._select, (claim_id,))
        return None if row is None else _rows.claim(row)

    async def save(self, claim: TransferClaim) -> None:
        await self.uow.execute(self._save, _rows.claim_row(claim))


class _Balances:
    _select = "SELECT resource_id, cents FROM balances WHERE installation_id = ?"
    _delete = "DELETE FROM balances WHERE installation_id = ?"
    _insert = "INSERT INTO balances (installation_id, resource_id, cents) VALUES (?, ?, ?)"
    _purchase = (
        "INSERT INTO purchases (invoice_id, installation_id, processed_at) VALUES (?, ?, ?) "
        "ON CONFLICT (invoice_id) DO NOTHING"
    )

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str) -> dict[str | None, int]:
        rows = await self.uow.fetchall(self._select, (installation_id,))
        return {(row["resource_id"] or None): row["cents"] for row in rows}

    async def save(self, installation_id: str, balances: dict[str | None, int]) -> None:
        await self.uow.execute(self._delete, (installation_id,))
        for resource_id, cents in balances.items():
            await self.uow.execute(self._insert, (installation_id, resource_id or "", cents))

    async def record_purchase(self, installation_id: str, invoice_id: str, at: datetime) -> bool:
        return await self.uow.execute(self._purchase, (invoice_id, installation_id, _time(at))) == 1


class _Outbox:
    _columns = ", ".join(OUTBOX_COLUMNS)
    _add = f"INSERT INTO outbox ({', '.join(OUTBOX_INSERT_COLUMNS)}) VALUES ({', '.join('?' * 8)})"
    # installations whose oldest pending message is due and not leased, by that message's due time
    _heads = (
        "SELECT o.installation_id FROM outbox o WHERE o.state = 'pending' AND o.due_at <= ?1 "
        "AND (o.leased_until IS NULL OR o.leased_until <= ?1) AND NOT EXISTS (SELECT 1 FROM outbox p "
        "WHERE p.installation_id = o.installation_id AND p.state = 'pending' AND p.seq < o.seq) "
        "ORDER BY o.due_at, o.seq LIMIT ?2"
    )
    _queue = (
        f"SELECT {_columns}, leased_until FROM outbox WHERE installation_id = ? AND state = 'pending' "
        "ORDER BY seq LIMIT ?"
    )
    _ids = "id IN (SELECT value FROM json_each(?))"  # one parameter however many ids
    _lease = f"UPDATE outbox SET leased_until = ? WHERE {_ids}"
    _release = f"UPDATE outbox SET leased_until = NULL WHERE {_ids} AND state = 'pending'"
    _delivered = (
        "UPDATE outbox SET state = 'delivered', delivered_at = ?, leased_until = NULL "
        "WHERE id = ? AND state = 'pending'"
    )
    _failed = (
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, leased_until = NULL, "
        "state = CASE WHEN ?3 IS NULL THEN 'dead' ELSE state END, due_at = coalesce(?3, due_at) "
        "WHERE id = ?1 AND state = 'pending'"
    )
    _counts = (
        "SELECT count(*) FILTER (WHERE state = 'pending' AND attempts = 0) AS pending, "
        "count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying, "
        "count(*) FILTER (WHERE state = 'dead') AS dead FROM outbox WHERE state IN ('pending', 'dead')"
    )
    _dead = f"SELECT {_columns} FROM outbox WHERE state = 'dead' ORDER BY seq LIMIT ?"
    # last_error stays: operators still see why it died until the next attempt
    _revive = "UPDATE outbox SET state = 'pending', attempts = 0, due_at = ?, leased_until = NULL WHERE state = 'dead'"
    _entries = f"SELECT {_columns} FROM outbox WHERE installation_id = ? ORDER BY seq"

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def add(self, installation_id: str, message: OutboxMessage, at: datetime) -> str:
        entry_id = new_outbox_id()
        await self.uow.execute(self._add, _rows.outbox_row(entry_id, installation_id, message, at, self.uow.cipher))
        return entry_id

    async def claim(
        self, now: datetime, lease_until: datetime, installations: int, per_installation: int
    ) -> list[OutboxEntry]:
        # One writer at a time (BEGIN IMMEDIATE): nobody can lease these rows between the read and the update.
        if installations <= 0 or per_installation <= 0:
            return []
        at = _time(now)
        claimed = []
        for (installation_id,) in await self.uow.fetchall(self._heads, (at, installations)):
            rows = leasable(await self.uow.fetchall(self._queue, (installation_id, per_installation)), at)
            ids = [row["id"] for row in rows]
            await self.uow.execute(self._lease, (_time(lease_until), _json(ids)))
            claimed += [_rows.outbox_entry(row, self.uow.cipher) for row in rows]
        return claimed

    async def release(self, ids: list[str]) -> None:
        await self.uow.execute(self._release, (_json(ids),))

    async def delivered(self, entry_id: str, at: datetime) -> None:
        await self.uow.execute(self._delivered, (_time(at), entry_id))

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        await self.uow.execute(self._failed, (entry_id, error[:LAST_ERROR_MAX], _time(retry_at)))

    async def counts(self) -> OutboxCounts:
        row = await self.uow.fetchone(self._counts, ())
        assert row is not None
        return OutboxCounts(pending=row["pending"], retrying=row["retrying"], dead=row["dead"])

    async def dead(self, limit: int) -> list[OutboxEntry]:
        rows = await self.uow.fetchall(self._dead, (max(limit, 0),))
        return [_rows.outbox_entry(row, self.uow.cipher) for row in rows]

    async def revive(self, ids: list[str] | None, at: datetime) -> int:
        if ids is None:
            return await self.uow.execute(self._revive, (_time(at),))
        return await self.uow.execute(f"{self._revive} AND {self._ids}", (_time(at), _json(ids)))

    async def entries(self, installation_id: str) -> list[OutboxEntry]:
        rows = await self.uow.fetchall(self._entries, (installation_id,))
        return [_rows.outbox_entry(row, self.uow.cipher) for row in rows]


class _Jobs:
    _has_run = "SELECT 1 FROM job_runs WHERE job = ? AND key = ?"
    _claim = "INSERT INTO job_runs (job, key, ran_at) VALUES (?, ?, ?) ON CONFLICT (job, key) DO NOTHING"

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def has_run(self, job: str, key: str) -> bool:
        return await self.uow.fetchone(self._has_run, (job, key)) is not None

    async def claim(self, job: str, key: str, at: datetime) -> bool:
        return await self.uow.execute(self._claim, (job, key, _time(at))) == 1


class _Intents:
    _begin = (
        "INSERT INTO provisioning_intents (resource_id, installation_id, started_at) VALUES (?, ?, ?)"
        " ON CONFLICT (resource_id) DO UPDATE SET installation_id = excluded.installation_id,"
        " started_at = excluded.started_at WHERE provisioning_intents.started_at < ?"
    )
    _end = "DELETE FROM provisioning_intents WHERE resource_id = ?"

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def begin(self, installation_id: str, resource_id: str, at: datetime, stale_before: datetime) -> bool:
        return await self.uow.execute(self._begin, (resource_id, installation_id, _time(at), _time(stale_before))) == 1

    async def end(self, resource_id: str) -> None:
        await self.uow.execute(self._end, (resource_id,))


class _Invoices:
    _columns = ", ".join(INVOICE_COLUMNS)
    _select = f"SELECT {_columns} FROM invoices WHERE id = ?"
    _save = _upsert("invoices", INVOICE_COLUMNS)
    _transition = (
        f"INSERT INTO invoice_transitions ({', '.join(TRANSITION_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(TRANSITION_COLUMNS))})"
    )
    _list = f"SELECT {_columns} FROM invoices WHERE installation_id = ? ORDER BY updated_at DESC, id DESC"
    _transitions = f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM invoice_transitions WHERE invoice_id = ? ORDER BY id"

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def get(self, invoice_id: str) -> Invoice | None:
        row = await self.uow.fetchone(self._select, (invoice_id,))
        return None if row is None else _rows.invoice(row)

    async def save(self, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
        await self.uow.execute(self._save, _rows.invoice_row(invoice))
        if transition is not None:
            await self.uow.execute(self._transition, _rows.transition_row(transition))

    async def list_for_installation(self, installation_id: str) -> list[Invoice]:
        return [_rows.invoice(row) for row in await self.uow.fetchall(self._list, (installation_id,))]

    async def transitions(self, invoice_id: str) -> list[InvoiceTransition]:
        return [_rows.transition(row) for row in await self.uow.fetchall(self._transitions, (invoice_id,))]


class _WebhookEvents:
    _columns = ", ".join(WEBHOOK_EVENT_COLUMNS)
    _insert = (
        f"INSERT INTO webhook_events ({_columns}) VALUES ({', '.join('?' * len(WEBHOOK_EVENT_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )
    _again = "UPDATE webhook_events SET delivery_count = delivery_count + 1, last_received_at = ? WHERE id = ?"
    _select = f"SELECT {_columns} FROM webhook_events WHERE id = ?"
    _applied = "UPDATE webhook_events SET applied_at = ?, error = ? WHERE id = ?"
    _unapplied = "SELECT id FROM webhook_events WHERE applied_at IS NULL ORDER BY created_at, id LIMIT ?"
    _list = (
        f"SELECT {_columns} FROM webhook_events WHERE installation_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
    )

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def record(self, event: StoredEvent) -> bool:
        if await self.uow.execute(self._insert, _rows.webhook_event_row(event)) == 1:
            return True
        await self.uow.execute(self._again, (_time(event.received_at), event.id))
        return False

    async def hold(self, event_id: str) -> StoredEvent | None:
        # Every unit of work is a write transaction from its start (BEGIN IMMEDIATE): nobody else applies
        # events until this one ends.
        row = await self.uow.fetchone(self._select, (event_id,))
        return None if row is None else _rows.webhook_event(row)

    async def applied(self, event_id: str, at: datetime, error: str | None = None) -> None:
        await self.uow.execute(self._applied, (_time(at), error, event_id))

    async def unapplied(self, limit: int) -> list[str]:
        return [row["id"] for row in await self.uow.fetchall(self._unapplied, (max(limit, 0),))]

    async def list_for_installation(self, installation_id: str, limit: int) -> list[StoredEvent]:
        rows = await self.uow.fetchall(self._list, (installation_id, max(limit, 0)))
        return [_rows.webhook_event(row) for row in rows]


class _Sessions:
    _columns = ", ".join(SESSION_COLUMNS)
    _add = (
        f"INSERT INTO sso_sessions ({_columns}) VALUES ({', '.join('?' * len(SESSION_COLUMNS))}) "
        "ON CONFLICT (id_hash) DO NOTHING"
    )
    _select = f"SELECT {_columns} FROM sso_sessions WHERE id_hash = ?"
    _revoke = "UPDATE sso_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL"
    _revoke_user = (
        "UPDATE sso_sessions SET revoked_at = ? WHERE installation_id = ? AND user_id = ? AND revoked_at IS NULL"
    )

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        self.uow = uow

    async def add(self, session: Session) -> None:
        if await self.uow.execute(self._add, _rows.session_row(session)) == 0:
            raise Conflict("session exists")

    async def get(self, id_hash: bytes) -> Session | None:
        row = await self.uow.fetchone(self._select, (id_hash,))
        return None if row is None else _rows.session(row)

    async def revoke(self, id_hash: bytes, at: datetime) -> None:
        await self.uow.execute(self._revoke, (_time(at), id_hash))

    async def revoke_user(self, installation_id: str, user_id: str, at: datetime) -> int:
        return await self.uow.execute(self._revoke_user, (_time(at), installation_id, user_id))


# Unit of work and storage


class SqliteUnitOfWork:
    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage
        self.cipher = storage.cipher
        self._held = False  # the storage lock
        self._open = False  # a transaction is running
        self.installations = _Installations(self)
        self.resources = _Resources(self)
        self.replies = _Replies(self)
        self.claims = _Claims(self)
        self.balances = _Balances(self)
        self.outbox = _Outbox(self)
        self.jobs = _Jobs(self)
        self.intents = _Intents(self)
        self.invoices = _Invoices(self)
        self.webhook_events = _WebhookEvents(self)
        self.sessions = _Sessions(self)

    async def __aenter__(self) -> Self:
        await self._storage.lock.acquire()
        self._held = True
        try:
            await self._begin()
        except BaseException:
            self._storage.lock.release()
            self._held = False
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._open:
                self._open = False
                with _mapped:
                    if self._storage.db.in_transaction:  # not committed, or its COMMIT failed
                        await self._storage.db.execute("ROLLBACK")
        finally:
            self._held = False
            self._storage.lock.release()

    async def commit(self) -> None:
        if self._open:
            with _mapped:
                await self._storage.db.execute("COMMIT")
            self._open = False

    async def _begin(self) -> None:
        with _mapped:
            await self._storage.db.execute("BEGIN IMMEDIATE")
        self._open = True

    async def _db(self) -> aiosqlite.Connection:
        if not self._held:
            raise RuntimeError("use the unit of work inside `async with`")
        if not self._open:  # used again after a commit: a new transaction
            await self._begin()
        return self._storage.db

    async def execute(self, query: str, params: tuple[Any, ...]) -> int:
        """Run a statement; how many rows it changed."""
        db = await self._db()
        with _mapped:
            cursor = await db.execute(query, params)
            changed = cursor.rowcount
            await cursor.close()
        return changed

    async def fetchone(self, query: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        db = await self._db()
        with _mapped:
            rows = await db.execute_fetchall(query, params)
        return next(iter(rows), None)

    async def fetchall(self, query: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        db = await self._db()
        with _mapped:
            return list(await db.execute_fetchall(query, params))


class SqliteStorage:
    def __init__(self, db: aiosqlite.Connection, cipher: SecretCipher, path: str) -> None:
        self.db = db
        self.cipher = cipher
        self.path = path
        self.lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        cipher: SecretCipher,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        *,
        verify_keys: bool = True,
    ) -> Self:
        """Open the (already migrated) file: see adapters/storage/migrations.py. `busy_timeout_ms`: how long
        a unit of work waits for another process's write before answering Unavailable. With `verify_keys`,
        a missing or wrong key raises CipherError here rather than at the first request."""
        path = os.fspath(path)
        with _mapped:
            db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        try:
            db.row_factory = sqlite3.Row
            with _mapped:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = FULL")  # a 2xx survives a power cut, not only a crash
                await db.execute("PRAGMA foreign_keys = ON")
                await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            storage = cls(db, cipher, path)
            if verify_keys:
                await storage.verify_keys()
        except BaseException:
            await db.close()
            raise
        return storage

    async def verify_keys(self) -> None:
        """Open one stored secret per key id in use: raises CipherError if a key is missing or wrong."""
        async with self.unit_of_work() as uow:
            for table, key_column, sealed_column, aad_columns in SEALED:
                for (key_id,) in await uow.fetchall(key_ids_in_use(table, key_column), ()):
                    sample = f"SELECT {sealed_column}, {', '.join(aad_columns)} FROM {table} WHERE {key_column} = ?"
                    row = await uow.fetchone(sample + " LIMIT 1", (key_id,))
                    if row is not None:
                        self.cipher.open(key_id, row[sealed_column], aad(table, *(row[c] for c in aad_columns)))

    def unit_of_work(self) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(self)

    async def ping(self) -> None:
        with _mapped:
            await self.db.execute_fetchall("SELECT 1")

    async def close(self) -> None:
        async with self.lock:  # let the running unit of work finish
            await self.db.close()

    def __repr__(self) -> str:
        return f"SqliteStorage(path={self.path!r}, cipher={self.cipher!r})"
