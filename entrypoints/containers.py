"""The composition root: which adapter serves each port, chosen from the settings, for every entrypoint."""

from __future__ import annotations

import inspect
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import msgspec
from dependency_injector import containers, providers

from marketplace_provider.adapters.cipher import CipherError, SecretCipher, load_or_create_key_file, parse_keys
from marketplace_provider.adapters.clock import SystemClock
from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.adapters.http.dashboard import Browser
from marketplace_provider.adapters.http.webhooks import read_payload
from marketplace_provider.adapters.ids import RandomIds
from marketplace_provider.adapters.jwks import JwksTokenVerifier
from marketplace_provider.adapters.metered import DeliveryMeter, MeteredProvisioner
from marketplace_provider.adapters.storage.memory import MemoryStorage
from marketplace_provider.adapters.storage.migrations import (
    migrate_postgres,
    migrate_sqlite,
    pending_postgres,
    pending_sqlite,
)
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.adapters.vercel_client import VercelClient
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import ConfigError, Settings
from marketplace_provider.domain.outbox import RetryPolicy
from marketplace_provider.domain.plans import Catalog
from marketplace_provider.domain.services import Services
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.dashboard import Dashboard
from marketplace_provider.domain.services.delivery import Delivery
from marketplace_provider.domain.services.experimentation import ExperimentationActions
from marketplace_provider.domain.services.installation_actions import InstallationActions
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.domain.services.scheduled import ScheduledJobs
from marketplace_provider.domain.services.sign_in import SignIn
from marketplace_provider.domain.services.transfers import Transfers
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.sso import page_link
from marketplace_provider.entrypoints import plugins
from marketplace_provider.entrypoints.plugins import PluginContext
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.usage import UsageSource
from marketplace_provider.ports.vercel import VercelGateway

if TYPE_CHECKING:
    from marketplace_provider.entrypoints.provider import Marketplace


T = TypeVar("T")


async def resolved(value: Awaitable[T] | T) -> T:
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
    return page_link(settings.public_url, "/dashboard/billing")


def _plugin_context(settings: Settings, catalog: Catalog, container: Container) -> PluginContext:
    async def marketplace() -> Marketplace:
        from marketplace_provider.entrypoints.provider import marketplace_of  # it builds on this module

        return await marketplace_of(container)

    return PluginContext(settings=settings, catalog=catalog, marketplace=marketplace)


async def open_provisioner(settings: Settings, context: PluginContext) -> AsyncIterator[ResourceProvisioner]:
    """PROVISIONER's part, or the shipped example (which `serve` warns about and /readyz reports)."""
    if settings.provisioner is None:
        yield ExampleProvisioner()
        return
    factory = plugins.import_factory(plugins.PROVISIONER, settings.provisioner)
    made = plugins.make(plugins.PROVISIONER, factory, context, settings.provisioner)
    async for part in plugins.opened(plugins.PROVISIONER, made, settings.provisioner):
        yield part  # type: ignore[misc]


async def open_usage_source(settings: Settings, context: PluginContext) -> AsyncIterator[UsageSource]:
    if settings.usage_source is None:
        yield ExampleUsageSource(context.catalog)
        return
    factory = plugins.import_factory(plugins.USAGE_SOURCE, settings.usage_source)
    made = plugins.make(plugins.USAGE_SOURCE, factory, context, settings.usage_source)
    async for part in plugins.opened(plugins.USAGE_SOURCE, made, settings.usage_source):
        yield part  # type: ignore[misc]


async def given_part(port: plugins.Port, part: object) -> AsyncIterator[object]:
    """A part handed over from code: entered like a configured one when it is an async context manager."""
    async for opened in plugins.opened(port, part, plugins.describe(part)):
        yield opened


def metered_delivery_ports(ports: Ports) -> Ports:
    """The delivery's ports: the same storage, whose outbox outcomes it commits are counted (adapters/metered.py)."""
    return msgspec.structs.replace(ports, storage=DeliveryMeter(ports.storage))


