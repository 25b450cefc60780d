"""The examples in deploy/ run as written: each command the systemd units and the Procfile name is taken from the
file, its environment substituted the way systemd (or the platform's shell) would, and started against a scratch
SQLite file and a fresh PostgreSQL database. Migrations exit 0, servers answer /healthz and /readyz, and every
process exits 0 on its stop signal within the time the file allows. So a typo in a deploy file fails here."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.config.settings import Settings
from tests.e2e.conftest import tail
from tests.e2e.test_cli import free_port
from tests.support.postgres import ADMIN_URL, with_database

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("marketplace-provider.service", "marketplace-provider-worker.service")
# Where the units expect things on a server -> where they are here.
INSTALLED = {"/opt/marketplace-provider/venv/bin/": f"{Path(sys.executable).parent}/", "/etc/marketplace-provider/": f"{DEPLOY}/"}
VARIABLES = {name.upper() for name in Settings.__struct_fields__} | {"PORT", "MARKETPLACE_CONFIG"}
# The directives these units may use (systemd.unit, systemd.service, systemd.exec, systemd.kill, systemd.special):
# one misspelt would be ignored by systemd with a mere warning.
DIRECTIVES = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "PartOf"},
    "Service": {
        "Type", "User", "Group", "StateDirectory", "RuntimeDirectory", "WorkingDirectory", "EnvironmentFile",
        "Environment", "ExecStartPre", "ExecStart", "ExecReload", "KillSignal", "KillMode", "TimeoutStopSec",
        "TimeoutStartSec", "Restart", "RestartSec", "NoNewPrivileges", "PrivateTmp", "ProtectSystem", "ProtectHome",
        "ReadWritePaths", "LimitNOFILE", "UMask",
    },
    "Install": {"WantedBy", "RequiredBy", "Alias"},
}


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, directive, value) in file order; directives may repeat (ExecStartPre=, Environment=)."""
    section, entries = "", []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            assert section in DIRECTIVES, f"{path.name}:{number}: unknown section [{section}]"
            continue
        key, sep, value = line.partition("=")
        assert sep and not line.endswith("\\"), f"{path.name}:{number}: not one Directive=value line: {raw!r}"
        assert key.strip() in DIRECTIVES[section], f"{path.name}:{number}: unknown directive {key!r} in [{section}]"
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(entries: list[tuple[str, str, str]], key: str) -> list[str]:
    return [value for _, k, value in entries if k == key]


def installed(text: str) -> str:
    for there, here in INSTALLED.items():
        text = text.replace(there, here)
    return text


def env_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile=: VARIABLE=value lines, comments, optional quotes."""
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path.name}: not VARIABLE=value: {raw!r}"
        found[key] = value.strip().strip("\"'")
    return found


def systemd_command(line: str, env: dict[str, str]) -> list[str]:
    """An Exec*= line as systemd runs it: `${X}` replaced inside a word, a lone `$X` split into words."""
    words = []
    for word in shlex.split(installed(line.lstrip("-@:+!"))):
        for name in re.findall(r"\$\{?(\w+)\}?", word):
            assert name in env, f"`{line}` uses ${name}, which nothing sets"
        if re.fullmatch(r"\$\w+", word):
            words.extend(env[word[1:]].split())
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    assert Path(words[0]).is_absolute(), f"systemd needs an absolute path: {line}"
    return words


def unit_environment(entries: list[tuple[str, str, str]], storage: dict[str, str], port: int) -> dict[str, str]:
    """What the service gets: a bare environment as systemd gives, Environment=, then EnvironmentFile= (which
    wins), then the test's storage, port and Vercel (nothing listens there: no call leaves this machine)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    for value in values(entries, "Environment"):
        env.update(assignment.split("=", 1) for assignment in shlex.split(value))  # type: ignore[arg-type]
    for value in values(entries, "EnvironmentFile"):
        path = Path(installed(value.lstrip("-")))
        assert path.is_file(), f"EnvironmentFile={value} is not shipped in deploy/"
        env.update(env_file(path))
    dead = f"http://127.0.0.1:{free_port()}"
    return {**env, **storage, "PORT": str(port), "VERCEL_OIDC_JWKS_URL": f"{dead}/jwks", "VERCEL_API_URL": dead}


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match, f"a duration in seconds or minutes, not {text!r}"
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


@asynccontextmanager
async def empty_database() -> AsyncIterator[str]:
    """A PostgreSQL database with nothing in it (no schema: migrate must make it), dropped afterwards."""
    name = f"mp_deploy_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":  # relative: in the working directory; its key is generated beside it
        yield {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": "marketplace.db", "SECRETS_KEY": ""}
    else:
        async with empty_database() as dsn:
            yield {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()}


async def run_to_end(command: list[str] | str, env: dict[str, str], cwd: Path, *, shell: bool = False) -> str:
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, shell=shell,
        executable="/bin/bash" if shell else None,
    )
    assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


