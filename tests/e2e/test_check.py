"""`marketplace-provider check`: our own server passes every check (on SQLite and PostgreSQL, and with a running
simulator playing Vercel); a server with planted faults fails exactly those; the command line (`--json`, `--only`,
exit statuses, the one line when the server does not trust the checker, `--print-settings`)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from marketplace_provider.adapters.checker.report import Outcome, Report
from marketplace_provider.adapters.checker.runner import GROUPS, CheckOptions, run_checks
from marketplace_provider.adapters.checker.stand_ins import StandInSettings, load_or_create_key
from marketplace_provider.adapters.cipher import generate_key_text
from marketplace_provider.adapters.simulator.server import Simulator
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.http import create_app
from tests.e2e.test_cli import SCRIPT, free_port
from tests.support.broken_server import FAULTS, BrokenServer
from tests.support.postgres import scratch_database
from tests.support.server import serving

EVERY_CHECK = {f"{name}/{check}" for name, group in GROUPS.items() for check in group.CHECKS}


@pytest.fixture
def stand_ins() -> StandInSettings:
    return StandInSettings(jwks_port=free_port(), vercel_port=free_port())


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "check-key.pem"


@asynccontextmanager
async def our_server(env: dict[str, str], broken_with: Path | None = None) -> AsyncIterator[str]:
    """Our app on 127.0.0.1 with these settings; with planted faults when given the checker's key file."""
    app = create_app(load_settings({"STORAGE_BACKEND": "memory", **env}))
    if broken_with is not None:
        app = BrokenServer(app, load_or_create_key(broken_with), env["INTEGRATION_CLIENT_SECRET"])  # type: ignore[assignment]
    async with serving(app) as url:
        yield url


def outcomes(report: Report) -> dict[str, tuple[Outcome, str]]:
    return {f"{r.group}/{r.check}": (r.outcome, r.reason) for r in report.results}


@asynccontextmanager
async def storage(kind: str, folder: Path) -> AsyncIterator[dict[str, str]]:
    if kind == "sqlite":
        yield {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(folder / "marketplace.db")}
        return
    async with scratch_database() as dsn:
        yield {"STORAGE_BACKEND": "postgres", "DATABASE_URL": dsn, "SECRETS_KEY": generate_key_text()}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_our_server_passes_every_check(kind: str, stand_ins: StandInSettings, keys_file: Path, tmp_path: Path) -> None:
    async with storage(kind, tmp_path) as env, our_server(stand_ins.server_env() | env) as url:
        report = await run_checks(CheckOptions(url, stand_ins, keys_file, wait_seconds=10))
    seen = outcomes(report)
    assert {name: why for name, why in seen.items() if why[0] is not Outcome.PASS} == {}, report.table()
    assert set(seen) == EVERY_CHECK


async def test_a_broken_server_fails_exactly_its_planted_faults(stand_ins: StandInSettings, keys_file: Path) -> None:
    async with our_server(stand_ins.server_env(), broken_with=keys_file) as url:
        report = await run_checks(CheckOptions(url, stand_ins, keys_file, wait_seconds=10))
    seen = outcomes(report)
    failed = {name for name, (outcome, _) in seen.items() if outcome is Outcome.FAIL}
    assert failed == set(FAULTS), report.table()
    assert {outcome for outcome, _ in seen.values()} == {Outcome.PASS, Outcome.FAIL}  # and nothing skipped
    assert set(FAULTS.values()) == {
        "accepts alg: none", "ignores the path's installation", "answers 200 to a forged webhook", "500 on bad JSON",
        "duplicates on retried keys",
    }


async def test_a_running_simulator_can_play_vercel(stand_ins: StandInSettings, keys_file: Path) -> None:
    """`simulate --serve-provider` then `check`: the server trusts the simulator, and the checker works through its
    control endpoints (only the bearer values are out of its sight)."""
    async with Simulator(client_id="oac_simulated", client_secret="simulated-secret") as sim:
        async with our_server(sim.provider_settings()) as url:
            options = CheckOptions(url, stand_ins, keys_file, simulator=sim.url, simulator_client_secret="simulated-secret",
                                   wait_seconds=10)
            report = await run_checks(options)
    not_passed = {name: why for name, why in outcomes(report).items() if why[0] is not Outcome.PASS}
    assert not_passed == {
        "billing/calls-carry-the-access-token": (Outcome.SKIP, "the simulator's recording does not show bearer values")
    }, report.table()


