"""PostgreSQL storage through an asyncpg pool: one connection and at most one transaction per unit of work.

Semantics match the memory adapter (adapters/storage/memory.py), checked by tests/contract/. Concurrency
comes from the database: `INSERT ... ON CONFLICT` for upserts and first-writer-wins inserts, and
transaction-scoped advisory locks where a read must wait for another transaction's write (idempotency
keys, balances, an installation's webhook events) or where workers must not take the same outbox rows. Access tokens, resource secrets,
stored replies and sensitive outbox messages are sealed with the cipher; a lost or refused connection
surfaces as `Unavailable` (HTTP 503), and the pool reconnects by itself later.

The transaction begins with the first statement that is not a plain read (`select*` below): a unit of work that
only reads sends its SELECTs and nothing else (no BEGIN, ROLLBACK or reset query), one round trip each. Under READ
COMMITTED a statement sees the same data in a transaction or out of one, and a plain SELECT takes no lock.
asyncpg prepares each query once per connection and keeps it (statement cache): a repeated read is one
Bind/Execute exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import asyncpg
import msgspec

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.rows import CLAIM_COLUMNS, INSTALLATION_COLUMNS, RESOURCE_COLUMNS, SEALED, RowCodec, aad
from marketplace_provider.adapters.storage.rows import LAST_ERROR_MAX, OUTBOX_COLUMNS, OUTBOX_INSERT_COLUMNS, leasable, new_outbox_id
from marketplace_provider.adapters.storage.rows import INVOICE_COLUMNS, SESSION_COLUMNS, TRANSITION_COLUMNS, WEBHOOK_EVENT_COLUMNS
from marketplace_provider.adapters.storage.rows import key_ids_in_use, open_reply, seal_reply
from marketplace_provider.domain.errors import Conflict, Invalid, Unavailable
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.outbox import OutboxCounts, OutboxEntry, OutboxMessage
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Reply

PING_TIMEOUT_SECONDS = 5.0
BALANCES_LOCK_CLASS = 0x6D71  # two-int advisory keys (class, hashtext(installation id)); see migrations.py
OUTBOX_LOCK_CLASS = 0x6D72
WEBHOOKS_LOCK_CLASS = 0x6D73

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, e.g. ConnectionDoesNotExistError
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now, ...
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,  # connection closed, pool closing
    # the server's "terminating connection" notice seen before the socket closes: the protocol is stuck
    asyncpg.exceptions.InternalClientError,
)
UNSTORABLE_TEXT = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)
_NOT_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,  # a bad query argument: our bug, not an outage
    asyncpg.exceptions.ClientConfigurationError,
)


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, _NOT_CONNECTION_ERRORS)


@contextlib.contextmanager
def _unavailable_on_connection_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_connection_error(exc):
            raise Unavailable("storage unavailable") from exc
        if isinstance(exc, UNSTORABLE_TEXT):  # e.g. a NUL byte, which PostgreSQL text cannot hold
            raise Invalid("the input holds characters that cannot be stored") from None
        raise


def _json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset, in place of asyncpg's reset query (one more round trip per unit of work): our units of
    work leave nothing on a connection but a transaction, which asyncpg rolls back itself before calling this. No
    session setting, session-level lock, cursor or LISTEN is ever used on these connections."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python values; Structs and enums encode through msgspec
    await conn.set_type_codec("jsonb", encoder=_json_text, decoder=msgspec.json.decode, schema="pg_catalog")


def _params(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


def _upsert(table: str, columns: tuple[str, ...], key: str = "id") -> str:
    values = _params(len(columns))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"


# Rows <-> domain (adapters/storage/rows.py): values pass as they are (timestamptz natively, jsonb through
# the codec _init_connection sets)


_rows = RowCodec()


# Repositories


class _Installations:
    _select = f"SELECT {', '.join(INSTALLATION_COLUMNS)} FROM installations WHERE id = $1"
    _save = _upsert("installations", INSTALLATION_COLUMNS)
    # byte order ("C"), as SQLite and Python order ids, whatever the database's collation
    _page = (
        f"SELECT {', '.join(INSTALLATION_COLUMNS)} FROM installations WHERE lifecycle = $1 "
        'AND ($2::text IS NULL OR id COLLATE "C" > $2) ORDER BY id COLLATE "C" LIMIT $3'
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str) -> Installation | None:
        row = await self.uow.select_row(self._select, installation_id)
        return None if row is None else _rows.installation(row, self.uow.cipher)

    async def save(self, installation: Installation) -> None:
        await self.uow.execute(self._save, *_rows.installation_row(installation, self.uow.cipher))

    async def page(self, lifecycle: Lifecycle, after: str | None, limit: int) -> list[Installation]:
        rows = await self.uow.select(self._page, lifecycle.value, after, limit)
        return [_rows.installation(row, self.uow.cipher) for row in rows]


class _Resources:
    _columns = ", ".join(RESOURCE_COLUMNS)
    _select = f"SELECT {_columns} FROM resources WHERE id = $1 AND installation_id = $2"
    _live = f"SELECT {_columns} FROM resources WHERE installation_id = $1 AND status <> 'uninstalled'"
    _all = f"SELECT {_columns} FROM resources WHERE installation_id = $1"
    _order = " ORDER BY created_at, id"
    _add = (
        f"INSERT INTO resources ({_columns}) VALUES ({_params(len(RESOURCE_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    _save = _upsert("resources", RESOURCE_COLUMNS)

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        row = await self.uow.select_row(self._select, resource_id, installation_id)
        return None if row is None else _rows.resource(row, self.uow.cipher)

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        if ids is None:
            rows = await self.uow.select(self._live + self._order, installation_id)
        else:
            rows = await self.uow.select(self._live + " AND id = ANY($2::text[])" + self._order, installation_id, ids)
        return [_rows.resource(row, self.uow.cipher) for row in rows]

    async def list_all(self, installation_id: str) -> list[Resource]:
        rows = await self.uow.select(self._all + self._order, installation_id)
        return [_rows.resource(row, self.uow.cipher) for row in rows]

    async def add(self, resource: Resource) -> None:
        # DO NOTHING waits for a concurrent insert of the id to finish and keeps this transaction usable
        if await self.uow.fetchval(self._add, *_rows.resource_row(resource, self.uow.cipher)) is None:
            raise Conflict(f"resource {resource.id} exists")

    async def save(self, resource: Resource) -> None:
        await self.uow.execute(self._save, *_rows.resource_row(resource, self.uow.cipher))


class _Replies:
    # Postgres text cannot hold chr(0): a length prefix keeps (installation, key) pairs apart instead.
    _lock = "SELECT pg_advisory_xact_lock(hashtextextended(length($1)::text || ':' || $1 || $2, 0))"
    _select = (
        "SELECT fingerprint, result_sealed, result_key_id FROM replies WHERE installation_id = $1 AND key = $2"
    )
    _save = (
        "INSERT INTO replies (installation_id, key, fingerprint, result_sealed, result_key_id) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (installation_id, key) DO UPDATE SET "
        "fingerprint = EXCLUDED.fingerprint, result_sealed = EXCLUDED.result_sealed, "
        "result_key_id = EXCLUDED.result_key_id, created_at = now()"
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def lookup(self, installation_id: str, key: str, result_type: type) -> Reply | None:
        # The lock is its own statement: a READ COMMITTED statement reads from a snapshot taken when it
        # starts, so the read must start after the wait to see the other transaction's reply.
        await self.uow.execute(self._lock, installation_id, key)
        row = await self.uow.fetchrow(self._select, installation_id, key)
        if row is None:
            return None
        result = open_reply(
            self.uow.cipher, installation_id, key, row["result_key_id"], row["result_sealed"], result_type
        )
        return Reply(fingerprint=row["fingerprint"], result=result)

    async def save(self, installation_id: str, key: str, reply: Reply) -> None:
        key_id, sealed = seal_reply(self.uow.cipher, installation_id, key, reply.result)
        await self.uow.execute(self._save, installation_id, key, reply.fingerprint, sealed, key_id)


class _Claims:
    _select = f"SELECT {', '.join(CLAIM_COLUMNS)} FROM transfer_claims WHERE id = $1"
    _save = _upsert("transfer_claims", CLAIM_COLUMNS)

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def get(self, claim_id: str) -> TransferClaim | None:
        row = await self.uow.select_row(self._select, claim_id)
        return None if row is None else _rows.claim(row)

    async def save(self, claim: TransferClaim) -> None:
        await self.uow.execute(self._save, *_rows.claim_row(claim))


class _Balances:
    _lock = f"SELECT pg_advisory_xact_lock({BALANCES_LOCK_CLASS}, hashtext($1))"
    _select = "SELECT resource_id, cents FROM balances WHERE installation_id = $1"
    _delete = "DELETE FROM balances WHERE installation_id = $1"
    _insert = (
        "INSERT INTO balances (installation_id, resource_id, cents) "
        "SELECT $1, r, c FROM unnest($2::text[], $3::bigint[]) AS t (r, c)"
    )
    _purchase = (
        "INSERT INTO purchases (invoice_id, installation_id, processed_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (invoice_id) DO NOTHING RETURNING invoice_id"
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def get(self, installation_id: str) -> dict[str | None, int]:
        # Balances are read to be changed: hold them until this unit of work ends, so two purchases
        # crediting one installation at once do not both start from the same amount.
        await self.uow.execute(self._lock, installation_id)
        rows = await self.uow.fetch(self._select, installation_id)
        return {(row["resource_id"] or None): row["cents"] for row in rows}

    async def save(self, installation_id: str, balances: dict[str | None, int]) -> None:
        await self.uow.execute(self._delete, installation_id)
        if balances:
            resource_ids = [resource_id or "" for resource_id in balances]
            await self.uow.execute(self._insert, installation_id, resource_ids, list(balances.values()))

    async def record_purchase(self, installation_id: str, invoice_id: str, at: datetime) -> bool:
        return await self.uow.fetchval(self._purchase, invoice_id, installation_id, at) is not None


class _Outbox:
    _columns = ", ".join(OUTBOX_COLUMNS)
    _add = (
        f"INSERT INTO outbox ({', '.join(OUTBOX_INSERT_COLUMNS)}) "
        f"VALUES ({', '.join(f'${n}' for n in range(1, 9))})"
    )
    # installations whose oldest pending message is due and not leased, by that message's due time
    _heads = (
        "SELECT o.installation_id FROM outbox o WHERE o.state = 'pending' AND o.due_at <= $1 "
        "AND (o.leased_until IS NULL OR o.leased_until <= $1) AND NOT EXISTS (SELECT 1 FROM outbox p "
        "WHERE p.installation_id = o.installation_id AND p.state = 'pending' AND p.seq < o.seq) "
        "ORDER BY o.due_at, o.seq LIMIT $2"
    )
    _lock = f"SELECT pg_try_advisory_xact_lock({OUTBOX_LOCK_CLASS}, hashtext($1))"
    # FOR UPDATE: a row that the previous lease holder marks delivered or failed meanwhile is read as it ends up
    _queue = (
        f"SELECT {_columns}, leased_until FROM outbox WHERE installation_id = $1 AND state = 'pending' "
        "ORDER BY seq LIMIT $2 FOR UPDATE"
    )
    _lease = "UPDATE outbox SET leased_until = $2 WHERE id = ANY($1::text[])"
    _release = "UPDATE outbox SET leased_until = NULL WHERE id = ANY($1::text[]) AND state = 'pending'"
    _delivered = (
        "UPDATE outbox SET state = 'delivered', delivered_at = $2, leased_until = NULL "
        "WHERE id = $1 AND state = 'pending'"
    )
    _failed = (
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, leased_until = NULL, "
        "state = CASE WHEN $3::timestamptz IS NULL THEN 'dead' ELSE state END, due_at = coalesce($3, due_at) "
        "WHERE id = $1 AND state = 'pending'"
    )
    _counts = (
        "SELECT count(*) FILTER (WHERE state = 'pending' AND attempts = 0) AS pending, "
        "count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying, "
        "count(*) FILTER (WHERE state = 'dead') AS dead FROM outbox WHERE state IN ('pending', 'dead')"
    )
    _dead = f"SELECT {_columns} FROM outbox WHERE state = 'dead' ORDER BY seq LIMIT $1"
    # last_error stays: operators still see why it died until the next attempt
    _revive = (
        "WITH revived AS (UPDATE outbox SET state = 'pending', attempts = 0, due_at = $1, leased_until = NULL "
        "WHERE state = 'dead' AND ($2::text[] IS NULL OR id = ANY($2)) RETURNING 1) SELECT count(*) FROM revived"
    )
    _entries = f"SELECT {_columns} FROM outbox WHERE installation_id = $1 ORDER BY seq"

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def add(self, installation_id: str, message: OutboxMessage, at: datetime) -> str:
        entry_id = new_outbox_id()
        await self.uow.execute(self._add, *_rows.outbox_row(entry_id, installation_id, message, at, self.uow.cipher))
        return entry_id

    async def claim(
        self, now: datetime, lease_until: datetime, installations: int, per_installation: int
    ) -> list[OutboxEntry]:
        # Other processes claim at the same time. An installation is taken only under its advisory lock (held
        # until commit), and its rows are re-read after the lock in a statement of their own, which sees a lease
        # that another worker committed meanwhile. Candidates lost to other workers are skipped, hence twice as
        # many candidates as installations wanted.
        if installations <= 0 or per_installation <= 0:
            return []
        claimed: list[OutboxEntry] = []
        taken = 0
        for (installation_id,) in await self.uow.fetch(self._heads, now, 2 * installations):
            if not await self.uow.fetchval(self._lock, installation_id):
                continue  # another worker is claiming it right now
            rows = leasable(await self.uow.fetch(self._queue, installation_id, per_installation), now)
            if not rows:
                continue
            await self.uow.execute(self._lease, [row["id"] for row in rows], lease_until)
            claimed += [_rows.outbox_entry(row, self.uow.cipher) for row in rows]
            taken += 1
            if taken == installations:
                break
        return claimed

    async def release(self, ids: list[str]) -> None:
        await self.uow.execute(self._release, ids)

    async def delivered(self, entry_id: str, at: datetime) -> None:
        await self.uow.execute(self._delivered, entry_id, at)

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        await self.uow.execute(self._failed, entry_id, error[:LAST_ERROR_MAX], retry_at)

    async def counts(self) -> OutboxCounts:
        row = await self.uow.select_row(self._counts)
        assert row is not None
        return OutboxCounts(pending=row["pending"], retrying=row["retrying"], dead=row["dead"])

    async def dead(self, limit: int) -> list[OutboxEntry]:
        rows = await self.uow.select(self._dead, max(limit, 0))
        return [_rows.outbox_entry(row, self.uow.cipher) for row in rows]

    async def revive(self, ids: list[str] | None, at: datetime) -> int:
        return await self.uow.fetchval(self._revive, at, ids)

    async def entries(self, installation_id: str) -> list[OutboxEntry]:
        rows = await self.uow.select(self._entries, installation_id)
        return [_rows.outbox_entry(row, self.uow.cipher) for row in rows]


class _Jobs:
    _has_run = "SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = $1 AND key = $2)"
    # DO NOTHING waits for a concurrent claim of the same run: False once it commits, True if it rolls back
    _claim = (
        "INSERT INTO job_runs (job, key, ran_at) VALUES ($1, $2, $3) ON CONFLICT (job, key) DO NOTHING RETURNING job"
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def has_run(self, job: str, key: str) -> bool:
        return await self.uow.fetchval(self._has_run, job, key)

    async def claim(self, job: str, key: str, at: datetime) -> bool:
        return await self.uow.fetchval(self._claim, job, key, at) is not None


class _Intents:
    # a concurrent begin of the same resource waits for this one's transaction, then sees its row
    _begin = (
        "INSERT INTO provisioning_intents (resource_id, installation_id, started_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (resource_id) DO UPDATE SET installation_id = excluded.installation_id,"
        " started_at = excluded.started_at WHERE provisioning_intents.started_at < $4 RETURNING resource_id"
    )
    _end = "DELETE FROM provisioning_intents WHERE resource_id = $1"

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def begin(self, installation_id: str, resource_id: str, at: datetime, stale_before: datetime) -> bool:
        return await self.uow.fetchval(self._begin, resource_id, installation_id, at, stale_before) is not None

    async def end(self, resource_id: str) -> None:
        await self.uow.execute(self._end, resource_id)


class _Invoices:
    _columns = ", ".join(INVOICE_COLUMNS)
    _select = f"SELECT {_columns} FROM invoices WHERE id = $1"
    _save = _upsert("invoices", INVOICE_COLUMNS)
    _transition = (
        f"INSERT INTO invoice_transitions ({', '.join(TRANSITION_COLUMNS)}) "
        f"VALUES ({_params(len(TRANSITION_COLUMNS))})"
    )
    _list = (
        f"SELECT {_columns} FROM invoices WHERE installation_id = $1 "
        'ORDER BY updated_at DESC, id COLLATE "C" DESC'
    )
    _transitions = f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM invoice_transitions WHERE invoice_id = $1 ORDER BY id"

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def get(self, invoice_id: str) -> Invoice | None:
        row = await self.uow.select_row(self._select, invoice_id)
        return None if row is None else _rows.invoice(row)

    async def save(self, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
        await self.uow.execute(self._save, *_rows.invoice_row(invoice))
        if transition is not None:
            await self.uow.execute(self._transition, *_rows.transition_row(transition))

    async def list_for_installation(self, installation_id: str) -> list[Invoice]:
        return [_rows.invoice(row) for row in await self.uow.select(self._list, installation_id)]

    async def transitions(self, invoice_id: str) -> list[InvoiceTransition]:
        return [_rows.transition(row) for row in await self.uow.select(self._transitions, invoice_id)]


class _WebhookEvents:
    _columns = ", ".join(WEBHOOK_EVENT_COLUMNS)
    # DO NOTHING waits for a concurrent insert of the id: counted as a redelivery once it commits
    _insert = (
        f"INSERT INTO webhook_events ({_columns}) VALUES ({_params(len(WEBHOOK_EVENT_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    _again = "UPDATE webhook_events SET delivery_count = delivery_count + 1, last_received_at = $2 WHERE id = $1"
    _installation = "SELECT coalesce(installation_id, id) FROM webhook_events WHERE id = $1"
    _lock = f"SELECT pg_advisory_xact_lock({WEBHOOKS_LOCK_CLASS}, hashtext($1))"
    _held = f"SELECT {_columns} FROM webhook_events WHERE id = $1 FOR UPDATE"
    _applied = "UPDATE webhook_events SET applied_at = $2, error = $3 WHERE id = $1"
    _unapplied = 'SELECT id FROM webhook_events WHERE applied_at IS NULL ORDER BY created_at, id COLLATE "C" LIMIT $1'
    _list = (
        f"SELECT {_columns} FROM webhook_events WHERE installation_id = $1 "
        'ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $2'
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def record(self, event: StoredEvent) -> bool:
        if await self.uow.fetchval(self._insert, *_rows.webhook_event_row(event)) is not None:
            return True
        await self.uow.execute(self._again, event.id, event.received_at)
        return False

    async def hold(self, event_id: str) -> StoredEvent | None:
        # An event's installation never changes, so it can be read before the lock. The row is read again
        # after the wait, in a statement of its own: it then shows an `applied_at` committed meanwhile.
        key = await self.uow.fetchval(self._installation, event_id)
        if key is None:
            return None
        await self.uow.execute(self._lock, key)
        row = await self.uow.fetchrow(self._held, event_id)
        return None if row is None else _rows.webhook_event(row)

    async def applied(self, event_id: str, at: datetime, error: str | None = None) -> None:
        await self.uow.execute(self._applied, event_id, at, error)

    async def unapplied(self, limit: int) -> list[str]:
        return [row["id"] for row in await self.uow.select(self._unapplied, max(limit, 0))]

    async def list_for_installation(self, installation_id: str, limit: int) -> list[StoredEvent]:
        rows = await self.uow.select(self._list, installation_id, max(limit, 0))
        return [_rows.webhook_event(row) for row in rows]


class _Sessions:
    _columns = ", ".join(SESSION_COLUMNS)
    _add = (
        f"INSERT INTO sso_sessions ({_columns}) VALUES ({_params(len(SESSION_COLUMNS))}) "
        "ON CONFLICT (id_hash) DO NOTHING RETURNING id_hash"
    )
    _select = f"SELECT {_columns} FROM sso_sessions WHERE id_hash = $1"
    # a concurrent revoke is waited for and re-checked (READ COMMITTED): the first revoked_at stays
    _revoke = "UPDATE sso_sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL"
    _revoke_user = (
        "WITH revoked AS (UPDATE sso_sessions SET revoked_at = $3 WHERE installation_id = $1 AND user_id = $2 "
        "AND revoked_at IS NULL RETURNING 1) SELECT count(*) FROM revoked"
    )

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self.uow = uow

    async def add(self, session: Session) -> None:
        if await self.uow.fetchval(self._add, *_rows.session_row(session)) is None:
            raise Conflict("session exists")

    async def get(self, id_hash: bytes) -> Session | None:
        row = await self.uow.select_row(self._select, id_hash)
        return None if row is None else _rows.session(row)

    async def revoke(self, id_hash: bytes, at: datetime) -> None:
        await self.uow.execute(self._revoke, id_hash, at)

    async def revoke_user(self, installation_id: str, user_id: str, at: datetime) -> int:
        return await self.uow.fetchval(self._revoke_user, installation_id, user_id, at)


# Unit of work and storage


class PostgresUnitOfWork:
    def __init__(self, pool: asyncpg.Pool, cipher: SecretCipher, gate: asyncio.Semaphore) -> None:
        self._pool = pool
        self.cipher = cipher
        self._gate = gate
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._tx: asyncpg.transaction.Transaction | None = None
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
        await self._gate.acquire()
        try:
            with _unavailable_on_connection_error():
                self._conn = await self._pool.acquire()
        except BaseException:
            self._gate.release()
            raise
        return self  # the transaction begins with the first statement that needs one

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            tx, self._tx = self._tx, None
            if tx is not None:
                try:
                    await tx.rollback()
                except Exception as error:
                    if not is_connection_error(error):  # a lost connection rolled back by itself
                        raise
        finally:
            await self._release()

    async def commit(self) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            with _unavailable_on_connection_error():
                await tx.commit()

    async def _begin(self) -> None:
        assert self._conn is not None
        tx = self._conn.transaction()  # READ COMMITTED
        with _unavailable_on_connection_error():
            await tx.start()
        self._tx = tx

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._pool.release(conn)
            except Exception as error:  # the pool has dropped that connection; nothing else to undo
                if not is_connection_error(error):
                    raise
            finally:
                self._gate.release()

    async def _connection(self, *, begin: bool = True) -> asyncpg.pool.PoolConnectionProxy:
        if self._conn is None:
            raise RuntimeError("use the unit of work inside `async with`")
        if begin and self._tx is None:  # the first write or lock, or the first after a commit
            await self._begin()
        return self._conn

    async def execute(self, query: str, *args: Any) -> None:
        conn = await self._connection()
        with _unavailable_on_connection_error():
            await conn.execute(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await self._connection()
        with _unavailable_on_connection_error():
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        conn = await self._connection()
        with _unavailable_on_connection_error():
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        conn = await self._connection()
        with _unavailable_on_connection_error():
            return await conn.fetchval(query, *args)

    # Plain reads (no FOR UPDATE, no lock function): they join the transaction once there is one, and never begin it.

    async def select(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await self._connection(begin=False)
        with _unavailable_on_connection_error():
            return await conn.fetch(query, *args)

    async def select_row(self, query: str, *args: Any) -> asyncpg.Record | None:
        conn = await self._connection(begin=False)
        with _unavailable_on_connection_error():
            return await conn.fetchrow(query, *args)


class PostgresStorage:
    def __init__(self, pool: asyncpg.Pool, cipher: SecretCipher) -> None:
        self.pool = pool
        self.cipher = cipher
        # Units of work queue here, first come first served, never on the pool itself: asyncpg hands a released
        # connection to whoever asks next, so a waiting request can be passed over again and again (asyncpg#1247;
        # a p99 of 130 ms against 12 ms at 32 concurrent requests on 10 connections, issue 13).
        self._gate = asyncio.Semaphore(pool.get_max_size())

    @classmethod
    async def open(
        cls, dsn: str, cipher: SecretCipher, min_size: int = 1, max_size: int = 10, *, verify_keys: bool = True
    ) -> Self:
        """A pool on the (already migrated) database; see adapters/storage/migrations.py. With `verify_keys`,
        a missing or wrong key raises CipherError here rather than at the first request."""
        with _unavailable_on_connection_error():
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                reset=_keep_session,
                server_settings={"application_name": "marketplace-provider"},
            )
        storage = cls(pool, cipher)
        if verify_keys:
            try:
                await storage.verify_keys()
            except BaseException:
                await pool.close()
                raise
        return storage

    async def verify_keys(self) -> None:
        """Open one stored secret per key id in use: raises CipherError if a key is missing or wrong."""
        async with self.unit_of_work() as uow:
            for table, key_column, sealed_column, aad_columns in SEALED:
                for (key_id,) in await uow.fetch(key_ids_in_use(table, key_column)):
                    sample = f"SELECT {sealed_column}, {', '.join(aad_columns)} FROM {table} WHERE {key_column} = $1"
                    row = await uow.fetchrow(sample + " LIMIT 1", key_id)
                    if row is not None:
                        self.cipher.open(key_id, row[sealed_column], aad(table, *(row[c] for c in aad_columns)))

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.cipher, self._gate)

    async def ping(self) -> None:
        with _unavailable_on_connection_error():
            async with self.pool.acquire(timeout=PING_TIMEOUT_SECONDS) as conn:
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS)

    async def close(self) -> None:
        await self.pool.close()

    def __repr__(self) -> str:
        return f"PostgresStorage(cipher={self.cipher!r})"
