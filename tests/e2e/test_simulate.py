"""`simulate`: the simulator drives our real server (a `serve` process, SQLite and PostgreSQL) through a whole life,
install to uninstall with SSO, webhooks and billing, and the recording shows what the server told Vercel; and
`simulate --serve-provider --once` does the same in one command, printing no secret."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import aiohttp

from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.driver import Driver, Options, Step
from marketplace_provider.adapters.simulator.flows import ORDER, run
from marketplace_provider.adapters.simulator.server import Simulator
from marketplace_provider.adapters.simulator.vercel_api import Call
from marketplace_provider.entrypoints.provider_process import ProviderProcess
from tests.e2e.conftest import Backend
from tests.e2e.test_cli import SCRIPT
from tests.e2e.test_cli import run as cli

SECRET = "simulated-client-secret-0123456789"


def bodies(calls: list[Call], method: str, path: str) -> list[dict]:
    return [c.json for c in calls if (c.method, c.path) == (method, path)]


async def test_a_whole_life_through_the_simulator(backend: Backend, tmp_path: Path) -> None:
    steps: list[Step] = []
    async with Simulator(client_id="oac_simulated", client_secret=SECRET) as sim:
        provider = ProviderProcess(sim.provider_settings(), port=0, workdir=str(tmp_path), storage=backend.env)
        await provider.start()
        try:
            async with aiohttp.ClientSession() as session:
                driver = Driver(sim, Api(provider.url, session), Options(bill=provider.bill), steps.append)
                conformed = await run(driver, ["all"])
        finally:
            await provider.stop()
    shown = "\n".join(step.line() for step in steps)
    assert conformed, shown
    assert driver.life.done == list(ORDER), shown
    assert all(c.status is not None and c.status < 300 for c in sim.vercel.calls), [(c.path, c.status) for c in sim.vercel.calls]

    inst, resource = driver.life.installation_id, driver.life.resource_id
    base = f"/v1/installations/{inst}"
    calls = sim.vercel.accepted
    # the invoice life: unpaid A suspends, paid A resumes, overdue B suspends, paid B resumes
    statuses = [b["status"] for b in bodies(calls, "PATCH", f"{base}/resources/{resource}") if "status" in b]
    assert statuses == ["suspended", "ready", "suspended", "ready"], statuses
    notices = [b["notification"] for b in bodies(calls, "PATCH", base) if "notification" in b]
    assert [n and n["level"] for n in notices] == ["error", None, "error", None, "info"], notices
    assert notices[0]["href"].startswith("sso:") and "Payment failed" in notices[0]["title"]
    # billing: the data `bill` queued, the balance of the credits bought, and the finalization after the uninstall
    billed = bodies(calls, "POST", f"{base}/billing")
    assert billed and all({"timestamp", "eod", "period", "billing", "usage"} <= set(b) for b in billed)
    assert next(b["balances"] for b in bodies(calls, "POST", f"{base}/billing/balance")) == [{"currencyValueInCents": 2500}]
    assert [c.path for c in calls if c.path.startswith(base)][-1] == f"{base}/billing/finalize"
    # SSO: the code traded once for an id token, the member's role read
    assert [c.status for c in sim.vercel.calls if c.path == "/v1/integrations/sso/token"] == [200]
    assert any(c.path == f"{base}/member/def456" for c in calls)
    # every call bore the installation's own access token (the simulator refuses any other with 401)
    assert all(c.authorization == f"Bearer {sim.vercel.access_tokens[inst]}" for c in calls if c.path.startswith(base))


async def test_simulate_serve_provider_once_lives_a_whole_life_in_one_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_BACKEND", "DATABASE_URL", "SECRETS_KEY", "PORT")}
    env |= {"INTEGRATION_CLIENT_SECRET": SECRET, "INTEGRATION_CLIENT_ID": "oac_simulated",
            "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = await asyncio.to_thread(
        subprocess.run, [SCRIPT, "simulate", "--serve-provider", "--once", "--port", "0", "--provider-port", "0"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert re.search(r"^done: \d+ step\(s\) conformed, 0 failed", done.stdout, re.M), done.stdout[-2000:]
    for flow in ORDER:
        assert re.search(rf"^  ok    {flow} ", done.stdout, re.M), flow
    for shown in ("INTEGRATION_CLIENT_ID=oac_simulated", "VERCEL_OIDC_JWKS_URL=http://127.0.0.1:", "status=suspended",
                  "status=ready", "notification cleared", "/billing/finalize", "SSO code exchanged"):
        assert shown in done.stdout, shown
    # no secret: the client secret, tokens (JWTs, access tokens), resource secrets (the example's sk_...)
    assert SECRET not in out and "eyJ" not in out and "vca_sim_" not in out
    assert not re.search(r"sk_[A-Za-z0-9_-]{20}", out)
    assert (tmp_path / "cache" / "marketplace-provider" / "simulator-key.pem").stat().st_mode & 0o077 == 0
    assert list(tmp_path.glob("*.db")) == []  # its database lived in a temporary directory


def test_an_unknown_flow_exits_2_with_one_line() -> None:
    done = cli("simulate", "run", "dance")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown flow 'dance'" in done.stderr
