"""What `marketplace-provider serve` writes to its log, read from the real process's output: forged lines stay
inside the line they came in, every line is in our format (uvicorn's too), the levels and the JSON format hold,
and `--workers 2` logs the same way from the server processes it starts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import aiohttp

from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from tests.e2e.conftest import serve_process, tail
from tests.e2e.test_cli import free_port

FORGED_PATH = "/dashboard/checks/x%0a2026-11-29%2016:00:01,000%20CRITICAL%20forged"
FORGED_LINE = "2026-11-29 16:00:01,000 CRITICAL forged"
ESCAPE_PATH = "/dashboard/checks/y%1b%5b2J%0d2026-11-29%2016:00:02,000%20CRITICAL%20wiped"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+( \[[\w.:-]+\])?: ")


def serve_env(token_kit: TokenKit, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {**os.environ, "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url, "INTEGRATION_CLIENT_ID": AUDIENCE}
    for name in ("LOG_LEVEL", "LOG_FORMAT", "LOG_LEVEL_THIRD_PARTY", "METRICS_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return {**env, "STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(tmp_path / "marketplace.db"), **settings}


async def run_serve(env: dict[str, str], tmp_path: Path, requests: list[tuple[str, dict[str, str]]], *args: str) -> list[str]:
    """Start serve, send the requests (path, headers), stop it with SIGTERM; its output, line by line."""
    port, log = free_port(), tmp_path / "serve.log"
    process = await serve_process(env, port, tmp_path, log, *args)
    try:
        async with aiohttp.ClientSession() as session:
            for path, headers in requests:
                async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers, allow_redirects=False) as reply:
                    await reply.read()
                    assert reply.status < 500, (path, reply.status, tail(log))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return log.read_text().splitlines()


async def test_a_forged_line_never_starts_a_line_and_uvicorn_writes_in_our_format(
    token_kit: TokenKit, tmp_path: Path
) -> None:
    env = serve_env(token_kit, tmp_path, LOG_LEVEL="DEBUG")
    requests = [(FORGED_PATH, {"X-Request-Id": "forger"}), (ESCAPE_PATH, {}), ("/healthz", {"X-Request-Id": "probe"})]
    lines = await run_serve(env, tmp_path, requests)
    text = "\n".join(lines)
    assert not any(line.startswith(("2026-11-29 16:00:01", "2026-11-29 16:00:02")) for line in lines), text
    assert "CRITICAL forged" in text and "\\n2026-11-29 16:00:01,000 CRITICAL forged" in text  # there, escaped
    assert "\x1b" not in text and "\r" not in text and "\\x1b[2J\\r2026-11-29 16:00:02,000 CRITICAL wiped" in text
    stray = [line for line in lines if not RECORD_START.match(line) and not line.startswith("    ")]
    assert stray == [], text  # every line is a record of ours (or a traceback under one)
    assert any(" INFO uvicorn.error: Uvicorn running on " in line for line in lines), text
    assert any(" INFO marketplace.access [forger]: GET /dashboard/checks/{check_id} 401 " in line for line in lines), text
    assert not any("[probe]" in line for line in lines), text  # no access line for health checks
    # LOG_LEVEL=DEBUG shows our debug lines, not aiosqlite's (every statement): third-party loggers stay at INFO
    assert any(" DEBUG marketplace: logging: text lines, our loggers at DEBUG, the others at INFO" in line for line in lines)
    assert not any(" aiosqlite" in line for line in lines), text


async def test_json_lines_and_third_party_debug_when_asked(token_kit: TokenKit, tmp_path: Path) -> None:
    env = serve_env(token_kit, tmp_path, LOG_FORMAT="json", LOG_LEVEL_THIRD_PARTY="DEBUG")
    lines = await run_serve(env, tmp_path, [(FORGED_PATH, {"x-vercel-id": "iad1::forger"})])
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= d.keys() for d in documents)
    access = [d for d in documents if d["logger"] == "marketplace.access" and d["route"] != "/readyz"]  # not start-up's
    assert [(d["request_id"], d["method"], d["route"], d["status"]) for d in access] == [
        ("iad1::forger", "GET", "/dashboard/checks/{check_id}", 401)
    ]
    assert any(FORGED_LINE in d["message"] and "\\n" in d["message"] for d in documents)
    assert any(d["logger"] == "aiosqlite" and d["level"] == "DEBUG" for d in documents)  # asked for
    assert not any(d["level"] == "DEBUG" and d["logger"].startswith("marketplace") for d in documents)  # ours at INFO


async def test_the_server_processes_of_workers_2_log_in_our_format(token_kit: TokenKit, tmp_path: Path) -> None:
    env = serve_env(token_kit, tmp_path, STORAGE_BACKEND="memory", SERVE_WORKER="false")
    requests = [("/readyz", {"X-Request-Id": f"spawned-{n}"}) for n in range(4)]
    lines = await run_serve(env, tmp_path, requests, "--workers", "2")
    text = "\n".join(lines)
    for n in range(4):  # written by the spawned server processes, not the one that started them
        assert any(f" INFO marketplace.access [spawned-{n}]: GET /readyz 200 " in line for line in lines), text
    assert all(RECORD_START.match(line) or line.startswith("    ") for line in lines), text
