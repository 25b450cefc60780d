"""A real server (uvicorn on 127.0.0.1) with the real wiring, Vercel's keys served by TokenKit and
Vercel's API by FakeVercel. One server per session; each test works in installations of its own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.entrypoints.http import create_app
from tests.support.postgres import scratch_database
from tests.support.server import serving


@pytest.fixture(scope="session", params=["memory", "sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """The whole HTTP suite runs once per storage backend, unchanged."""
    backend = request.param
    if backend == "memory":
        yield {"STORAGE_BACKEND": "memory"}
    elif backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "marketplace.db"
        yield {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(path)}
    else:
        async with scratch_database() as dsn:
            yield {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()}


@pytest.fixture(scope="session")
def settings(database: dict[str, str], token_kit: TokenKit, fake_vercel: FakeVercel) -> Settings:
    return load_settings(
        {
            **database,
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": "test-client-secret",
            "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
            "VERCEL_API_URL": fake_vercel.url,
            "JWKS_REFETCH_SECONDS": "0",
            "MAX_BODY_BYTES": "1048576",
            "SERVE_WORKER": "false",  # the tests deliver the outbox themselves, when they mean to
        }
    )


@pytest.fixture(scope="session")
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
async def api(base_url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(base_url, session)


def upsert_body(token: str = "vercel-access-token") -> dict:
    return {
        "scopes": ["read:resource", "write:resource"],
        "acceptedPolicies": {"toc": "2026-01-01T00:00:00Z"},
        "credentials": {"access_token": token, "token_type": "Bearer"},
        "account": {"name": "Acme Team", "url": "https://vercel.com/acme", "contact": {"email": "ops@acme.test", "name": "Ops"}},
    }


def provision_body(**changes: object) -> dict:
    return {"productId": "acme-kv", "name": "my-kv", "metadata": {}, "billingPlanId": "free", **changes}


@dataclass
class Installation:
    """An installation of the test's own, with tokens for each kind of caller."""

    id: str
    api: Api
    kit: TokenKit

    @property
    def path(self) -> str:
        return f"/v1/installations/{self.id}"

    @property
    def admin(self) -> str:
        return self.kit.user_token(self.id, role="ADMIN")

    @property
    def viewer(self) -> str:
        return self.kit.user_token(self.id, role="USER")

    @property
    def system(self) -> str:
        return self.kit.system_token(self.id)

    async def upsert(self, **kw: object) -> Reply:
        return await self.api.put(self.path, token=self.admin, style="user", body=upsert_body(), **kw)

    async def provision(self, **changes: object) -> Reply:
        return await self.api.post(
            self.path + "/resources", token=self.admin, style="user", body=provision_body(**changes)
        )

    async def resource(self, resource_id: str) -> Reply:
        return await self.api.get(f"{self.path}/resources/{resource_id}", token=self.system, style="system")


def new_installation_id() -> str:
    return "icfg_" + secrets.token_hex(12)


@pytest.fixture
def fresh(api: Api, token_kit: TokenKit) -> Installation:
    """An installation id nobody has used; not yet upserted."""
    return Installation(new_installation_id(), api, token_kit)


@pytest.fixture
async def installed(fresh: Installation) -> Installation:
    reply = await fresh.upsert()
    assert reply.status == 204, reply.body
    return fresh


@pytest.fixture
async def other(api: Api, token_kit: TokenKit) -> Installation:
    """A second installed installation, e.g. the target of a transfer."""
    inst = Installation(new_installation_id(), api, token_kit)
    reply = await inst.upsert()
    assert reply.status == 204, reply.body
    return inst
