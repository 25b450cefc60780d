"""The repositories of the stored records (installations, resources, idempotency replies, transfer claims,
balances, invoices, SSO sessions), written once for the SQL backends, PostgreSQL and SQLite.

Each repository holds its statements (its `Sql`, which also says how they take lists and times), written with
`$1` placeholders and built once per backend from a dialect (adapters/storage/dialects.py, where everything that
differs between the two is said), and runs them through the backend's unit of work, an `Executor`. The outbox,
webhook inbox, job runs and provisioning intents are in sql_queues.py; sql_unit_of_work.py puts them together for
the backends (postgres.py, sqlite.py), which keep only their connections, transactions and errors. Semantics match
the memory adapter, checked by tests/contract/.

Concurrency: `INSERT ... ON CONFLICT` for upserts and first-writer-wins inserts (on PostgreSQL, DO NOTHING waits
for a concurrent insert of the same key to finish, then counts it, and keeps the transaction usable); where a
read must wait for another unit of work's write, a lock from the dialect. SQLite needs none: its units of work
run one at a time, each a write transaction from its start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.dialects import Dialect
from marketplace_provider.adapters.storage.rows import (
    CLAIM_COLUMNS,
    INSTALLATION_COLUMNS,
    INVOICE_COLUMNS,
    RESOURCE_COLUMNS,
    SESSION_COLUMNS,
    TRANSITION_COLUMNS,
    RowCodec,
    open_reply,
    seal_reply,
)
from marketplace_provider.domain.errors import Conflict
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.ports.storage import Reply

# a PostgreSQL advisory lock key space (class, hashtext(installation id)); the others: sql_queues.py, migrations.py
BALANCES_LOCK_CLASS = 0x6D71


class Executor(Protocol):
    """Runs the statements of one unit of work: the backend's unit of work itself. Rows read by name and by
    position. On PostgreSQL the transaction begins with the first statement that is not a plain read
    (`select*`), so that a unit of work that only reads sends nothing but its SELECTs; on SQLite every
    statement runs in the transaction the unit of work began with."""

    async def execute(self, query: str, *args: Any) -> int:
        """Run a statement; how many rows it inserted, changed or deleted."""
        ...

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        """Rows, in the transaction: a read that takes a lock, or that must see what a lock waited for."""
        ...

    async def fetchrow(self, query: str, *args: Any) -> Any | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row (None without one)."""
        ...

    async def select(self, query: str, *args: Any) -> list[Any]:
        """Rows of a plain read: no lock taken or waited for, so it may run before any transaction begins."""
        ...

    async def select_row(self, query: str, *args: Any) -> Any | None: ...


def upsert(table: str, columns: tuple[str, ...], key: str = "id") -> str:
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"


def insert(table: str, columns: tuple[str, ...], conflict: str | None = None) -> str:
    """INSERT of every column, in order; with `conflict` (the key's columns), a row whose key exists is left as it
    is and the statement changes nothing."""
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
    return statement if conflict is None else f"{statement} ON CONFLICT ({conflict}) DO NOTHING"


# Repositories: each one's statements, then its methods


