"""PostgreSQL storage through an asyncpg pool: one connection and at most one transaction per unit of work.

Semantics match the memory adapter (adapters/storage/memory.py), checked by tests/contract/. The repositories
and their SQL are shared with SQLite (adapters/storage/sql_repositories.py, in PostgreSQL's dialect:
adapters/storage/dialects.py); this module runs them. Concurrency comes from the database: `INSERT ... ON
CONFLICT` for upserts and first-writer-wins inserts, and transaction-scoped advisory locks where a read must wait
for another transaction's write (idempotency keys, balances, an installation's webhook events) or where workers
must not take the same outbox rows. Access tokens, resource secrets, stored replies and sensitive outbox messages
are sealed with the cipher; a lost or refused connection surfaces as `Unavailable` (HTTP 503), and the pool
reconnects by itself later.

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
from types import TracebackType
from typing import Any, Self

import asyncpg
import msgspec

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.dialects import POSTGRES
from marketplace_provider.adapters.storage.sql_unit_of_work import SqlRepositories, Statements, verify_stored_keys
from marketplace_provider.domain.errors import Invalid, Unavailable

PING_TIMEOUT_SECONDS = 5.0

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

_SQL = Statements(POSTGRES)


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


def _rows_changed(status: str) -> int:
    """The row count of a command status such as "INSERT 0 1" or "UPDATE 3"."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


class PostgresUnitOfWork(SqlRepositories):
    def __init__(self, pool: asyncpg.Pool, cipher: SecretCipher, gate: asyncio.Semaphore) -> None:
        super().__init__(self, _SQL, cipher)  # this unit of work runs the repositories' statements
        self._pool = pool
        self._gate = gate
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._tx: asyncpg.transaction.Transaction | None = None

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

    # The executor (sql_repositories.Executor)

    async def execute(self, query: str, *args: Any) -> int:
        conn = await self._connection()
        with _unavailable_on_connection_error():
            return _rows_changed(await conn.execute(query, *args))

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
            await verify_stored_keys(uow, _SQL, self.cipher)

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
