"""The provider-side actions as the installed commands, run as processes on a SQLite file: each records what it
says (text or --json), `worker --once` delivers each call to the FakeVercel once; an unknown id or bad input exits 1
with one line and records nothing; a secret never appears in any output."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.domain.resources import ResourceStatus
from tests.e2e.conftest import Backend, sqlite_backend
from tests.e2e.test_cli import SCRIPT, run
from tests.e2e.test_worker import worker_env
from tests.worker.conftest import an_installation
from tests.worker.test_jobs import a_resource

INST = "icfg_cli_actions"
BASE = f"/v1/installations/{INST}"
SECRETS = ("s3cret-dotenv", "s3cret-json", "s3cret-import", "redis://x")  # the seeded resource's, too


async def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = await asyncio.to_thread(
        subprocess.run, [SCRIPT, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )
    for secret in SECRETS:
        assert secret not in done.stdout and secret not in done.stderr, (args, done.stdout, done.stderr)
    return done


async def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = await cli(env, *args, stdin=stdin)
    assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    return done


async def refused(env: dict[str, str], *args: str, stdin: str | None = None, reason: str = "") -> None:
    done = await cli(env, *args, stdin=stdin)
    assert done.returncode == 1, (args, done.returncode, done.stdout, done.stderr)
    assert done.stdout == "" and done.stderr.count("\n") == 1 and reason in done.stderr, (args, done.stderr)


@pytest.fixture
async def env(fake: FakeVercel, tmp_path: Path) -> dict[str, str]:
    backend: Backend = await sqlite_backend(tmp_path / "actions.db")
    try:
        async with backend.storage.unit_of_work() as uow:
            await uow.installations.save(an_installation(INST))
            await uow.resources.add(a_resource(INST, "res_a", status=ResourceStatus.PENDING))
            await uow.commit()
    finally:
        await backend.storage.close()
    fake.resources["res_a"] = {"id": "res_a", "name": "res_a", "productId": "acme-kv", "status": "pending"}
    return worker_env(fake, backend, LOG_LEVEL="WARNING")


async def test_each_action_is_recorded_then_delivered_once(env: dict[str, str], fake: FakeVercel, tmp_path: Path) -> None:
    shown = json.loads(
        (await ok(env, "notify", INST, "--level", "warn", "--title", "Almost full", "--href", "/dashboard/usage", "--json")).stdout
    )
    assert shown == {
        "installationId": INST,
        "notification": {"level": "warn", "title": "Almost full", "message": None,
                         "href": "sso:http://127.0.0.1:8000/dashboard/usage"},
    }
    text = (await ok(env, "notify", INST, "--resource", "res_a", "--title", "Maintenance", "--message", "At 02:00")).stdout
    assert text == f"notification set on resource res_a of installation {INST}; the worker tells Vercel\n"
    status = json.loads((await ok(env, "resource", "status", INST, "res_a", "ready", "--json")).stdout)
    assert (status["resourceId"], status["status"], status["secrets"]) == ("res_a", "ready", ["KV_URL"])
    dotenv = '# rotated by ops\nexport KV_URL="redis://s3cret-dotenv"\nKV_TOKEN=s3cret-dotenv-token # new\n'
    pushed = json.loads((await ok(env, "resource", "secrets", INST, "res_a", "--file", "-", "--json", stdin=dotenv)).stdout)
    assert (pushed["pushed"], pushed["partial"], pushed["secrets"]) == (["KV_URL", "KV_TOKEN"], False, ["KV_URL", "KV_TOKEN"])
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"KV_TOKEN": "s3cret-json"}))
    text = (await ok(env, "resource", "secrets", INST, "res_a", "--file", str(partial), "--partial")).stdout
    assert text == f"resource res_a of {INST}: some secrets (partial) pushed (KV_TOKEN); the worker tells Vercel\n"
    imported = {
        "resource_id": "res_imp", "product_id": "acme-kv", "name": "made-by-ops", "billing_plan_id": "pro",
        "metadata": {"region": "fra1"}, "ownership": "linked", "secrets": {"KV_URL": "redis://s3cret-import"},
    }
    shown = json.loads((await ok(env, "import", INST, "--file", "-", "--json", stdin=json.dumps(imported))).stdout)
    assert (shown["resourceId"], shown["billingPlanId"], shown["status"], shown["secrets"]) == ("res_imp", "pro", "ready", ["KV_URL"])
    assert (await ok(env, "event", INST)).stdout == f"installation {INST}: change event queued; the worker tells Vercel\n"
    assert json.loads((await ok(env, "event", INST, "--resource", "res_a", "--json")).stdout) == {
        "installationId": INST, "resourceId": "res_a"
    }
    assert json.loads((await ok(env, "bill", "--installation", INST, "--json")).stdout) == {"queued": 1}
    await ok(env, "notify", INST, "--clear")
    assert json.loads((await ok(env, "outbox", "--json")).stdout) == {"pending": 10, "retrying": 0, "dead": 0}
    assert fake.calls == []  # queued only: the worker delivers

    await ok(env, "worker", "--once")
    delivered = [(c.method, c.path) for c in fake.accepted if not c.path.startswith(f"{BASE}/billing")]
    assert delivered == [
        ("PATCH", BASE),
        ("PATCH", f"{BASE}/resources/res_a"),
        ("PATCH", f"{BASE}/resources/res_a"),
        ("PUT", f"{BASE}/resources/res_a/secrets"),
        ("PUT", f"{BASE}/resources/res_a/secrets"),
        ("PUT", f"{BASE}/resources/res_imp"),
        ("POST", f"{BASE}/events"),
        ("POST", f"{BASE}/events"),
        ("PATCH", BASE),
    ]
    bodies = [c.json for c in fake.accepted if not c.path.startswith(f"{BASE}/billing")]
    assert bodies[1]["notification"] == {"level": "info", "title": "Maintenance", "message": "At 02:00"}
    assert bodies[3] == {"secrets": [{"name": "KV_URL", "value": "redis://s3cret-dotenv"},
                                     {"name": "KV_TOKEN", "value": "s3cret-dotenv-token"}], "partial": False}
    assert bodies[4] == {"secrets": [{"name": "KV_TOKEN", "value": "s3cret-json"}], "partial": True}
    assert bodies[5]["ownership"] == "linked" and bodies[5]["billingPlan"]["id"] == "pro"
    assert bodies[8] == {"notification": None}
    assert any(c.path == f"{BASE}/billing" for c in fake.accepted)  # bill's (the worker's hourly job may add one)
    assert json.loads((await ok(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 0}


async def test_unknown_ids_and_bad_input_exit_1_with_one_line_and_record_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    unknown = "icfg_unknown"
    await refused(env, "notify", unknown, "--title", "x", reason=f"installation {unknown} not found")
    await refused(env, "notify", INST, "--resource", "res_unknown", "--title", "x", reason="resource res_unknown not found")
    await refused(env, "notify", INST, reason="--title")
    await refused(env, "notify", INST, "--level", "loud", "--title", "x", reason="--level")
    await refused(env, "notify", INST, "--clear", "--title", "x", reason="--clear")
    await refused(env, "notify", INST, "--title", "x", "--href", "javascript:alert(1)", reason="notification.href")
    await refused(env, "resource", "status", INST, "res_a", "uninstalled", reason="status")
    await refused(env, "resource", "status", INST, "res_a", "sleepy", reason="status")
    await refused(env, "resource", "status", INST, "res_unknown", "ready", reason="resource res_unknown not found")
    await refused(env, "resource", "status", unknown, "res_a", "ready", reason=f"installation {unknown} not found")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", str(tmp_path / "missing.env"), reason="--file")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", "-", stdin="s3cret-dotenv without a name\n", reason="line 1")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", "-", stdin="1KV=s3cret-dotenv\n", reason="secrets[0].name")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", "-", stdin="", reason="secrets")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", "-", stdin='[{"name": "A", "value": 5}]', reason="secrets")
    await refused(env, "resource", "secrets", INST, "res_a", "--file", "-", stdin='{"A": "s3cret-json"', reason="JSON")
    await refused(env, "resource", "secrets", unknown, "res_a", "--file", "-", stdin="A=s3cret-dotenv", reason="not found")
    good = {"product_id": "acme-kv", "name": "n", "billing_plan_id": "pro", "secrets": {"A": "s3cret-import"}}
    await refused(env, "import", INST, "--file", "-", stdin=json.dumps({**good, "product_id": "nope"}), reason="product_id")
    await refused(env, "import", INST, "--file", "-", stdin=json.dumps({**good, "billing_plan_id": "queue-pro"}), reason="billing_plan_id")
    await refused(env, "import", INST, "--file", "-", stdin=json.dumps({**good, "status": "uninstalled"}), reason="status")
    await refused(env, "import", INST, "--file", "-", stdin=json.dumps({"name": "n"}), reason="product_id")
    await refused(env, "import", INST, "--file", "-", stdin="[1, 2]", reason="JSON object")
    await refused(env, "import", unknown, "--file", "-", stdin=json.dumps(good), reason=f"installation {unknown} not found")
    await refused(env, "event", unknown, reason=f"installation {unknown} not found")
    await refused(env, "event", INST, "--resource", "res_unknown", reason="resource res_unknown not found")
    await refused(env, "bill", "--installation", INST, "--installation", unknown, reason=f"installation {unknown} not found")
    await refused(env, "outbox", "retry", "obx_unknown", reason="obx_unknown")
    assert json.loads((await ok(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 0}


def test_help_for_every_action_command() -> None:
    for command in (["notify"], ["resource"], ["resource", "status"], ["resource", "secrets"], ["import"], ["event"], ["bill"]):
        done = run(*command, "--help")
        assert done.returncode == 0 and done.stdout.startswith("usage: marketplace-provider " + " ".join(command)), command
    assert "--partial" in run("resource", "secrets", "--help").stdout
    assert "--clear" in run("notify", "--help").stdout
