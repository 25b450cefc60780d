"""Versioned schema migrations for the SQL backends.

Each backend has a folder of numbered scripts (`sql/postgres/0001_initial.sql`, ...), applied in name
order, each once, and recorded in `schema_migrations`. A run is safe to repeat and safe while another
process runs it: PostgreSQL holds an advisory lock for the whole run (each script in its own
transaction); SQLite runs everything in one `BEGIN IMMEDIATE` transaction, which other writers wait for.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from importlib import resources

import asyncpg

# Two-int advisory lock key (classid, objid), a key space apart from the one-bigint keys of the replies
# lock. Classid 0x6D70 is the migrations'; 0x6D71 holds balances (adapters/storage/sql_repositories.py),
# 0x6D72 outbox claims and 0x6D73 an installation's webhook events (sql_queues.py).
MIGRATION_LOCK = (0x6D70, 0)

_VERSION = re.compile(r"\d{4}_[a-z0-9_]+")

_PG_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

_SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'))
)"""

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


def migrations(backend: str) -> list[tuple[str, str]]:
    """(version, script) pairs of one backend ('postgres' or 'sqlite'), in the order they apply."""
    folder = resources.files("marketplace_provider.adapters.storage").joinpath("sql", backend)
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version = entry.name.removesuffix(".sql")
        if not _VERSION.fullmatch(version):
            raise RuntimeError(f"migration file {entry.name} is not named NNNN_name.sql")
        found.append((version, entry.read_text(encoding="utf-8")))
    return sorted(found)


# PostgreSQL


async def migrate_postgres(dsn: str) -> list[str]:
    """Apply what is missing; the versions applied by this call (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1, $2)", *MIGRATION_LOCK)
        await conn.execute(_PG_TABLE)
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        done = []
        for version, script in migrations("postgres"):
            if version in applied:
                continue
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            done.append(version)
        return done
    finally:
        await conn.close()  # also releases the session's advisory lock


async def pending_postgres(dsn: str) -> list[str]:
    """Versions not applied yet (all of them on an empty database)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            applied: set[str] = set()
        else:
            applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    finally:
        await conn.close()
    return [version for version, _ in migrations("postgres") if version not in applied]


# SQLite


async def migrate_sqlite(path: str | os.PathLike[str]) -> list[str]:
    """Apply what is missing to the SQLite file (created if absent); the versions applied by this call."""
    return await asyncio.to_thread(_migrate_sqlite, os.fspath(path))


async def pending_sqlite(path: str | os.PathLike[str]) -> list[str]:
    return await asyncio.to_thread(_pending_sqlite, os.fspath(path))


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked" at once
    instead of waiting out the busy timeout: several processes migrating one new file retry here."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _migrate_sqlite(path: str) -> list[str]:
    if not os.path.exists(path):
        # Owner-only from the start; SQLite gives its -wal and -shm files the same mode as the database.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        _use_wal(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SQLITE_TABLE)
            applied = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
            done = []
            for version, script in migrations("sqlite"):
                if version in applied:
                    continue
                for statement in sqlite_statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                done.append(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return done
    finally:
        conn.close()


def _pending_sqlite(path: str) -> list[str]:
    if not os.path.exists(path):
        return [version for version, _ in migrations("sqlite")]
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")} if exists else set()
    finally:
        conn.close()
    return [version for version, _ in migrations("sqlite") if version not in applied]


def sqlite_statements(script: str) -> list[str]:
    """Split a script into statements with SQLite's own tokenizer (`executescript` would COMMIT first)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = [line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise RuntimeError("a migration script ends with an unfinished statement")
    return statements
