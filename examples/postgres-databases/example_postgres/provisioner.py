"""PostgreSQL databases as Marketplace resources: `ports.provisioner.ResourceProvisioner` on a real server.

One resource is one database plus one login role that owns it, on the server of `EXAMPLE_POSTGRES_ADMIN_URL`.
Other roles of the server (other resources included) may not connect to it. Nothing is remembered in this
process but the background work of `EXAMPLE_POSTGRES_ASYNC`: each call finds the names again from the resource
(`names.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import asyncpg

from example_postgres import repl
from example_postgres.names import DATABASE_FIELD, Names, names_of, quote_identifier, quote_literal
from example_postgres.scram import new_password, scram_verifier
from example_postgres.server import AdminServer, describe, log
from example_postgres.settings import PostgresSettings
from marketplace_provider.domain.errors import Conflict, DomainError, Invalid, NotFound, Unprocessable
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, Rotation

if TYPE_CHECKING:  # the kit's loader module; nothing here needs it at run time
    from marketplace_provider.entrypoints.plugins import PluginContext
    from marketplace_provider.entrypoints.provider import Marketplace

T = TypeVar("T")

# Waits between tries of an action on a resource the kit has not recorded yet: it records the resource right
# after `provision` returns, so the first try rarely misses. About 5 s in all.
UNTIL_RECORDED_SECONDS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 2.0)
FAILED_TITLE = "The database could not be created"


class PostgresProvisioner:
    """Creates, rotates and drops one database and role per resource.

    Made by the kit (with its PluginContext or nothing), it reads `EXAMPLE_POSTGRES_*` (settings.py); tests pass
    `settings=`. With `EXAMPLE_POSTGRES_ASYNC` it needs the PluginContext: its `marketplace()` finishes a
    provisioning in the background.
    Use it with `async with` (the kit does): that opens and closes the admin connection pool, and cancels the
    background work still running.
    """

    until_recorded_seconds: tuple[float, ...] = UNTIL_RECORDED_SECONDS

    def __init__(self, context: PluginContext | None = None, *, settings: PostgresSettings | None = None) -> None:
        # The kit passes its PluginContext (its settings, catalog and provider-side actions) or nothing.
        self.context = context
        self.settings = PostgresSettings.from_env() if settings is None else settings
        self.server = AdminServer(self.settings)
        self._background: dict[str, tuple[Names, asyncio.Task[None]]] = {}  # resource id -> its running creation

    async def __aenter__(self) -> PostgresProvisioner:
        await self.server.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # A creation cut short here leaves its resource pending (README, "Asynchronous provisioning").
        running = [task for _, task in self._background.values()]
        if running:
            log.warning(
                "stopping with %d provisioning(s) unfinished; these resources stay pending until `example-postgres "
                "finish` (or deleted): %s", len(running), ", ".join(sorted(self._background)),
            )
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.server.close()

    def names(self, resource_id: str, metadata: Mapping[str, object]) -> Names:
        return names_of(self.settings.prefix, resource_id, metadata)

    # ------------------------------------------------------------------------------------------------ the port

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        """A new database and its owner role, with a new password: at once, or with `EXAMPLE_POSTGRES_ASYNC`
        checked at once, answered `pending` and made in the background (`_finish_later`).

        Idempotent on `draft.resource_id`: a retry finds the role and database of the first attempt, keeps them
        and gives the role a new password (the first answer may never have reached Vercel).
        """
        names = self.names(draft.resource_id, draft.metadata)  # Invalid before anything is touched
        if not self.settings.asynchronous:
            return Provisioned(secrets=await self.create(draft.resource_id, draft.metadata))
        if self.context is None:
            raise RuntimeError("EXAMPLE_POSTGRES_ASYNC needs the kit's PluginContext: PostgresProvisioner(context)")
        if draft.resource_id not in self._background:  # else a retry while the first creation still runs
            async with self.server.connection() as conn, self.server.lock(conn):
                await self._check_new(conn, names)  # Conflict or Unprocessable now, not in the background
                # started under the lock, so the next provisioning's checks count it
                task = asyncio.create_task(self._finish_later(draft, names), name=f"provision {draft.resource_id}")
                self._background[draft.resource_id] = (names, task)
                task.add_done_callback(lambda done: self._forget(draft.resource_id, done))
        return Provisioned(status=ResourceStatus.PENDING, secrets=())

    async def create(self, resource_id: str, metadata: Mapping[str, object]) -> tuple[Secret, ...]:
        """Make the resource's role and database, or find them again (a retry), and give the role a new password.

        What `provision` does at once, its background task later, and `example-postgres finish` by hand. A
        failure after the role was made drops it again: nothing is left half-made.
        """
        names = self.names(resource_id, metadata)
        password = new_password()
        async with self.server.connection() as conn, self.server.lock(conn):
            owner = await self._check_new(conn, names, creating=resource_id)
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
        return self._secrets(names, password)

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
        """Stop its creation if it still runs here, end the sessions, drop the database, then the role. A repeat
        finds nothing left and succeeds."""
        running = self._background.get(resource.id)
        if running is not None:
            running[1].cancel()
            await asyncio.gather(running[1], return_exceptions=True)
        names = self.names(resource.id, resource.metadata)
        async with self.server.connection() as conn:
            await _drop(conn, names)

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        """A new password, at once.

        PostgreSQL keeps one password per role, so the old one stops working for new connections right away,
        whatever `keep_old_hours` asks (sessions already open stay open). Every secret comes back, as
        DATABASE_URL carries the password too. `example-postgres rotate` uses it from the provider's side.
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

    # ------------------------------------------------------------------------------------ asynchronous provisioning

    async def _finish_later(self, draft: ResourceDraft, names: Names) -> None:
        """The background half of an asynchronous `provision`: create, then tell the kit through its provider-side
        actions. Never raises (a task nobody awaits); cancelled by `deprovision` and at shutdown."""
        where = (draft.installation_id, draft.resource_id)
        try:
            secrets = await self.create(draft.resource_id, draft.metadata)
        except Exception as exc:  # nothing is left half-made: say so to the user, without any secret
            log.warning("provisioning %s in the background failed: %s", draft.resource_id, describe(exc))
            await self._report_failure(draft, exc)
            return
        try:
            marketplace = await self._marketplace()
            await self._once_recorded(lambda: marketplace.resources.finish_provisioning(*where, secrets))
        except NotFound:  # the kit never recorded it (or it is gone): nobody owns this database
            log.warning("resource %s was not recorded by the kit: its new database is dropped", draft.resource_id)
            try:
                async with self.server.connection() as conn:
                    await _drop(conn, names)
            except Exception as exc:
                log.error("could not drop the database of resource %s: %s", draft.resource_id, describe(exc))
        except Exception as exc:
            log.error(
                "resource %s stays pending: its database is made but the kit could not be told (%s); run "
                "`example-postgres finish %s %s`", draft.resource_id, describe(exc), *where,
            )

    async def _report_failure(self, draft: ResourceDraft, exc: Exception) -> None:
        """The resource's status `error`, and a notification telling the user why in words fit for them."""
        where = (draft.installation_id, draft.resource_id)
        reason = (exc.user_message or exc.message) if isinstance(exc, DomainError) else "An unexpected error occurred"
        note = Notification(
            level=Level.ERROR,
            title=FAILED_TITLE,
            message=f"{reason[:1].upper()}{reason[1:].rstrip('.')}. Delete this resource and create it again, or "
            "contact support.",
        )
        try:
            marketplace = await self._marketplace()
            await self._once_recorded(lambda: marketplace.resources.set_status(*where, ResourceStatus.ERROR))
            await marketplace.resources.notify(*where, note)
        except Exception as failure:
            log.error("could not record the failure of resource %s: %s", draft.resource_id, describe(failure))

    async def _marketplace(self) -> Marketplace:
        assert self.context is not None  # provision checked it
        return await self.context.marketplace()

    async def _once_recorded(self, action: Callable[[], Awaitable[T]]) -> T:
        """`action()`, tried again while it finds no resource: the kit records it only after `provision`."""
        for wait in self.until_recorded_seconds:
            try:
                return await action()
            except NotFound:
                await asyncio.sleep(wait)
        return await action()

    def _forget(self, resource_id: str, task: asyncio.Task[None]) -> None:
        running = self._background.get(resource_id)
        if running is not None and running[1] is task:
            del self._background[resource_id]

    # ------------------------------------------------------------------------------------------------ helpers

    async def _check_new(self, conn: asyncpg.Connection, names: Names, creating: str | None = None) -> str | None:
        """The owner of the resource's database if it exists; else check that there is room for one more and
        that no other creation of this process is making one of that name. Conflict when the name is taken.
        Call it holding the lock; `creating` is the resource being made now, left out of the running ones."""
        owner = await _database_owner(conn, names.database)
        coming = {made.database for rid, (made, _) in self._background.items() if rid != creating}
        if (owner is not None and owner != names.role) or (owner is None and names.database in coming):
            raise Conflict(f"a database named {names.database!r} already exists: choose another name")
        if owner is None:
            await self._check_quota(conn, coming)
        return owner

    async def _check_quota(self, conn: asyncpg.Connection, coming: set[str]) -> None:
        """Room for one more database, counting those still being made in the background (`coming`)."""
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", self.settings.prefix)
        if len({row["datname"] for row in rows} | coming) >= self.settings.max_databases:
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