class Container(containers.DeclarativeContainer):
    """The one composition root: every entrypoint (serve, worker, each command, the tests' servers, the
    benchmarks) builds its parts here, one container per process, so each part exists once and overriding
    one (`container.provisioner.override(...)`, or `container_for(..., provisioner=...)` below) reaches the Partner API, the dashboard
    and the worker alike."""

    __self__ = providers.Self()
    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    catalog = providers.Singleton(load_catalog, settings.provided.products_file)
    storage = providers.Resource(open_storage, settings)
    ports = providers.Singleton(Ports, storage=storage, catalog=catalog, clock=clock, ids=ids)
    plugin_context = providers.Singleton(_plugin_context, settings, catalog, __self__)
    # The integrator's parts: PROVISIONER and USAGE_SOURCE, else the shipped examples.
    provisioner = providers.Resource(open_provisioner, settings, plugin_context)
    # What the services call: that provisioner, each call counted and timed for /metrics (adapters/metered.py).
    metered_provisioner = providers.Singleton(MeteredProvisioner, provisioner)
    usage = providers.Resource(open_usage_source, settings, plugin_context)
    vercel = providers.Resource(open_vercel, settings)
    token_verifier = providers.Resource(open_verifier, settings)

    installations = providers.Singleton(Installations, ports)
    resources = providers.Singleton(Resources, ports, metered_provisioner)
    notifications = providers.Singleton(Notifications, ports)
    jobs = providers.Singleton(ScheduledJobs, ports, usage)
    # The provider-side actions (entrypoints/provider.py's Marketplace, the action commands).
    installation_actions = providers.Singleton(InstallationActions, ports, vercel, notifications, jobs)
    resource_actions = providers.Singleton(ResourceActions, ports)
    experimentation = providers.Singleton(ExperimentationActions, ports)
    webhooks = providers.Singleton(
        Webhooks,
        ports,
        vercel,
        installations,
        billing_link=providers.Callable(billing_page_link, settings),
        read_payload=providers.Object(read_payload),  # stored deliveries are read in the wire format they came in
    )
    services = providers.Singleton(
        Services,
        installations=installations,
        resources=resources,
        plans=providers.Singleton(Plans, ports),
        purchases=providers.Singleton(Purchases, ports, vercel),
        transfers=providers.Singleton(Transfers, ports),
        notifications=notifications,
        webhooks=webhooks,
    )
    sign_in = providers.Singleton(SignIn, ports, vercel, token_verifier, session_hours=settings.provided.session_hours)
    dashboard = providers.Singleton(
        Dashboard, ports, resource_actions, metered_provisioner, usage, read_payload=providers.Object(read_payload)
    )
    browser = providers.Singleton(
        Browser,
        public_url=settings.provided.public_url,
        vercel_url=settings.provided.vercel_url,
        integration_slug=settings.provided.integration_slug,
    )
    retry_policy = providers.Singleton(RetryPolicy, max_attempts=settings.provided.outbox_max_attempts)
    delivery = providers.Singleton(
        Delivery,
        providers.Callable(metered_delivery_ports, ports),  # its outbox outcomes counted for /metrics
        vercel,
        retry_policy,
        provisioner=metered_provisioner,
        jitter=providers.Object(random.random),  # the one source of randomness the retries use
        lease_seconds=settings.provided.outbox_lease_seconds,
    )


def container_for(
    settings: Settings,
    *,
    provisioner: ResourceProvisioner | None = None,
    usage_source: UsageSource | None = None,
    vercel: VercelGateway | None = None,
) -> Container:
    """A container for one process, with the parts given from code in place of the configured ones."""
    container = Container(settings=settings)
    if provisioner is not None:
        container.provisioner.override(providers.Resource(given_part, plugins.PROVISIONER, provisioner))
    if usage_source is not None:
        container.usage.override(providers.Resource(given_part, plugins.USAGE_SOURCE, usage_source))
    if vercel is not None:
        container.vercel.override(providers.Object(vercel))
    return container


async def plugin_report(container: Container) -> dict[str, object]:
    """Which provisioner and usage source serve, and a warning while the shipped example provisioner does."""
    provisioner = await resolved(container.provisioner())
    usage = await resolved(container.usage())
    warnings = []
    if type(provisioner) is ExampleProvisioner:  # a subclass is the integrator's own
        warnings.append(EXAMPLE_PROVISIONER_WARNING)
    return {
        "provisioner": plugins.describe(provisioner),
        "usageSource": plugins.describe(usage),
        "warnings": warnings,
    }


EXAMPLE_PROVISIONER_WARNING = (
    "the shipped example provisioner is in use: it makes up credentials and keeps them in memory; "
    "set PROVISIONER to your own"
)


async def preflight(container: Container) -> dict[str, object]:
    """Open storage and the integrator's parts once before serving, so that an outdated schema, a wrong key,
    an unreachable database or a bad PROVISIONER stops the command with one line instead of failing in every
    server process. Returns the plug-in report."""
    container.catalog()
    try:
        await resolved(container.storage())
        return await plugin_report(container)
    finally:
        await resolved(container.shutdown_resources())
