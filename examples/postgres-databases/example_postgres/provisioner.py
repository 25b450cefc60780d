"""PostgreSQL databases as Marketplace resources: `ports.provisioner.ResourceProvisioner` on a real server.

One resource is one database plus one login role that owns it, on the server of `EXAMPLE_POSTGRES_ADMIN_URL`.
Other roles of the server (other resources included) may not connect to it. Nothing is remembered in this
process: each call finds the names again from the resource (`names.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import asyncpg

from marketplace_provider.domain.errors import Conflict, Invalid, Unprocessable
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, Rotation
from example_postgres import repl
from example_postgres.names import DATABASE_FIELD, Names, names_of, quote_identifier, quote_literal
from example_postgres.scram import new_password, scram_verifier
from example_postgres.server import AdminServer, log
from example_postgres.settings import PostgresSettings

if TYPE_CHECKING:  # the kit's loader module; nothing here needs it at run time
    from marketplace_provider.entrypoints.plugins import PluginContext


class PostgresProvisioner:
    """Creates, rotates and drops one database and role per resource.

    Made by the kit (with its PluginContext or nothing), it reads `EXAMPLE_POSTGRES_*` (settings.py); tests pass
    `settings=`.
    Use it with `async with` (the kit does): that opens and closes the admin connection pool.
    """

    def __init__(self, context: PluginContext | None = None, *, settings: PostgresSettings | None = None) -> None:
        # The kit passes its PluginContext (its settings and catalog) or nothing; this plug-in needs neither.
        self.settings = PostgresSettings.from_env() if settings is None else settings
        self.server = AdminServer(self.settings)

    async def __aenter__(self) -> PostgresProvisioner:
        await self.server.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.close()

    def names(self, resource_id: str, metadata: dict[str, object]) -> Names:
        return names_of(self.settings.prefix, resource_id, metadata)

    # ------------------------------------------------------------------------------------------------ the port

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        """A new database and its owner role, with a new password.

        Idempotent on `draft.resource_id`: a retry finds the role and database of the first attempt, keeps them
        and gives the role a new password (the first answer may never have reached Vercel).
        """
        names = self.names(draft.resource_id, draft.metadata)  # Invalid before anything is touched
        password = new_password()
        async with self.server.connection() as conn, self.server.lock(conn):
            owner = await _database_owner(conn, names.database)
            if owner is not None and owner != names.role:
                raise Conflict(f"a database named {names.database!r} already exists: choose another name")
            if owner is None:
                await self._check_quota(conn)
            try:
                await _set_login(conn, names.role, password)
                if owner is None:
                    await conn.execute(
                        f"CREATE DATABASE {quote_identifier(names.database)} OWNER {quote_identifier(names.role)}"
                    )
                    # New databases let every role connect (PUBLIC): only the owner may here.
                    await conn.execute(f"REVOKE ALL ON DATABASE {quote_identifier(names.database)} FROM PUBLIC")
            except Exception as exc:
                if owner is None:  # nothing half-made: no role without its database
                    await self._remove_quietly(conn, names)
                if isinstance(exc, asyncpg.DuplicateDatabaseError):  # created by someone else meanwhile
                    raise Conflict(f"a database named {names.database!r} already exists") from None
                raise
        return Provisioned(secrets=self._secrets(names, password))

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        """Renames and plan changes need nothing here. The database keeps its name; a suspended resource's role
        may not log in (its open sessions end) until the resource is ready again."""
        names = self.names(before.id, before.metadata)
        if self.names(after.id, after.metadata) != names:
            raise Invalid.field(f"metadata.{DATABASE_FIELD}", "cannot be changed after the database was created")
        suspend = after.status is ResourceStatus.SUSPENDED
        if suspend == (before.status is ResourceStatus.SUSPENDED):
            return
        async with self.server.connection() as conn:
            await self._require_role(conn, names)
            await conn.execute(f"ALTER ROLE {quote_identifier(names.role)} {'NOLOGIN' if suspend else 'LOGIN'}")
            if suspend:
                await _end_sessions(conn, names)

    async def deprovision(self, resource: Resource) -> None:
        """End the sessions, drop the database, then the role. A repeat finds nothing left and succeeds."""
        names = self.names(resource.id, resource.metadata)
        async with self.server.connection() as conn:
            await _drop(conn, names)

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        """A new password, at once.

        PostgreSQL keeps one password per role, so the old one stops working for new connections right away,
        whatever `keep_old_hours` asks (sessions already open stay open). Every secret comes back, as
        DATABASE_URL carries the password too.
        """
        names = self.names(resource.id, resource.metadata)
        password = new_password()
        async with self.server.connection() as conn:
            await self._require_role(conn, names)
            await _set_password(conn, names.role, password)
        return Rotation(sync=True, secrets=self._secrets(names, password), partial=False)

    async def repl(self, resource: Resource, command: str, read_only: bool) -> ReplOutcome:
        names = self.names(resource.id, resource.metadata)
        async with self.server.connection() as conn:
            return await repl.run(conn, names, command, self._address())

    # ------------------------------------------------------------------------------------------------ helpers

    async def _check_quota(self, conn: asyncpg.Connection) -> None:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", self.settings.prefix
        )
        if count >= self.settings.max_databases:
            raise Unprocessable(
                f"no more databases can be created on this server (limit {self.settings.max_databases})",
                user_message="This PostgreSQL server is full: no new database can be created right now.",
            )

    async def _require_role(self, conn: asyncpg.Connection, names: Names) -> None:
        if not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", names.role):
            raise Unprocessable(f"the database of this resource ({names.database!r}) no longer exists")

    async def _remove_quietly(self, conn: asyncpg.Connection, names: Names) -> None:
        try:
            await _drop(conn, names)
        except Exception as exc:  # the original failure is the one to report
            log.warning("could not remove the half-made %s (%s)", names.role, type(exc).__name__)

    def _address(self) -> str:
        host = self.settings.public_host
        return f"[{host}]:{self.settings.public_port}" if ":" in host else f"{host}:{self.settings.public_port}"

    def _secrets(self, names: Names, password: str) -> tuple[Secret, ...]:
        user, database = quote(names.role, safe=""), quote(names.database, safe="")
        url = f"postgresql://{user}:{quote(password, safe='')}@{self._address()}/{database}"
        return (
            Secret(name="DATABASE_URL", value=url),
            Secret(name="PGHOST", value=self.settings.public_host),
            Secret(name="PGPORT", value=str(self.settings.public_port)),
            Secret(name="PGUSER", value=names.role),
            Secret(name="PGPASSWORD", value=password),
            Secret(name="PGDATABASE", value=names.database),
        )


# ---------------------------------------------------------------------------------------------------- SQL


async def _database_owner(conn: asyncpg.Connection, database: str) -> str | None:
    return await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database)


async def _set_login(conn: asyncpg.Connection, role: str, password: str) -> None:
    """Create the login role, or give an existing one (a retry) the new password."""
    exists = await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role)
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(f"{verb} ROLE {quote_identifier(role)} LOGIN PASSWORD {quote_literal(scram_verifier(password))}")
    # A non-superuser admin must be a member of the role to give it a database, drop it, or size it. Granted
    # on a retry too: the crash may have come between the two statements.
    await conn.execute(f"GRANT {quote_identifier(role)} TO CURRENT_USER")


async def _set_password(conn: asyncpg.Connection, role: str, password: str) -> None:
    await conn.execute(f"ALTER ROLE {quote_identifier(role)} PASSWORD {quote_literal(scram_verifier(password))}")


async def _end_sessions(conn: asyncpg.Connection, names: Names) -> None:
    """Close the role's sessions (only it and the admin may connect to its database)."""
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
        names.role,
    )


async def _drop(conn: asyncpg.Connection, names: Names) -> None:
    role_exists = await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", names.role)
    if role_exists:  # no new session while we clear up
        await conn.execute(f"ALTER ROLE {quote_identifier(names.role)} NOLOGIN")
        await _end_sessions(conn, names)
    owner = await _database_owner(conn, names.database)
    if owner == names.role:  # never a database of someone else that happens to bear the name
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_identifier(names.database)} WITH (FORCE)")
    if role_exists:
        await conn.execute(f"DROP OWNED BY {quote_identifier(names.role)}")  # grants left in the admin database
        await conn.execute(f"DROP ROLE IF EXISTS {quote_identifier(names.role)}")
