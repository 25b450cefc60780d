"""Fixtures: a superuser connection for looking, and per test a fresh name prefix and a non-superuser admin role
with only CREATEDB and CREATEROLE (what the README asks for). Everything a test made is dropped after it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pg_support import SUPERUSER_URL, with_user

from example_postgres import DatabaseSizeUsage, PostgresProvisioner, PostgresSettings


@pytest.fixture
async def superuser() -> AsyncIterator[asyncpg.Connection]:
    try:
        conn = await asyncpg.connect(SUPERUSER_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at TEST_POSTGRES_URL ({type(exc).__name__}: {exc})")
    yield conn
    await conn.close()


@pytest.fixture
def prefix() -> str:
    """Unique per test, so tests never see each other's databases (or anyone else's)."""
    return f"t{secrets.token_hex(4)}_"


@pytest.fixture
async def admin_url(superuser: asyncpg.Connection, prefix: str) -> AsyncIterator[str]:
    """A DSN of a new CREATEDB/CREATEROLE role; afterwards every database and role of `prefix` is dropped."""
    name, password = f"xadm_{prefix}", secrets.token_urlsafe(16)
    await superuser.execute(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
    try:
        yield with_user(SUPERUSER_URL, name, password)
    finally:
        for row in await superuser.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix):
            await superuser.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        for row in await superuser.fetch("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", prefix):
            await superuser.execute(f'DROP ROLE IF EXISTS "{row["rolname"]}"')
        await superuser.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await superuser.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def settings(admin_url: str, prefix: str) -> PostgresSettings:
    return PostgresSettings.from_env(
        {
            "EXAMPLE_POSTGRES_ADMIN_URL": admin_url,
            "EXAMPLE_POSTGRES_PREFIX": prefix,
            "EXAMPLE_POSTGRES_MAX_DATABASES": "3",
        }
    )


@pytest.fixture
async def provisioner(settings: PostgresSettings) -> AsyncIterator[PostgresProvisioner]:
    async with PostgresProvisioner(settings=settings) as opened:
        yield opened


@pytest.fixture
async def usage_source(settings: PostgresSettings) -> AsyncIterator[DatabaseSizeUsage]:
    async with DatabaseSizeUsage(settings=settings) as opened:
        yield opened
