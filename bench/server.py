"""The parts every benchmark starts: Vercel's side (keys, tokens, API) on 127.0.0.1, a storage backend, and a real
`marketplace-provider serve` process (or the floor, served the same way), each stopped afterwards."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.support.postgres import scratch_database

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(Path(sys.executable).parent / "marketplace-provider")
WEBHOOK_SECRET = "bench-client-secret"  # INTEGRATION_CLIENT_SECRET: it signs the webhook deliveries
BACKENDS = ("memory", "sqlite", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Vercel:
    """Vercel's side of every benchmark: the token kit (and its JWKS) and the fake REST API."""

    kit: TokenKit
    api: FakeVercel

    def env(self, log_level: str) -> dict[str, str]:
        return {
            **os.environ,
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": WEBHOOK_SECRET,
            "VERCEL_OIDC_JWKS_URL": self.kit.jwks_url,
            "VERCEL_API_URL": self.api.url,
            "LOG_LEVEL": log_level,
        }


@asynccontextmanager
async def vercel() -> AsyncIterator[Vercel]:
    api = FakeVercel()
    await api.start()
    try:
        async with TokenKit() as kit:
            yield Vercel(kit, api)
    finally:
        await api.stop()


@dataclass
class Storage:
    backend: str
    env: dict[str, str]  # STORAGE_BACKEND, DATABASE_URL, SECRETS_KEY

    @property
    def url(self) -> str:
        return self.env.get("DATABASE_URL", "")


@asynccontextmanager
async def storage(backend: str) -> AsyncIterator[Storage]:
    """A fresh store of that backend (a scratch PostgreSQL database, a SQLite file in a temporary folder)."""
    key = generate_key_text()
    if backend == "memory":
        yield Storage(backend, {"STORAGE_BACKEND": "memory", "SECRETS_KEY": key})
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield Storage(backend, {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": f"{tmp}/bench.db", "SECRETS_KEY": key})
    elif backend == "postgres":
        async with scratch_database() as dsn:
            yield Storage(backend, {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": key})
    else:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")


@dataclass
class Running:
    url: str
    pid: int
    log: Path


def serve_command(port: int, *, worker: bool = False) -> list[str]:
    """The server as the README runs it, one process; delivery left to `worker` processes unless `worker`."""
    return [SCRIPT, "serve", "--port", str(port), *([] if worker else ["--no-worker"])]


def floor_env(env: dict[str, str]) -> dict[str, str]:
    """The floor runs `serve_command` itself; this environment swaps only its app (bench/floor.py)."""
    path = os.pathsep.join(p for p in (str(ROOT / "bench" / "floor_site"), str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, "BENCH_FLOOR": "1", "STORAGE_BACKEND": "memory"}


def migrate(env: dict[str, str]) -> None:
    if env.get("STORAGE_BACKEND", "memory") != "memory":
        subprocess.run([SCRIPT, "migrate"], env=env, check=True, capture_output=True, timeout=120)


@asynccontextmanager
async def serving(command: list[str], env: dict[str, str], log: Path, *, floor: bool = False) -> AsyncIterator[Running]:
    """Start `command` (listening on the port it names), wait until /healthz answers, stop it afterwards."""
    port = int(command[command.index("--port") + 1])
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            await _until_healthy(f"http://127.0.0.1:{port}", process, log, floor=floor)
            yield Running(f"http://127.0.0.1:{port}", process.pid, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _until_healthy(url: str, process: subprocess.Popen, log: Path, *, floor: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}:\n{_tail(log)}")
            try:
                async with session.get(url + "/healthz") as reply:
                    if reply.status == 200:
                        if floor and not (await reply.json()).get("floor"):
                            raise RuntimeError(
                                "the floor process serves the real app: `serve` no longer builds its app through"
                                " entrypoints.http:app_from_env; update bench/floor.py"
                            )
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@asynccontextmanager
async def backend_server(
    backend: str, side: Vercel, workdir: Path, log_level: str, *, name: str = "", worker: bool = False,
    extra: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Running, Storage]]:
    """A fresh store of `backend`, migrated, and a `serve` process on it (`extra`: more environment)."""
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(storage(backend))
        env = {**side.env(log_level), **store.env, **(extra or {})}
        migrate(env)
        running = await stack.enter_async_context(
            serving(serve_command(free_port(), worker=worker), env, workdir / f"serve-{name or backend}.log")
        )
        yield running, store
