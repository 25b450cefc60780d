"""Our own server as a process wired to the simulator (`simulate --serve-provider`): `serve` on 127.0.0.1 with the
simulator's settings, delivering to it every fraction of a second, on a SQLite file in a temporary directory (or
the STORAGE_BACKEND of the environment, migrated first); and `bill` run against the same storage."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from marketplace_provider.config.settings import ConfigError

START_SECONDS = 60
COMMAND_SECONDS = 60
CLI = (sys.executable, "-m", "marketplace_provider.entrypoints.cli")


def _free_port(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(f"simulate: port {port} is busy; --provider-port 0 picks a free one") from None
        return probe.getsockname()[1]


class ProviderProcess:
    def __init__(
        self, simulator_settings: dict[str, str], *, port: int, workdir: str, storage: dict[str, str] | None = None
    ) -> None:
        """`storage`: STORAGE_BACKEND, DATABASE_URL, SECRETS_KEY [the environment's STORAGE_BACKEND, if set, else a
        SQLite file in `workdir`]."""
        self.port = _free_port(port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "serve.log"
        backend = (storage or {}).get("STORAGE_BACKEND") or os.environ.get("STORAGE_BACKEND") or ""
        self.storage = f"{backend} from STORAGE_BACKEND" if backend else "SQLite in a temporary directory"
        if storage is None and not backend:  # a database of its own, gone with `workdir`; its key is made beside it
            storage = {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(self.workdir / "marketplace.db"), "SECRETS_KEY": ""}
        self.backend = backend or "sqlite"
        self.env = {
            **os.environ,
            **simulator_settings,
            **(storage or {}),
            "PUBLIC_URL": self.url,
            "SERVE_WORKER": "true",
            "WORKER_POLL_SECONDS": "0.2",  # the simulator shows the callbacks as they happen
            "JOBS_INTERVAL_SECONDS": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def can_bill(self) -> bool:
        """`bill` runs in a process of its own: it cannot see what a memory backend holds."""
        return self.backend != "memory"

    async def start(self) -> None:
        if self.backend == "postgres":
            await self._command("migrate")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([*CLI, "serve", "--port", str(self.port)], env=self.env, cwd=self.workdir,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._failed(f"our server exited ({self.process.returncode}) while starting")
                try:
                    async with session.get(self.url + "/readyz") as reply:
                        if reply.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.1)
        self._failed(f"our server was not ready within {START_SECONDS}s")

    def _failed(self, what: str) -> None:
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-20:] if self.log_path.exists() else []
        print("\n".join(tail), file=sys.stderr)
        raise ConfigError(f"simulate: {what} (its log is above)")

    async def bill(self, installation_id: str) -> str:
        return "`marketplace-provider bill`: " + await self._command("bill", "--installation", installation_id)

    async def _command(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(*CLI, *args, env=self.env, cwd=self.workdir,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ConfigError(f"simulate: `{args[0]}` took more than {COMMAND_SECONDS}s") from None
        text = out.decode(errors="replace").strip()
        if process.returncode != 0:
            raise ConfigError(f"simulate: `{args[0]}` failed: {text.splitlines()[-1] if text else process.returncode}")
        return text.splitlines()[-1] if text else "done"

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        for _ in range(300):  # its graceful shutdown: at most 30 s
            if self.process.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.process.kill()
        self.process.wait(timeout=10)
