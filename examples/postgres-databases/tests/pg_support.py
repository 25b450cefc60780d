"""Helpers of the example's tests: drafts and resources built from the shipped catalog, and looks at the server
made with a superuser connection (never through the code under test)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from example_postgres.scram import scram_verifier
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.ports.provisioner import ResourceDraft

# A superuser DSN; the tests make their own CREATEDB/CREATEROLE admin role from it, as the README asks of you.
SUPERUSER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

CATALOG = load_catalog(Path(__file__).parents[1] / "products.toml")
PRODUCT = CATALOG.products[0]
FREE = CATALOG.plan("postgres-free")
PRO = CATALOG.plan("postgres-pro")
SECRET_NAMES = {"DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

# What asyncpg raises on a connection whose server session was terminated (which one depends on timing).
SESSION_ENDED = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


def draft(resource_id: str, **metadata: object) -> ResourceDraft:
    assert FREE is not None
    return ResourceDraft(
        resource_id=resource_id,
        installation_id="icfg_test",
        product=PRODUCT,
        plan=FREE,
        name=f"db {resource_id}",
        metadata=dict(metadata),
    )


def resource_of(made: ResourceDraft, secrets: tuple[Secret, ...] = ()) -> Resource:
    """The resource the kit would have stored after provisioning `made`."""
    return Resource(
        id=made.resource_id,
        installation_id=made.installation_id,
        product_id=made.product.id,
        name=made.name,
        metadata=made.metadata,
        billing_plan_id=made.plan.id,
        status=ResourceStatus.READY,
        secrets=secrets,
        created_at=NOW,
        updated_at=NOW,
    )


def env_of(secrets: tuple[Secret, ...]) -> dict[str, str]:
    return {s.name: s.value for s in secrets}


def with_user(url: str, user: str, password: str) -> str:
    """The DSN `url` logging in as another user."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{password}@{host}").geturl()


async def leftovers(superuser: asyncpg.Connection, prefix: str) -> tuple[list[str], list[str]]:
    """Databases and roles whose names start with `prefix`."""
    databases = await superuser.fetch(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", prefix
    )
    roles = await superuser.fetch("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", prefix)
    return [r["datname"] for r in databases], [r["rolname"] for r in roles]


async def password_matches(superuser: asyncpg.Connection, role: str, password: str) -> bool:
    """Whether the SCRAM verifier PostgreSQL keeps for `role` is the one of `password` (needs a superuser)."""
    stored = await superuser.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    if stored is None:
        return False
    iterations, _, salt = stored.removeprefix("SCRAM-SHA-256$").partition("$")[0].partition(":")
    return scram_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == stored