class Installations:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            columns = ", ".join(INSTALLATION_COLUMNS)
            self.get = d.sql(f"SELECT {columns} FROM installations WHERE id = $1")
            self.save = d.sql(upsert("installations", INSTALLATION_COLUMNS))
            self.page = d.sql(
                f"SELECT {columns} FROM installations WHERE lifecycle = $1 AND (CAST($2 AS text) IS NULL "
                f"OR {d.bytewise('id')} > $2) ORDER BY {d.bytewise('id')} LIMIT $3"
            )

    __slots__ = ("cipher", "db", "rows", "sql")

    def __init__(self, db: Executor, sql: Installations.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows, self.cipher = db, sql, rows, cipher

    async def get(self, installation_id: str) -> Installation | None:
        row = await self.db.select_row(self.sql.get, installation_id)
        return None if row is None else self.rows.installation(row, self.cipher)

    async def save(self, installation: Installation) -> None:
        await self.db.execute(self.sql.save, *self.rows.installation_row(installation, self.cipher))

    async def page(self, lifecycle: Lifecycle, after: str | None, limit: int) -> list[Installation]:
        rows = await self.db.select(self.sql.page, lifecycle.value, after, limit)
        return [self.rows.installation(row, self.cipher) for row in rows]


class Resources:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            select = f"SELECT {', '.join(RESOURCE_COLUMNS)} FROM resources"
            live = f"{select} WHERE installation_id = $1 AND status <> 'uninstalled'"
            order = " ORDER BY created_at, id"
            self.get = d.sql(f"{select} WHERE id = $1 AND installation_id = $2")
            self.live = d.sql(live + order)
            self.live_of = d.sql(f"{live} AND {d.in_array('id', '$2')}{order}")
            self.all = d.sql(f"{select} WHERE installation_id = $1{order}")
            self.add = d.sql(insert("resources", RESOURCE_COLUMNS, conflict="id"))
            self.save = d.sql(upsert("resources", RESOURCE_COLUMNS))
            self.array = d.array

    __slots__ = ("cipher", "db", "rows", "sql")

    def __init__(self, db: Executor, sql: Resources.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows, self.cipher = db, sql, rows, cipher

    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        row = await self.db.select_row(self.sql.get, resource_id, installation_id)
        return None if row is None else self.rows.resource(row, self.cipher)

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        if ids is None:
            rows = await self.db.select(self.sql.live, installation_id)
        elif not ids:
            return []
        else:
            rows = await self.db.select(self.sql.live_of, installation_id, self.sql.array(ids))
        return [self.rows.resource(row, self.cipher) for row in rows]

    async def list_all(self, installation_id: str) -> list[Resource]:
        rows = await self.db.select(self.sql.all, installation_id)
        return [self.rows.resource(row, self.cipher) for row in rows]

    async def add(self, resource: Resource) -> None:
        if await self.db.execute(self.sql.add, *self.rows.resource_row(resource, self.cipher)) == 0:
            raise Conflict(f"resource {resource.id} exists")

    async def save(self, resource: Resource) -> None:
        await self.db.execute(self.sql.save, *self.rows.resource_row(resource, self.cipher))


class Replies:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            # a length prefix keeps (installation, key) pairs apart (PostgreSQL text cannot hold a chr(0) separator)
            self.lock = d.lock("CAST(length($1) AS text) || ':' || $1 || $2")
            self.get = d.sql(
                "SELECT fingerprint, result_sealed, result_key_id FROM replies WHERE installation_id = $1 AND key = $2"
            )
            self.save = d.sql(
                "INSERT INTO replies (installation_id, key, fingerprint, result_sealed, result_key_id, created_at) "
                f"VALUES ($1, $2, $3, $4, $5, {d.now}) ON CONFLICT (installation_id, key) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, result_sealed = excluded.result_sealed, "
                "result_key_id = excluded.result_key_id, created_at = excluded.created_at"
            )

    __slots__ = ("cipher", "db", "sql")

    def __init__(self, db: Executor, sql: Replies.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.cipher = db, sql, cipher

    async def lookup(self, installation_id: str, key: str, result_type: type) -> Reply | None:
        # The key is held until this unit of work ends (on SQLite, by its one writer at a time). The lock is a
        # statement of its own: a READ COMMITTED statement reads from a snapshot taken when it starts, so the read
        # must start after the wait to see the other transaction's reply.
        if self.sql.lock is not None:
            await self.db.execute(self.sql.lock, installation_id, key)
        row = await self.db.fetchrow(self.sql.get, installation_id, key)
        if row is None:
            return None
        result = open_reply(self.cipher, installation_id, key, row["result_key_id"], row["result_sealed"], result_type)
        return Reply(fingerprint=row["fingerprint"], result=result)

    async def save(self, installation_id: str, key: str, reply: Reply) -> None:
        key_id, sealed = seal_reply(self.cipher, installation_id, key, reply.result)
        await self.db.execute(self.sql.save, installation_id, key, reply.fingerprint, sealed, key_id)


class Claims:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            self.get = d.sql(f"SELECT {', '.join(CLAIM_COLUMNS)} FROM transfer_claims WHERE id = $1")
            self.save = d.sql(upsert("transfer_claims", CLAIM_COLUMNS))

    __slots__ = ("db", "rows", "sql")

    def __init__(self, db: Executor, sql: Claims.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows = db, sql, rows

    async def get(self, claim_id: str) -> TransferClaim | None:
        row = await self.db.select_row(self.sql.get, claim_id)
        return None if row is None else self.rows.claim(row)

    async def save(self, claim: TransferClaim) -> None:
        await self.db.execute(self.sql.save, *self.rows.claim_row(claim))


class Balances:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            self.lock = d.lock("$1", BALANCES_LOCK_CLASS)
            self.get = d.sql("SELECT resource_id, cents FROM balances WHERE installation_id = $1")
            self.delete = d.sql("DELETE FROM balances WHERE installation_id = $1")
            self.insert = d.sql(
                "INSERT INTO balances (installation_id, resource_id, cents) SELECT $1, t.resource_id, t.cents "
                f"FROM {d.unnest('t', {'resource_id': ('$2', 'text'), 'cents': ('$3', 'bigint')})}"
            )
            self.purchase = d.sql(insert("purchases", ("invoice_id", "installation_id", "processed_at"), "invoice_id"))
            self.array, self.time = d.array, d.time

    __slots__ = ("db", "sql")

    def __init__(self, db: Executor, sql: Balances.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql = db, sql

    async def get(self, installation_id: str) -> dict[str | None, int]:
        # Balances are read to be changed: hold them until this unit of work ends, so two purchases
        # crediting one installation at once do not both start from the same amount.
        if self.sql.lock is not None:
            await self.db.execute(self.sql.lock, installation_id)
        rows = await self.db.fetch(self.sql.get, installation_id)
        return {(row["resource_id"] or None): row["cents"] for row in rows}

    async def save(self, installation_id: str, balances: dict[str | None, int]) -> None:
        await self.db.execute(self.sql.delete, installation_id)
        if balances:
            resource_ids = [resource_id or "" for resource_id in balances]
            cents = list(balances.values())
            await self.db.execute(self.sql.insert, installation_id, self.sql.array(resource_ids), self.sql.array(cents))

    async def record_purchase(self, installation_id: str, invoice_id: str, at: datetime) -> bool:
        return await self.db.execute(self.sql.purchase, invoice_id, installation_id, self.sql.time(at)) == 1


class Invoices:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            select = f"SELECT {', '.join(INVOICE_COLUMNS)} FROM invoices"
            self.get = d.sql(f"{select} WHERE id = $1")
            self.save = d.sql(upsert("invoices", INVOICE_COLUMNS))
            self.transition = d.sql(insert("invoice_transitions", TRANSITION_COLUMNS))
            self.list = d.sql(f"{select} WHERE installation_id = $1 ORDER BY updated_at DESC, {d.bytewise('id')} DESC")
            self.transitions = d.sql(
                f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM invoice_transitions WHERE invoice_id = $1 ORDER BY id"
            )

    __slots__ = ("db", "rows", "sql")

    def __init__(self, db: Executor, sql: Invoices.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows = db, sql, rows

    async def get(self, invoice_id: str) -> Invoice | None:
        row = await self.db.select_row(self.sql.get, invoice_id)
        return None if row is None else self.rows.invoice(row)

    async def save(self, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
        await self.db.execute(self.sql.save, *self.rows.invoice_row(invoice))
        if transition is not None:
            await self.db.execute(self.sql.transition, *self.rows.transition_row(transition))

    async def list_for_installation(self, installation_id: str) -> list[Invoice]:
        return [self.rows.invoice(row) for row in await self.db.select(self.sql.list, installation_id)]

    async def transitions(self, invoice_id: str) -> list[InvoiceTransition]:
        return [self.rows.transition(row) for row in await self.db.select(self.sql.transitions, invoice_id)]


class Sessions:
    class Sql:
        def __init__(self, d: Dialect) -> None:
            self.add = d.sql(insert("sso_sessions", SESSION_COLUMNS, conflict="id_hash"))
            self.get = d.sql(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sso_sessions WHERE id_hash = $1")
            # on PostgreSQL, a concurrent revoke is waited for and re-checked (READ COMMITTED): the first
            # revoked_at stays
            self.revoke = d.sql("UPDATE sso_sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL")
            self.revoke_user = d.sql(
                "UPDATE sso_sessions SET revoked_at = $3 WHERE installation_id = $1 AND user_id = $2 "
                "AND revoked_at IS NULL"
            )
            self.time = d.time

    __slots__ = ("db", "rows", "sql")

    def __init__(self, db: Executor, sql: Sessions.Sql, rows: RowCodec, cipher: SecretCipher) -> None:
        self.db, self.sql, self.rows = db, sql, rows

    async def add(self, session: Session) -> None:
        if await self.db.execute(self.sql.add, *self.rows.session_row(session)) == 0:
            raise Conflict("session exists")

    async def get(self, id_hash: bytes) -> Session | None:
        row = await self.db.select_row(self.sql.get, id_hash)
        return None if row is None else self.rows.session(row)

    async def revoke(self, id_hash: bytes, at: datetime) -> None:
        await self.db.execute(self.sql.revoke, id_hash, self.sql.time(at))

    async def revoke_user(self, installation_id: str, user_id: str, at: datetime) -> int:
        return await self.db.execute(self.sql.revoke_user, installation_id, user_id, self.sql.time(at))
