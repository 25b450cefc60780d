"""The installed console script, run as a user would: `serve` and `products`."""

from __future__ import annotations

import argparse
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

from marketplace_provider.entrypoints import cli

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


def every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases name one parser twice
                yield from every_parser(sub)


def test_every_option_with_a_default_shows_it_in_the_help() -> None:
    top = cli.parser()
    checked = 0
    for parser in every_parser(top):
        formatter = parser.formatter_class(prog=parser.prog, width=10_000, max_help_position=100)
        for action in parser._actions:
            if action.default in (None, False, [], {}, argparse.SUPPRESS) or action.help == argparse.SUPPRESS:
                continue
            line = formatter._format_action(action).rstrip()  # this option's help, on one line: ends "[default]"
            assert line.endswith("]"), (parser.prog, line)
            checked += 1
    assert checked > 15
    served = run("serve", "--help", env={"COLUMNS": "200"}).stdout
    assert "address to listen on; 0.0.0.0: every interface [127.0.0.1]" in served
    assert "[the PORT environment variable, else 8000]" in served and "server processes [1]" in served


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == "marketplace-provider 0.1.0"


def one_line_exit_2(done: subprocess.CompletedProcess[str], *says: str) -> None:
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(part in done.stderr for part in says), done.stderr


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1", "eighty", "80.5", ""])
def test_a_port_that_is_no_port_is_refused_in_one_line(port: str) -> None:
    one_line_exit_2(run("serve", "--port", port), "marketplace-provider serve: argument --port:", "1 to 65535")


@pytest.mark.parametrize("port", ["99999", "0", "eighty"])
def test_a_bad_port_environment_variable_is_refused_in_one_line(port: str) -> None:
    one_line_exit_2(run("serve", env={"PORT": port}), f"PORT='{port}'", "1 to 65535")


def test_a_port_in_use_is_refused_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host in ("127.0.0.1", "0.0.0.0"):
            done = run("serve", "--host", host, "--port", str(port), env={"DATABASE_URL": str(tmp_path / "m.db")})
            one_line_exit_2(done, f"cannot listen on {host}:{port} (in use by another process)")
        # PORT alone names the port too
        done = run("serve", env={"PORT": str(port), "DATABASE_URL": str(tmp_path / "m.db")})
        one_line_exit_2(done, f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "m.db").exists()  # refused before storage was opened


def test_a_host_that_is_not_ours_and_a_bad_worker_count_are_refused_in_one_line() -> None:
    one_line_exit_2(run("serve", "--host", "no-such-host.invalid", "--port", str(free_port())), "cannot listen on")
    one_line_exit_2(run("serve", "--workers", "0"), "--workers", "at least 1")


def test_usage_errors_are_one_line_with_exit_2() -> None:
    one_line_exit_2(run("frobnicate"), "invalid choice: 'frobnicate'", "(see --help)")
    one_line_exit_2(run("outbox", "--limit", "many"), "marketplace-provider outbox: argument --limit")


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
