"""The PostgreSQL example (examples/postgres-databases) as an integrator ships it: installed with pip, named in
PROVISIONER and USAGE_SOURCE, and served by the kit's own `marketplace-provider serve` process, which makes real
databases on a private PostgreSQL cluster that checks passwords (the shared test server trusts every login, so
only here can a rotated-away password be seen refused). Everything goes through the Partner API; the cluster is
looked at with its superuser, never through the code under test. The kit's storage runs on SQLite and on
PostgreSQL (a scratch database on the shared server). A second test provisions asynchronously
(EXAMPLE_POSTGRES_ASYNC: finished through the provider-side actions) and rotates a password with the example's
own `example-postgres rotate`, a process of its own beside the server."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
import pytest

from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from tests.e2e.conftest import Backend, serve_process, tail
from tests.e2e.test_cli import free_port
from tests.e2e.test_worker import eventually, exit_code, kill
from tests.http.conftest import Installation, new_installation_id
from tests.support.private_postgres import PrivateCluster, private_postgres

if TYPE_CHECKING:  # the `fake` fixture's class (tests/e2e/conftest.py)
    from marketplace_provider.adapters.simulator.vercel_api import FakeVercel

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "postgres-databases"
PROVISIONER = "example_postgres:PostgresProvisioner"
USAGE_SOURCE = "example_postgres:DatabaseSizeUsage"
MAX_DATABASES = 2
SECRET_NAMES = {"DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}
CONNECT_SECONDS = 10
OPS_SECONDS = 60  # one `example-postgres` command


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[PrivateCluster]:
    async with private_postgres() as made:
        yield made


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip, offline, into a folder of its own (a PYTHONPATH entry for `serve`).

    Built from a copy of its folder: an in-tree build would leave build/ and an .egg-info in the repository."""
    work = tmp_path_factory.mktemp("example")
    source, site = work / "source", work / "site"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__", ".*")
    )
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--no-input",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=180,
    )
    assert installed.returncode == 0, f"pip could not install the example:\n{installed.stdout}\n{installed.stderr}"
    found = subprocess.run(
        [sys.executable, "-c", "import example_postgres; print(example_postgres.__file__)"],
        env={**os.environ, "PYTHONPATH": str(site)}, cwd=work, capture_output=True, text=True, timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(site), found.stdout  # the installed copy, not the sources
    return site


@dataclass
class Admin:
    url: str  # the CREATEDB/CREATEROLE role the README asks for, with a password
    prefix: str  # EXAMPLE_POSTGRES_PREFIX of this test: its names never meet another test's


@pytest.fixture
async def admin(cluster: PrivateCluster) -> AsyncIterator[Admin]:
    name, password, prefix = f"e2e_admin_{secrets.token_hex(4)}", secrets.token_urlsafe(24), f"e{secrets.token_hex(4)}_"
    superuser = await asyncpg.connect(cluster.url(), timeout=CONNECT_SECONDS)
    try:
        await superuser.execute(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
        yield Admin(url=cluster.url(name, password), prefix=prefix)
    finally:
        try:
            for row in await superuser.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix):
                await superuser.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            for row in await superuser.fetch("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", prefix):
                await superuser.execute(f'DROP ROLE IF EXISTS "{row["rolname"]}"')
            await superuser.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
            await superuser.execute(f"DROP ROLE IF EXISTS {name}")
        finally:
            await superuser.close()


async def on_server(cluster: PrivateCluster) -> tuple[set[str], set[str]]:
    """Every database and every role of the private cluster, as its superuser sees them."""
    conn = await asyncpg.connect(cluster.url(), timeout=CONNECT_SECONDS)
    try:
        databases = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        roles = {r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles")}
    finally:
        await conn.close()
    return databases, roles


def secrets_of(reply: Reply) -> dict[str, str]:
    return {s["name"]: s["value"] for s in reply.json["secrets"]}


async def leave_a_note(env: dict[str, str], note: str) -> None:
    """Log in with the resource's DATABASE_URL, as its own role in its own database, and keep a row there."""
    conn = await asyncpg.connect(env["DATABASE_URL"], timeout=CONNECT_SECONDS)
    try:
        await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes VALUES (1, $1)", note)
        assert await conn.fetchval("SELECT body FROM notes") == note
        assert await conn.fetchval("SELECT current_user") == env["PGUSER"]
        assert await conn.fetchval("SELECT current_database()") == env["PGDATABASE"]
    finally:
        await conn.close()


async def only_the_new_password_works(old: dict[str, str], new: dict[str, str], note: str) -> None:
    """The rotated-away password is refused at login; the new one opens the same database, the note in it."""
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(old["DATABASE_URL"], timeout=CONNECT_SECONDS)
    conn = await asyncpg.connect(new["DATABASE_URL"], timeout=CONNECT_SECONDS)
    try:
        assert await conn.fetchval("SELECT body FROM notes WHERE id = 1") == note
    finally:
        await conn.close()


async def listed(installed: Installation) -> list[str]:
    """The ids of the installation's live resources, as the kit lists them to Vercel."""
    reply = await installed.api.get(installed.path + "/resources", token=installed.system, style="system")
    assert reply.status == 200, reply.body
    return sorted(r["id"] for r in reply.json["resources"])


async def provision(installed: Installation, **metadata: str) -> Reply:
    return await installed.provision(
        productId="postgres", billingPlanId="postgres-free", name="app-db", metadata=dict(metadata)
    )


def billed_sizes(fake: FakeVercel, installation_id: str) -> dict[str, dict]:
    """resource id -> its "Database size" usage, from the billing data Vercel accepted for the installation."""
    sizes = {}
    for call in fake.accepted:
        if (call.method, call.path) == ("POST", f"/v1/installations/{installation_id}/billing"):
            for usage in call.json.get("usage", []):
                if usage.get("name") == "Database size":
                    sizes[usage.get("resourceId")] = usage
    return sizes


def serve_env(
    backend: Backend, fake: FakeVercel, token_kit: TokenKit, example_site: Path, admin: Admin, **extra: str
) -> dict[str, str]:
    """The environment of `serve` with the installed example plugged in (and of its `example-postgres` command)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMPLE_POSTGRES_")}
    for name in ("PROVISIONER", "USAGE_SOURCE", "SERVE_WORKER", "MARKETPLACE_CONFIG", "PRODUCTS_FILE"):
        env.pop(name, None)
    return env | {
        **backend.env,
        "PYTHONPATH": str(example_site),
        "PROVISIONER": PROVISIONER,
        "USAGE_SOURCE": USAGE_SOURCE,
        "PRODUCTS_FILE": str(EXAMPLE / "products.toml"),
        "EXAMPLE_POSTGRES_ADMIN_URL": admin.url,
        "EXAMPLE_POSTGRES_PREFIX": admin.prefix,
        "EXAMPLE_POSTGRES_MAX_DATABASES": str(MAX_DATABASES),
        "INTEGRATION_CLIENT_ID": AUDIENCE,
        "INTEGRATION_CLIENT_SECRET": "test-client-secret",
        "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
        "VERCEL_API_URL": fake.url,
        "LOG_LEVEL": "INFO",
        "WORKER_POLL_SECONDS": "0.1",
        "JOBS_INTERVAL_SECONDS": "3600",
        **extra,
    }


async def test_the_postgres_example_served_by_the_kit_sells_real_databases(
    backend: Backend, fake: FakeVercel, token_kit: TokenKit, cluster: PrivateCluster, example_site: Path,
    admin: Admin, tmp_path: Path,
) -> None:
    # The hourly billing job runs once per installation and hour, at its first pass after the installation
    # exists. A pass between the install and the provision would bill nothing for this hour, so the first
    # server runs its jobs only at start-up (before anything exists: JOBS_INTERVAL_SECONDS 3600) and the second,
    # started once a database is live, every half second.
    env = serve_env(backend, fake, token_kit, example_site, admin)
    logs = [tmp_path / "serve-1.log", tmp_path / "serve-2.log"]
    processes: list[subprocess.Popen] = []
    try:
        port = free_port()
        processes.append(await serve_process(env, port, tmp_path, logs[0]))
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)

            # /readyz names the example's parts, and warns of nothing (the kit's example provisioner is not used)
            ready = await api.get("/readyz")
            assert ready.status == 200, ready.body
            assert ready.json["provisioner"] == "example_postgres.provisioner:PostgresProvisioner"
            assert ready.json["usageSource"] == "example_postgres.usage:DatabaseSizeUsage"
            assert ready.json["warnings"] == []

            installed = Installation(new_installation_id(), api, token_kit)
            assert (await installed.upsert()).status == 204
            server_before = await on_server(cluster)

            # provision: a working database, with the secrets Vercel puts in the user's project
            created = await provision(installed)
            assert created.status == 200, created.body
            first = created.json["id"]
            old = secrets_of(created)
            assert set(old) == SECRET_NAMES
            assert (old["PGHOST"], old["PGPORT"]) == ("127.0.0.1", str(cluster.port))
            await leave_a_note(old, "hello")
            databases, roles = await on_server(cluster)
            assert (databases - server_before[0], roles - server_before[1]) == ({old["PGDATABASE"]}, {old["PGUSER"]})

            # rotate: the old password is refused at login at once, the new one opens the same database
            rotated = await api.post(
                f"{installed.path}/resources/{first}/secrets/rotate", token=installed.admin, style="user",
                body={"reason": "leaked", "delayOldSecretsExpirationHours": 0},
            )
            assert rotated.status == 200, rotated.body
            assert rotated.json["sync"] is True
            new = secrets_of(rotated)
            assert new["PGPASSWORD"] != old["PGPASSWORD"]
            assert {k: new[k] for k in ("PGUSER", "PGDATABASE")} == {k: old[k] for k in ("PGUSER", "PGDATABASE")}
            await only_the_new_password_works(old, new, "hello")

            # names PostgreSQL would reject (or quietly cut short): 400 naming the field; nothing made or recorded
            before = await on_server(cluster)
            for bad in ("Shop-DB", "shop; DROP DATABASE postgres", 'sh"op', "x" * 64):
                refused = await provision(installed, database=bad)
                assert refused.status == 400, (bad, refused.status, refused.body)
                # the catalog's pattern refuses it before the provisioner's own check (which is the same)
                assert [f["key"] for f in refused.json["error"]["fields"]] == ["metadata.database"], refused.body
            assert await on_server(cluster) == before
            assert await listed(installed) == [first]

            # a chosen name: fills the quota (2); a name another resource holds is a conflict, and one more is
            # refused while the server is full; neither leaves a role, a database or a resource behind
            shop = await provision(installed, database="shop")
            assert shop.status == 200, shop.body
            second = shop.json["id"]
            assert secrets_of(shop)["PGDATABASE"] == f"{admin.prefix}shop"
            full = await on_server(cluster)
            taken = await provision(installed, database="shop")
            assert taken.status == 409, taken.body
            assert taken.json["error"]["code"] == "conflict"
            over = await provision(installed)
            assert over.status == 422, over.body
            assert over.json["error"]["code"] == "unprocessable"
            assert "full" in over.json["error"]["message"] or "limit" in over.json["error"]["message"], over.body
            assert await on_server(cluster) == full
            assert await listed(installed) == sorted([first, second])

            # delete: the database and its role leave the server
            shop_env = secrets_of(shop)
            deleted = await api.delete(f"{installed.path}/resources/{second}", token=installed.admin, style="user")
            assert deleted.status == 204, deleted.body
            databases, roles = await on_server(cluster)
            assert shop_env["PGDATABASE"] not in databases and shop_env["PGUSER"] not in roles
            assert await listed(installed) == [first]

            processes[0].send_signal(signal.SIGTERM)  # a clean stop: the plug-ins close their pools
            assert await exit_code(processes[0], 30) in (0, -signal.SIGTERM)

            # usage: a new server's in-process worker bills the live database's size with the example's source;
            # this process knows nothing of the first one's resources but what the kit stored
            port = free_port()
            processes.append(await serve_process({**env, "JOBS_INTERVAL_SECONDS": "0.5"}, port, tmp_path, logs[1]))
            api = Api(f"http://127.0.0.1:{port}", session)
            installed = Installation(installed.id, api, token_kit)
            await eventually(
                lambda: first in billed_sizes(fake, installed.id), 30, processes[1:], logs[1:],
                "Vercel received the database size",
            )
            usage = billed_sizes(fake, installed.id)
            assert set(usage) == {first}  # the deleted resource is not billed
            assert (usage[first]["type"], usage[first]["units"]) == ("total", "MB")
            assert float(usage[first]["periodValue"]) > 1  # even an empty database has a few MB

            deleted = await api.delete(f"{installed.path}/resources/{first}", token=installed.system, style="system")
            assert deleted.status == 204, deleted.body
            assert await listed(installed) == []
        assert await on_server(cluster) == server_before  # every database and role it made is gone
    except BaseException:
        for log in logs:
            print(f"--- {log.name}:\n{tail(log)}")
        raise
    finally:
        for process in processes:
            kill(process)


class KnownToVercel(dict):
    """FakeVercel's resources when Vercel made each one it provisioned through us (as the real one does): an
    Update Resource or a secrets push for a resource it was not told of finds it all the same."""

    def __missing__(self, resource_id: str) -> dict:
        self[resource_id] = {"id": resource_id, "name": resource_id, "productId": "postgres", "status": "pending"}
        return self[resource_id]

    def get(self, resource_id: str, default: object = None) -> dict:  # type: ignore[override]
        return self[resource_id]


def sent(fake: FakeVercel, method: str, path: str) -> list[dict]:
    """The bodies of the calls Vercel accepted with this method and path, in order."""
    return [call.json for call in fake.accepted if (call.method, call.path) == (method, path)]


def secrets_in(body: dict) -> dict[str, str]:
    """name -> value of the secrets in the body of an Update Resource or a secrets push."""
    return {s["name"]: s["value"] for s in body["secrets"]}


async def example_postgres(env: dict[str, str], cwd: Path, *args: str, script: Path | None = None) -> CompletedProcess:
    """`python -m example_postgres.ops ...` (or the installed console script), off the event loop."""
    command = [str(script)] if script is not None else [sys.executable, "-m", "example_postgres.ops"]
    return await asyncio.to_thread(
        subprocess.run, [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=OPS_SECONDS
    )


async def test_the_example_finishes_provisioning_later_and_rotates_from_the_providers_side(
    backend: Backend, fake: FakeVercel, token_kit: TokenKit, cluster: PrivateCluster, example_site: Path,
    admin: Admin, tmp_path: Path,
) -> None:
    fake.resources = KnownToVercel()
    env = serve_env(backend, fake, token_kit, example_site, admin, EXAMPLE_POSTGRES_ASYNC="true")
    log = tmp_path / "serve.log"
    process: subprocess.Popen | None = None
    try:
        port = free_port()
        process = await serve_process(env, port, tmp_path, log)
        async with aiohttp.ClientSession() as session:
            installed = Installation(new_installation_id(), Api(f"http://127.0.0.1:{port}", session), token_kit)
            assert (await installed.upsert()).status == 204
            server_before = await on_server(cluster)

            # EXAMPLE_POSTGRES_ASYNC: `pending` at once, no secrets; the database is made in the background and
            # Vercel gets the resource ready with its secrets in one Update Resource call (FinishProvisioning)
            created = await provision(installed)
            assert created.status == 200, created.body
            assert created.json["status"] == "pending" and created.json.get("secrets", []) == [], created.body
            rid = created.json["id"]
            resource_path = f"{installed.path}/resources/{rid}"
            await eventually(
                lambda: sent(fake, "PATCH", resource_path), 30, [process], [log], "Vercel got the resource finished"
            )
            [finished] = sent(fake, "PATCH", resource_path)
            assert finished["status"] == "ready"
            old = secrets_in(finished)
            assert set(old) == SECRET_NAMES
            await leave_a_note(old, "kept")
            read = await installed.resource(rid)
            assert read.status == 200 and read.json["status"] == "ready", read.body

            # the provider rotates the password itself: a separate process on the same storage records the push,
            # which serve's in-process worker delivers; the command prints names, never values
            rotated = await example_postgres(env, tmp_path, "rotate", installed.id, rid)
            assert rotated.returncode == 0, rotated.stderr
            assert all(name in rotated.stdout for name in SECRET_NAMES), rotated.stdout
            secrets_path = f"{resource_path}/secrets"
            await eventually(
                lambda: sent(fake, "PUT", secrets_path), 30, [process], [log], "Vercel got the rotated secrets"
            )
            [pushed] = sent(fake, "PUT", secrets_path)
            new = secrets_in(pushed)
            assert set(new) == SECRET_NAMES and new["PGPASSWORD"] != old["PGPASSWORD"]
            for value in (old["PGPASSWORD"], new["PGPASSWORD"], old["DATABASE_URL"], new["DATABASE_URL"]):
                assert value not in rotated.stdout + rotated.stderr
            await only_the_new_password_works(old, new, "kept")

            # unknown ids, through the console script pip installed: exit 1 and one line
            unknown = await example_postgres(
                env, tmp_path, "rotate", installed.id, "res_unknown", script=example_site / "bin" / "example-postgres"
            )
            assert unknown.returncode == 1, (unknown.stdout, unknown.stderr)
            assert unknown.stdout == "" and len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
            assert "not found" in unknown.stderr, unknown.stderr

            deleted = await installed.api.delete(resource_path, token=installed.admin, style="user")
            assert deleted.status == 204, deleted.body
        assert await on_server(cluster) == server_before
        process.send_signal(signal.SIGTERM)
        assert await exit_code(process, 30) in (0, -signal.SIGTERM)
    except BaseException:
        print(f"--- {log.name}:\n{tail(log)}")
        raise
    finally:
        if process is not None:
            kill(process)