# ---------------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------------


async def check(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        SCRIPT, "check", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=os.environ.copy()
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def flags(stand_ins: StandInSettings, keys_file: Path) -> list[str]:
    return ["--jwks-port", str(stand_ins.jwks_port), "--vercel-port", str(stand_ins.vercel_port),
            "--keys-file", str(keys_file), "--wait", "10"]


async def test_json_and_only(stand_ins: StandInSettings, keys_file: Path) -> None:
    async with our_server(stand_ins.server_env()) as url:
        code, out, err = await check("--base-url", url, *flags(stand_ins, keys_file), "--json", "--only", "auth",
                                     "--only", "webhooks")
    assert code == 0, (out, err)
    shown = json.loads(out)
    assert set(shown) == {"baseUrl", "vercel", "ok", "passed", "failed", "skipped", "seconds", "checks"}
    assert shown["vercel"].startswith("the checker's stand-ins: JWKS http://127.0.0.1:")
    assert (shown["baseUrl"], shown["ok"], shown["failed"], shown["skipped"]) == (url, True, 0, 0)
    assert {c["group"] for c in shown["checks"]} == {"auth", "webhooks"}
    assert shown["passed"] == len(shown["checks"]) == len(GROUPS["auth"].CHECKS) + len(GROUPS["webhooks"].CHECKS)
    assert all(set(c) == {"group", "check", "outcome", "reason", "seconds"} for c in shown["checks"])


async def test_a_failure_exits_1_with_the_table(stand_ins: StandInSettings, keys_file: Path) -> None:
    async with our_server(stand_ins.server_env(), broken_with=keys_file) as url:
        code, out, err = await check("--base-url", url, *flags(stand_ins, keys_file), "--only", "idempotency")
    assert code == 1, (out, err)
    rows = [line.split() for line in out.splitlines()]
    assert ["idempotency", "provision-retried", "fail", "the", "retry", "made", "another", "resource:"] in [r[:8] for r in rows]
    assert "4 passed, 1 failed, 0 skipped" in out


async def test_a_server_that_does_not_trust_the_checker_gets_one_line(
    stand_ins: StandInSettings, keys_file: Path, token_kit: TokenKit
) -> None:
    env = stand_ins.server_env() | {"VERCEL_OIDC_JWKS_URL": token_kit.jwks_url}  # another Vercel's keys
    async with our_server(env) as url:
        code, out, err = await check("--base-url", url, *flags(stand_ins, keys_file))
        json_code, json_out, _ = await check("--base-url", url, *flags(stand_ins, keys_file), "--json")
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"marketplace-provider check: {url} refused the checker's token (401) and never fetched its JWKS")
    assert " ".join(f"{k}={v}" for k, v in stand_ins.server_env().items()) in err
    assert json_code == 2
    assert json.loads(json_out) | {"message": ""} == {
        "ok": False, "error": "not_trusted", "message": "", "settings": stand_ins.server_env()
    }


async def test_print_settings_and_a_server_that_is_not_there(stand_ins: StandInSettings, keys_file: Path) -> None:
    code, out, _ = await check("--print-settings", *flags(stand_ins, keys_file))
    assert (code, out.splitlines()) == (0, [f"{k}={v}" for k, v in stand_ins.server_env().items()])
    nobody = f"http://127.0.0.1:{free_port()}"
    code, out, err = await check("--base-url", nobody, *flags(stand_ins, keys_file))
    assert (code, out) == (2, "")
    assert err.startswith(f"marketplace-provider check: cannot reach {nobody}") and len(err.strip().splitlines()) == 1
    code, _, err = await check(*flags(stand_ins, keys_file))
    assert code == 2 and "--base-url" in err