async def started(command: list[str] | str, env: dict[str, str], cwd: Path, log: Path, *, shell: bool = False) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, shell=shell,
            executable="/bin/bash" if shell else None, start_new_session=True,
        )


async def until(process: subprocess.Popen, log: Path, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await condition():
            return
        assert process.poll() is None, f"exited ({process.returncode}) before {what}:\n{tail(log)}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {what} within 60 s:\n{tail(log)}")


async def answers_health(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/readyz"):
                async with session.get(f"http://127.0.0.1:{port}{path}") as reply:
                    if reply.status != 200:
                        return False
        return True
    except aiohttp.ClientError:
        return False


async def stopped(process: subprocess.Popen, signum: int, within: float, log: Path) -> None:
    """Send the stop signal to the whole process group, as systemd (KillMode=mixed: the main process) or a
    platform would; the process must exit 0 in time."""
    os.killpg(process.pid, signum)
    deadline = time.monotonic() + within
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise AssertionError(f"still running {within:g} s after {signal.Signals(signum).name}:\n{tail(log)}")
    assert process.returncode == 0, f"exited {process.returncode} on {signal.Signals(signum).name}:\n{tail(log)}"


def kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_the_shipped_settings_name_only_real_variables() -> None:
    for name in env_file(DEPLOY / "marketplace-provider.env"):
        assert name in VARIABLES, f"deploy/marketplace-provider.env sets {name}, which nothing reads"
    for unit in UNITS:
        for value in values(unit_entries(DEPLOY / unit), "Environment"):
            for assignment in shlex.split(value):
                assert assignment.split("=", 1)[0] in VARIABLES, f"{unit}: Environment={assignment}"


@pytest.mark.parametrize("unit", UNITS)
async def test_each_systemd_unit_migrates_starts_and_stops_cleanly(
    unit: str, storage: dict[str, str], tmp_path: Path
) -> None:
    entries = unit_entries(DEPLOY / unit)
    port = free_port()
    env = unit_environment(entries, storage, port)
    assert values(entries, "Type") == ["exec"] and len(values(entries, "ExecStart")) == 1
    (migrate,) = values(entries, "ExecStartPre")
    assert "applied" in await run_to_end(systemd_command(migrate, env), env, tmp_path)  # a fresh database
    (start,) = values(entries, "ExecStart")
    command = systemd_command(start, env)
    log = tmp_path / "service.log"
    process = await started(command, env, tmp_path, log)
    try:
        if command[1] == "serve":
            assert f"--port {port}" in shlex.join(command)  # ${PORT} substituted
            await until(process, log, lambda: answers_health(port), "answering /healthz and /readyz")
        else:
            assert command[1:] == ["worker"]

            async def worker_started() -> bool:
                return "worker started" in log.read_text()

            await until(process, log, worker_started, "the worker started")
        kill_signal = getattr(signal, (values(entries, "KillSignal") or ["SIGTERM"])[0])
        await stopped(process, kill_signal, seconds(values(entries, "TimeoutStopSec")[0]), log)
    finally:
        kill_group(process)
    assert "Traceback" not in log.read_text(), tail(log)


def procfile() -> dict[str, str]:
    kinds = {}
    for raw in (DEPLOY / "Procfile").read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            kind, sep, command = raw.partition(":")
            assert sep and re.fullmatch(r"[a-z]+", kind), f"Procfile: not `type: command`: {raw!r}"
            kinds[kind] = command.strip()
    return kinds


async def test_the_procfile_releases_serves_on_port_and_works(storage: dict[str, str], tmp_path: Path) -> None:
    """As a platform runs it: each line through bash with the app's scripts on PATH and PORT set, the release
    command before the others; SIGTERM to every process of a type when it stops (it then has 30 s)."""
    kinds = procfile()
    assert set(kinds) == {"release", "web", "worker"}
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PORT": str(port),
        "VERCEL_OIDC_JWKS_URL": f"{dead}/jwks", "VERCEL_API_URL": dead, **storage,
    }
    assert "applied" in await run_to_end(kinds["release"], env, tmp_path, shell=True)  # a fresh database
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    web = await started(kinds["web"], env, tmp_path, web_log, shell=True)
    worker = await started(kinds["worker"], env, tmp_path, worker_log, shell=True)
    try:
        await until(web, web_log, lambda: answers_health(port), "answering /healthz and /readyz on $PORT")
        assert f"http://0.0.0.0:{port}" in web_log.read_text()  # every interface: the platform's router reaches it

        async def worker_started() -> bool:
            return "worker started" in worker_log.read_text()

        await until(worker, worker_log, worker_started, "the worker started")
        await stopped(web, signal.SIGTERM, 30, web_log)
        await stopped(worker, signal.SIGTERM, 30, worker_log)
    finally:
        kill_group(web)
        kill_group(worker)
