"""Acknowledged writes survive a crash: SIGKILL a real `serve` during a burst of provisions, restart it,
and find every resource that got a 2xx (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from tests.e2e.conftest import serve_process
from tests.e2e.test_cli import free_port
from tests.http.conftest import provision_body, upsert_body
from tests.support.postgres import scratch_database


@pytest.fixture(params=["sqlite", "postgres"])
async def storage_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(tmp_path / "marketplace.db")}
    else:
        async with scratch_database() as dsn:
            yield {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()}


async def test_every_acknowledged_write_survives_sigkill(
    token_kit: TokenKit, storage_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **storage_env, "INTEGRATION_CLIENT_ID": AUDIENCE, "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    installation = "icfg_durability0000000000001"
    admin = {"Authorization": f"Bearer {token_kit.user_token(installation)}", "X-Vercel-Auth": "user"}
    process = await serve_process(env, port, tmp_path)
    acknowledged: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            async with session.put(f"{base}/v1/installations/{installation}", json=upsert_body(), headers=admin) as r:
                assert r.status == 204

            async def writer(n: int) -> None:
                for i in range(1000):
                    try:
                        async with session.post(
                            f"{base}/v1/installations/{installation}/resources",
                            json=provision_body(name=f"w{n}-{i}"),
                            headers={**admin, "Idempotency-Key": f"k-{n}-{i}"},
                        ) as reply:
                            if reply.status == 200:
                                acknowledged.append((await reply.json())["id"])
                    except (TimeoutError, aiohttp.ClientError):
                        return  # the server is gone

            writers = [asyncio.create_task(writer(n)) for n in range(16)]
            while len(acknowledged) < 50:
                await asyncio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            await asyncio.gather(*writers)
    finally:
        process.kill()
        process.wait()
    assert len(acknowledged) >= 50

    process = await serve_process(env, port, tmp_path)
    try:
        system = {"Authorization": f"Bearer {token_kit.system_token(installation)}", "X-Vercel-Auth": "system"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/v1/installations/{installation}/resources", headers=system) as reply:
                assert reply.status == 200
                stored = {r["id"] for r in (await reply.json())["resources"]}
    finally:
        process.terminate()
        process.wait(timeout=30)
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged resources lost"
    assert len(stored) >= len(acknowledged)
