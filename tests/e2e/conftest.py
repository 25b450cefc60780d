"""What the end-to-end tests share: a FakeVercel per test, a database the test and its processes both open (with
the same key), and a `serve` process started until it is ready."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from marketplace_provider.adapters.cipher import SecretCipher, generate_key_text, load_or_create_key_file, parse_keys
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.storage.migrations import migrate_sqlite
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.ports.storage import Storage
from tests.e2e.test_cli import SCRIPT
from tests.support.postgres import scratch_database


@dataclass
class Backend:
    env: dict[str, str]  # what a process needs to open the same database with the same key
    storage: Storage  # the test's own handle on it


@pytest.fixture
async def fake() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel()
    await fake.start()
    yield fake
    await fake.stop()


async def sqlite_backend(path: Path) -> Backend:
    """A migrated SQLite file; its key file is created beside it, where the process finds it too."""
    await migrate_sqlite(path)
    cipher = SecretCipher(load_or_create_key_file(f"{path}.key"))
    # SECRETS_KEY empty counts as unset, so an outer environment cannot override the key file
    env = {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(path), "SECRETS_KEY": ""}
    return Backend(env=env, storage=await SqliteStorage.open(path, cipher))


async def postgres_backend(dsn: str) -> Backend:
    """A migrated PostgreSQL database with a new key, which the processes get in SECRETS_KEY."""
    key = generate_key_text()
    storage = await PostgresStorage.open(dsn, SecretCipher(parse_keys(key)))
    return Backend(env={"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": key}, storage=storage)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        opened = await sqlite_backend(tmp_path / "marketplace.db")
        yield opened
        await opened.storage.close()
    else:
        async with scratch_database() as dsn:
            opened = await postgres_backend(dsn)
            yield opened
            await opened.storage.close()


def tail(log: Path | None) -> str:
    return log.read_text()[-3000:] if log is not None and log.exists() else "(no log)"


async def serve_process(
    env: dict[str, str], port: int, cwd: Path, log: Path | None = None, *args: str
) -> subprocess.Popen:
    """`marketplace-provider serve --port P ARGS...` (logging to `log`, or nowhere), once /readyz answers 200."""
    out = log.open("w") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            [SCRIPT, "serve", "--port", str(port), *args], env=env, cwd=cwd, stdout=out, stderr=out
        )
    finally:
        if log is not None:
            out.close()
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as reply:
                    if reply.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            if process.poll() is not None:
                raise AssertionError(f"serve exited ({process.returncode}) during start-up:\n{tail(log)}")
            await asyncio.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError(f"serve did not become ready:\n{tail(log)}")
