"""Composition roots: which adapter serves each port, chosen from the settings.

`Core` is shared by every process; `HttpContainer` adds what only the web server needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dependency_injector import containers, providers

from adapters.example_provisioner import ExampleProvisioner
from adapters.jwks import JwksTokenVerifier
from adapters.storage.memory import MemoryStorage
from adapters.vercel_client import VercelClient
from config.catalog import load_catalog
from config.settings import ConfigError, Settings
from domain.services import Services
from domain.services.common import Ports
from domain.services.installations import Installations
from domain.services.plans import Plans
from domain.services.purchases import Purchases
from domain.services.resources import Resources
from domain.services.transfers import Transfers
from ports.clock import SystemClock
from ports.ids import RandomIds
from ports.storage import Storage


async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """One Resource that branches in plain Python (a Selector of Resources would open every branch)."""
    match settings.storage_backend:
        case "memory":
            storage: Storage = MemoryStorage()
        case other:
            raise ConfigError(f"STORAGE_BACKEND={other} is not available yet; use memory")
    try:
        yield storage
    finally:
        await storage.close()


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
    client = VercelClient(settings.vercel_api_url, user_agent=f"marketplace-provider/{settings.integration_client_id}")
    try:
        yield client
    finally:
        await client.close()


class Core(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    catalog = providers.Singleton(load_catalog, settings.provided.products_file)
    storage = providers.Resource(open_storage, settings)
    ports = providers.Factory(Ports, storage=storage, catalog=catalog, clock=clock, ids=ids)


class HttpContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    provisioner = providers.Singleton(ExampleProvisioner)
    token_verifier = providers.Resource(open_verifier, settings)
    vercel = providers.Resource(open_vercel, settings)
    services = providers.Factory(
        Services,
        installations=providers.Factory(Installations, core.ports, provisioner),
        resources=providers.Factory(Resources, core.ports, provisioner),
        plans=providers.Factory(Plans, core.ports),
        purchases=providers.Factory(Purchases, core.ports, vercel),
        transfers=providers.Factory(Transfers, core.ports),
    )
