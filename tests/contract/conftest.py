"""Storage backends for the contract suite: memory, SQLite on a fresh file per test, and PostgreSQL on a
scratch database made for this session (from TEST_POSTGRES_URL, default the local `postgres` database),
migrated once and dropped at the end. Tests use ids of their own, so they never clean up after each other.
The encryption tests, which seal rows with keys of their own, get a scratch database (or file) per test."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.adapters.storage.migrations import migrate_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.ports.storage import Storage
from tests.support.postgres import scratch_database


def new_cipher(key_id: str = "contract") -> SecretCipher:
    return SecretCipher([(key_id, os.urandom(32))])


@pytest.fixture(scope="session")
def cipher() -> SecretCipher:
    return new_cipher()


@pytest.fixture(scope="session")
async def postgres_dsn() -> AsyncIterator[str]:
    async with scratch_database() as dsn:
        yield dsn


@pytest.fixture
async def own_postgres_dsn() -> AsyncIterator[str]:
    """A database of the test's own, dropped afterwards."""
    async with scratch_database() as dsn:
        yield dsn


@pytest.fixture
async def memory_storage() -> AsyncIterator[MemoryStorage]:
    storage = MemoryStorage()
    yield storage
    await storage.close()


@pytest.fixture
async def sqlite_storage(tmp_path: Path, cipher: SecretCipher) -> AsyncIterator[SqliteStorage]:
    path = tmp_path / "contract.db"
    await migrate_sqlite(path)
    storage = await SqliteStorage.open(path, cipher)
    yield storage
    await storage.close()


@pytest.fixture
async def postgres_storage(
    request: pytest.FixtureRequest, postgres_dsn: str, cipher: SecretCipher
) -> AsyncIterator[PostgresStorage]:
    """The session's database; a database of the test's own for modules marked `own_database` (their tests
    read every row of a table: the outbox's claims, the unapplied webhook events)."""
    if request.node.get_closest_marker("own_database"):
        async with scratch_database() as dsn:
            storage = await PostgresStorage.open(dsn, cipher)
            yield storage
            await storage.close()
        return
    storage = await PostgresStorage.open(postgres_dsn, cipher)
    yield storage
    await storage.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue(f"{request.param}_storage")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend the `storage` fixture of this test is."""
    return request.node.callspec.params["storage"]


# Raw access to the SQL backends, for tests that look under the storage port (encryption at rest).


class SqlDatabase:
    name: str

    async def open(self, cipher: SecretCipher, *, verify_keys: bool = True) -> Storage:
        raise NotImplementedError

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """`query` uses `?` placeholders on every backend."""
        raise NotImplementedError

    async def execute(self, query: str, *args: Any) -> None:
        raise NotImplementedError


class SqliteDatabase(SqlDatabase):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self, cipher: SecretCipher, *, verify_keys: bool = True) -> Storage:
        await migrate_sqlite(self.path)
        return await SqliteStorage.open(self.path, cipher, verify_keys=verify_keys)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(query, args)]
        finally:
            conn.close()

    async def execute(self, query: str, *args: Any) -> None:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                conn.execute(query, args)
        finally:
            conn.close()


def _numbered(query: str) -> str:
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", query)


class PostgresDatabase(SqlDatabase):
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def open(self, cipher: SecretCipher, *, verify_keys: bool = True) -> Storage:
        return await PostgresStorage.open(self.dsn, cipher, verify_keys=verify_keys)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return [dict(row) for row in await conn.fetch(_numbered(query), *args)]
        finally:
            await conn.close()

    async def execute(self, query: str, *args: Any) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(_numbered(query), *args)
        finally:
            await conn.close()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> SqlDatabase:
    return SqliteDatabase(tmp_path / "raw.db")


@pytest.fixture
async def postgres_database() -> AsyncIterator[SqlDatabase]:
    # a database per test: these tests seal rows with keys the shared database's readers do not have
    async with scratch_database() as dsn:
        yield PostgresDatabase(dsn)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> SqlDatabase:
    return request.getfixturevalue(f"{request.param}_database")
