"""SQLite storage, the embedded default: one file, one connection, one unit of work at a time.

Semantics match the memory adapter (adapters/storage/memory.py), checked by tests/contract/. The repositories
and their SQL are shared with PostgreSQL (adapters/storage/sql_repositories.py, in SQLite's dialect:
adapters/storage/dialects.py); this module runs them. Every unit of work is a `BEGIN IMMEDIATE` transaction on
the process's single connection, taken under an asyncio lock, so writes serialize inside the process; other
processes on the same file (a worker) wait for the file lock up to the busy timeout. The file is in WAL mode
with foreign keys on; aiosqlite keeps the blocking calls on its own thread. Access tokens, resource secrets,
stored replies and sensitive outbox messages are sealed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from types import TracebackType
from typing import Any, Self

import aiosqlite

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.dialects import SQLITE
from marketplace_provider.adapters.storage.sql_unit_of_work import SqlRepositories, Statements, verify_stored_keys
from marketplace_provider.domain.errors import Unavailable

BUSY_TIMEOUT_MS = 10_000
# OperationalErrors that mean "the file cannot be used right now", not a bug in a statement
_UNAVAILABLE = (
    "database is locked", "database is busy", "disk i/o error", "unable to open", "database or disk is full",
)  # fmt: skip

_SQL = Statements(SQLITE)


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


class SqliteUnitOfWork(SqlRepositories):
    def __init__(self, storage: SqliteStorage) -> None:
        super().__init__(self, _SQL, storage.cipher)  # this unit of work runs the repositories' statements
        self._storage = storage
        self._held = False  # the storage lock
        self._open = False  # a transaction is running

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

    # The executor (sql_repositories.Executor). One writer at a time: every statement runs in the transaction that
    # the unit of work began with, plain reads included.

    async def execute(self, query: str, *args: Any) -> int:
        db = await self._db()
        with _mapped:
            cursor = await db.execute(query, args)
            changed = cursor.rowcount
            await cursor.close()
        return changed

    async def fetch(self, query: str, *args: Any) -> list[sqlite3.Row]:
        db = await self._db()
        with _mapped:
            return list(await db.execute_fetchall(query, args))

    async def fetchrow(self, query: str, *args: Any) -> sqlite3.Row | None:
        db = await self._db()
        with _mapped:
            rows = await db.execute_fetchall(query, args)
        return next(iter(rows), None)

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    select = fetch
    select_row = fetchrow


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
            await verify_stored_keys(uow, _SQL, self.cipher)

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
