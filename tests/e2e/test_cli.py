"""The installed console script, run as a user would: `serve` and `products`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = str(Path(sys.executable).parent / "marketplace-provider")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_products_json_prints_the_validated_catalog() -> None:
    done = run("products", "--json")
    assert done.returncode == 0, done.stderr
    catalog = json.loads(done.stdout)
    products = {p["id"]: p for p in catalog["products"]}
    assert "acme-kv" in products
    plans = {p["id"]: p for p in catalog["plans"]}
    # interface.md: a product whose metadata all have defaults, with a free resource-scoped plan
    kv = products["acme-kv"]
    assert all(field["default"] is not None for field in kv["metadata"])
    assert any(
        plans[p]["scope"] == "resource" and plans[p]["payment_method_required"] is False for p in kv["plan_ids"]
    )


def test_products_human_readable() -> None:
    done = run("products")
    assert done.returncode == 0
    assert "acme-kv" in done.stdout and "free" in done.stdout


def test_bad_configuration_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "products.toml"
    bad.write_text('[[plans]]\nid = "x"\ntype = "barter"\nname = "X"\ndescription = "d"\n')
    done = run("products", env={"PRODUCTS_FILE": str(bad)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "products.toml" in done.stderr
    done = run("serve", env={"STORAGE_BACKEND": "floppy"})
    assert done.returncode == 2
    assert "STORAGE_BACKEND" in done.stderr


def test_help_for_every_command() -> None:
    for command in ("serve", "migrate", "worker", "outbox", "bill", "products", "simulate"):
        done = run(command, "--help")
        assert done.returncode == 0 and "usage" in done.stdout
    assert "--no-worker" in run("serve", "--help").stdout


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == "marketplace-provider 0.1.0"


def test_a_bad_port_is_refused_with_exit_2() -> None:
    done = run("serve", env={"PORT": "eighty"})
    assert done.returncode == 2 and "invalid int value" in done.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    dead_port = free_port()  # nothing listens here: Vercel's keys cannot be fetched
    env = {
        **os.environ,
        "STORAGE_BACKEND": "memory",
        "VERCEL_OIDC_JWKS_URL": f"http://127.0.0.1:{dead_port}/jwks",
    }
    process = subprocess.Popen(
        [SCRIPT, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("serve did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_answers_while_vercel_keys_are_unreachable(server: str) -> None:
    health = urllib.request.urlopen(server + "/healthz", timeout=5)
    assert health.status == 200
    ready = urllib.request.urlopen(server + "/readyz", timeout=5)
    assert ready.status == 200
    request = urllib.request.Request(
        server + "/v1/installations/icfg_1", headers={"Authorization": "Bearer a.b.c"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    # a malformed token is refused before any key is needed
    assert refused.value.code == 401
    schema = json.loads(urllib.request.urlopen(server + "/schema/openapi.json", timeout=5).read())
    assert "/v1/installations/{installationId}/resources" in schema["paths"]


def test_well_formed_token_without_keys_is_503(server: str) -> None:
    from marketplace_provider.adapters.simulator.tokens import TokenKit

    token = TokenKit().user_token("icfg_1")
    request = urllib.request.Request(server + "/v1/installations/icfg_1", headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 503
    assert json.loads(refused.value.read())["error"]["code"] == "unavailable"
