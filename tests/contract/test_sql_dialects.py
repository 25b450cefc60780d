"""The SQL written once for both databases (adapters/storage/sql_repositories.py, sql_queues.py): every statement,
in each dialect, compiles on its database, reached by a contract test or not; SQLite's hold nothing of
PostgreSQL's syntax; and a backend builds them once, not per unit of work."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from marketplace_provider.adapters.storage.dialects import POSTGRES, SQLITE, Dialect
from marketplace_provider.adapters.storage.migrations import migrate_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sql_unit_of_work import Statements
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.ports.storage import Storage

REPOSITORIES = (
    "installations", "resources", "replies", "claims", "balances", "outbox", "jobs", "intents", "invoices",
    "webhook_events", "sessions",
)  # fmt: skip


def statements(dialect: Dialect) -> Iterator[tuple[str, str]]:
    """(repository.name, statement) for every statement of every repository."""
    built = Statements(dialect)
    for repository in REPOSITORIES:
        for name, value in vars(getattr(built, repository)).items():
            if isinstance(value, str):
                yield f"{repository}.{name}", value


def test_every_repository_has_its_statements() -> None:
    names = {name.split(".")[0] for name, _ in statements(SQLITE)}
    assert names == set(REPOSITORIES)
    assert len(list(statements(POSTGRES))) == len(list(statements(SQLITE))) + 4  # the locks: none on SQLite


def test_sqlite_statements_hold_nothing_of_postgresql() -> None:
    postgres_only = re.compile(r"\$\d|::|COLLATE \"C\"|FOR UPDATE|pg_|hashtext|ANY\(|unnest\(|now\(\)", re.IGNORECASE)
    leaks = {name: found.group() for name, sql in statements(SQLITE) if (found := postgres_only.search(sql))}
    assert leaks == {}


async def test_every_sqlite_statement_compiles(tmp_path: Path) -> None:
    path = tmp_path / "compile.db"
    await migrate_sqlite(path)
    conn = sqlite3.connect(path)
    try:
        for name, sql in statements(SQLITE):
            count = max((int(n) for n in re.findall(r"\?(\d+)", sql)), default=0)
            try:
                conn.execute(f"EXPLAIN {sql}", [None] * count)  # compiled, not run
            except sqlite3.Error as error:
                pytest.fail(f"{name}: {error}: {sql}")
    finally:
        conn.close()


async def test_every_postgres_statement_compiles(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for name, sql in statements(POSTGRES):
            try:
                await conn.prepare(sql)  # parsed, typed and planned, not run
            except asyncpg.PostgresError as error:
                pytest.fail(f"{name}: {error}: {sql}")
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_statements_are_built_once_per_backend(
    backend: str, sqlite_storage: SqliteStorage, postgres_storage: PostgresStorage
) -> None:
    storage: Storage = sqlite_storage if backend == "sqlite" else postgres_storage
    first, second = storage.unit_of_work(), storage.unit_of_work()
    for repository in REPOSITORIES:
        assert getattr(first, repository).sql is getattr(second, repository).sql, repository
