"""The admin connection pool both plug-ins share the code of, and the one place server failures become 503s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from example_postgres.settings import ADMIN_URL, PostgresSettings
from marketplace_provider.config.settings import ConfigError
from marketplace_provider.domain.errors import DomainError, Unavailable

log = logging.getLogger("example_postgres")

MIN_SERVER_VERSION = 130000  # DROP DATABASE ... WITH (FORCE)
# A refused statement, a lost or broken connection, a timeout: all mean "not now" to the caller.
SERVER_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


class AdminServer:
    """An asyncpg pool on `EXAMPLE_POSTGRES_ADMIN_URL`, opened by `open()` and closed by `close()`."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Connect and check the admin role once, so a wrong DSN or role stops start-up with one line."""
        try:
            pool = await asyncpg.create_pool(self.settings.admin_url, min_size=0, max_size=4, command_timeout=60)
        except SERVER_FAILURES as exc:
            raise ConfigError(f"{ADMIN_URL}: cannot connect to the database server ({describe(exc)})") from None
        try:
            async with pool.acquire() as conn:
                version = await conn.fetchval("SELECT current_setting('server_version_num')::int")
                role = await conn.fetchrow(
                    "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                )
        except SERVER_FAILURES as exc:
            await pool.close()
            raise ConfigError(f"{ADMIN_URL}: cannot connect to the database server ({describe(exc)})") from None
        problem = None
        if version < MIN_SERVER_VERSION:
            problem = "the server must be PostgreSQL 13 or later"
        elif not (role["rolsuper"] or (role["rolcreatedb"] and role["rolcreaterole"])):
            problem = f"role {role['rolname']!r} needs the CREATEDB and CREATEROLE attributes"
        if problem is not None:
            await pool.close()
            raise ConfigError(f"{ADMIN_URL}: {problem}")
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled admin connection, outside any transaction (CREATE DATABASE needs that).

        A server failure inside the block becomes Unavailable (503, "try again later"); the domain errors the
        block raises pass through.
        """
        if self._pool is None:
            raise RuntimeError("the plug-in was not opened: use it with `async with`")
        try:
            async with self._pool.acquire(timeout=30) as conn:
                yield conn
        except DomainError:
            raise
        except SERVER_FAILURES as exc:
            log.warning("PostgreSQL server failure: %s", describe(exc))
            raise Unavailable("the database server did not answer as expected; try again later") from exc

    @asynccontextmanager
    async def lock(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """Serialize provisioning of this prefix across processes: the quota check and the creation it guards."""
        key = f"example_postgres:{self.settings.prefix}"
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", key)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)


def describe(exc: BaseException) -> str:
    """The error's kind and the server's message: neither repeats a statement, so no password or verifier."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
