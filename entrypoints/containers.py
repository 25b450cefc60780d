"""Composition roots: which adapter serves each port, chosen from the settings.

`Core` is shared by every process; `HttpContainer` adds what only the web server needs.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import AsyncIterator

import asyncpg

from dependency_injector import containers, providers

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.http.dashboard import Browser
from marketplace_provider.adapters.jwks import JwksTokenVerifier
from marketplace_provider.adapters.cipher import CipherError, SecretCipher, load_or_create_key_file, parse_keys
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.adapters.storage.migrations import migrate_postgres, migrate_sqlite, pending_postgres, pending_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.adapters.vercel_client import VercelClient
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import ConfigError, Settings
from marketplace_provider.domain.services import Services
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.outbox import RetryPolicy
from marketplace_provider.domain.services.dashboard import Dashboard
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.domain.services.sign_in import SignIn
from marketplace_provider.domain.services.transfers import Transfers
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.sso import sso_link
from marketplace_provider.ports.clock import SystemClock
from marketplace_provider.ports.ids import RandomIds
from marketplace_provider.ports.storage import Storage


async def resolved(value: object) -> object:
    """Providers that depend on an async Resource return awaitables (dependency-injector's async mode)."""
    return await value if inspect.isawaitable(value) else value


def _cipher(settings: Settings, key_file: str | None) -> SecretCipher:
    try:
        if settings.secrets_key:
            return SecretCipher(parse_keys(settings.secrets_key))
        if key_file is None:
            raise ConfigError("SECRETS_KEY is required with STORAGE_BACKEND=postgres")
        return SecretCipher(load_or_create_key_file(key_file))
    except CipherError as exc:
        raise ConfigError(str(exc)) from None


async def open_storage(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Storage]:
    """One Resource that branches in plain Python (a Selector of Resources would open every branch).

    The embedded SQLite default migrates itself; PostgreSQL, shared by many processes, refuses to
    start on an outdated schema instead.
    """
    storage: Storage
    try:
        match settings.storage_backend:
            case "memory":
                storage = MemoryStorage()
            case "sqlite":
                cipher = _cipher(settings, key_file=settings.database_url + ".key")
                if migrate:
                    await migrate_sqlite(settings.database_url)
                elif await pending_sqlite(settings.database_url):
                    raise ConfigError("the database schema is outdated: run `marketplace-provider migrate`")
                storage = await SqliteStorage.open(settings.database_url, cipher)
            case "postgres":
                cipher = _cipher(settings, key_file=None)
                if await pending_postgres(settings.database_url):
                    raise ConfigError("the database schema is outdated: run `marketplace-provider migrate`")
                storage = await PostgresStorage.open(settings.database_url, cipher)
            case other:
                raise ConfigError(f"STORAGE_BACKEND={other} is not a storage backend")
    except CipherError as exc:
        raise ConfigError(f"SECRETS_KEY cannot read the stored secrets: {exc}") from None
    except (OSError, asyncpg.PostgresError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the {settings.storage_backend} database: {type(exc).__name__}: {exc}") from None
    try:
        yield storage
    finally:
        await storage.close()


async def migrate(settings: Settings) -> list[str]:
    """Create or upgrade the schema of the configured backend; returns the versions applied now."""
    try:
        match settings.storage_backend:
            case "sqlite":
                _cipher(settings, key_file=settings.database_url + ".key")  # the key lives beside the file
                return await migrate_sqlite(settings.database_url)
            case "postgres":
                return await migrate_postgres(settings.database_url)
            case _:
                return []
    except (OSError, asyncpg.PostgresError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot migrate the {settings.storage_backend} database: {type(exc).__name__}: {exc}") from None


async def open_verifier(settings: Settings) -> AsyncIterator[JwksTokenVerifier]:
    verifier = JwksTokenVerifier(
        jwks_url=settings.vercel_oidc_jwks_url,
        issuer=settings.vercel_oidc_issuer,
        audience=settings.integration_client_id,
        leeway_seconds=settings.token_leeway_seconds,
        refetch_interval_seconds=settings.jwks_refetch_seconds,
    )
    try:
        yield verifier
    finally:
        await verifier.close()


async def open_vercel(settings: Settings) -> AsyncIterator[VercelClient]:
    client = VercelClient(
        settings.vercel_api_url,
        client_id=settings.integration_client_id,
        client_secret=settings.integration_client_secret,
        experimentation_config_segment=settings.experimentation_config_segment,
        user_agent=f"marketplace-provider/{settings.integration_client_id}",
    )
    try:
        yield client
    finally:
        await client.close()


def billing_page_link(settings: Settings) -> str:
    return sso_link(settings.public_url.rstrip("/") + "/dashboard/billing")


class Core(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    catalog = providers.Singleton(load_catalog, settings.provided.products_file)
    storage = providers.Resource(open_storage, settings)
    ports = providers.Factory(Ports, storage=storage, catalog=catalog, clock=clock, ids=ids)
    # Swap these for your own: the integrator's provisioner and usage source (and, in tests, the Vercel gateway).
    provisioner = providers.Singleton(ExampleProvisioner)
    usage = providers.Singleton(ExampleUsageSource, catalog)
    vercel = providers.Resource(open_vercel, settings)
    installations = providers.Factory(Installations, ports, provisioner)
    webhooks = providers.Factory(
        Webhooks, ports, vercel, provisioner, installations, billing_link=providers.Callable(billing_page_link, settings)
    )


class HttpContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    provisioner = core.provisioner
    vercel = core.vercel
    token_verifier = providers.Resource(open_verifier, settings)
    resources = providers.Factory(Resources, core.ports, provisioner)
    sign_in = providers.Factory(
        SignIn, core.ports, vercel, token_verifier, session_hours=settings.provided.session_hours
    )
    dashboard = providers.Factory(Dashboard, core.ports, resources, provisioner, core.usage)
    browser = providers.Factory(
        Browser,
        public_url=settings.provided.public_url,
        vercel_url=settings.provided.vercel_url,
        integration_slug=settings.provided.integration_slug,
    )
    services = providers.Factory(
        Services,
        installations=core.installations,
        resources=resources,
        plans=providers.Factory(Plans, core.ports),
        purchases=providers.Factory(Purchases, core.ports, vercel),
        transfers=providers.Factory(Transfers, core.ports),
        notifications=providers.Factory(Notifications, core.ports),
        webhooks=core.webhooks,
    )


class WorkerContainer(containers.DeclarativeContainer):
    """The `worker` process: outbox delivery, left-over webhook events and the scheduled jobs."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    vercel = core.vercel
    usage = core.usage
    retry_policy = providers.Singleton(RetryPolicy, max_attempts=settings.provided.outbox_max_attempts)
    delivery = providers.Singleton(
        Delivery, core.ports, vercel, retry_policy, lease_seconds=settings.provided.outbox_lease_seconds
    )
    jobs = providers.Singleton(ScheduledJobs, core.ports, usage)
    webhooks = core.webhooks


async def preflight(settings: Settings) -> None:
    """Open and close storage once before serving, so that an outdated schema, a wrong key or an
    unreachable database stops the command with one line instead of failing in every worker."""
    opened = open_storage(settings)
    await anext(opened)
    await opened.aclose()
