"""Schemathesis against our own OpenAPI document, through a real server: every default check, zero failures.

`st run` (schemathesis's CLI, as an operator would run it) drives a server of this module's own (SQLite, the
default backend) with tokens from the test kit, in deterministic mode with few examples per operation, so a run
takes about 30 s and always sends the same requests. What the run is told (tokens, ids) is in `config_file`;
this module is also its hooks file (SCHEMATHESIS_HOOKS): `filter_case` and `filter_failure` say, narrowly and
why, what is not counted.

A failure prints schemathesis's report: each failing request, what it expected and a curl line to replay it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import schemathesis

from marketplace_provider.adapters.http.partner_api import PARTNER_API_HANDLERS
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.http import create_app
from tests.http.conftest import Installation
from tests.support.server import serving

MAX_EXAMPLES = 15  # per operation and phase
ROOT = Path(__file__).parents[2]


# ---------------------------------------------------------------------------------------------------------------
# hooks (this file is loaded by the `st` process too)
# ---------------------------------------------------------------------------------------------------------------


def _body_types() -> dict[tuple[str, str], Any]:
    """(method, OpenAPI path) -> the type a Partner API handler reads its JSON body into."""
    types = {}
    for handler in PARTNER_API_HANDLERS:
        data = typing.get_type_hints(handler.fn, include_extras=True).get("data")
        if data is None:
            continue
        for path in handler.paths:
            for method in handler.http_methods:
                types[(method, re.sub(r":\w+}", "}", path))] = typing.get_args(data)[0]  # JSONBody[X] -> X
    return types


BODY_TYPES = _body_types()


def _read_leniently(case: schemathesis.Case) -> bool:
    """A body made invalid only by a type change Litestar undoes: it converts request bodies leniently (a boolean
    may come as 0/1 or "true"/"false", a number as a numeric string), and every other constraint still holds."""
    body_type = BODY_TYPES.get((case.method.upper(), case.path))
    if body_type is None or not isinstance(case.body, (dict, list)):
        return False
    try:
        msgspec.convert(case.body, body_type, strict=False)
    except msgspec.ValidationError:
        return False
    try:
        msgspec.convert(case.body, body_type)
    except msgspec.ValidationError:
        return True
    return False


def _one_id_on_the_wire(case: schemathesis.Case) -> bool:
    """`ids` made a scalar instead of a list: a query string carries it as `ids=<value>`, the same bytes as a
    list of that one value, which is a valid filter when the value looks like an id."""
    ids = (case.query or {}).get("ids")
    return case.path.endswith("/resources") and ids is not None and not isinstance(ids, list)


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Drop the negative cases that are not negative on the wire (the two kinds above); nothing else."""
    if case.meta is None or not case.meta.generation.mode.is_negative:
        return True
    return not (_read_leniently(case) or _one_id_on_the_wire(case))


# Schema-valid requests that a rule of the Marketplace refuses with the status its spec documents (the
# statuses are in the document too): what no OpenAPI schema can state.
BUSINESS_REFUSALS: dict[tuple[str, str], set[int]] = {
    # plans come from the catalog (config/products.toml), which the document does not list
    ("PATCH", "/v1/installations/{installationId}"): {400},
    # a resource's plan and metadata are checked against its product in the catalog
    ("POST", "/v1/installations/{installationId}/resources"): {400},
    ("PATCH", "/v1/installations/{installationId}/resources/{resourceId}"): {400},
    # partner-api.md 3.4: an invoice Vercel does not know, or not paid, is 422
    ("POST", "/v1/installations/{installationId}/billing/provision"): {422},
    # partner-api.md 4.1: expiry in the past is 400; resources not in the installation 422
    ("POST", "/v1/installations/{installationId}/resource-transfer-requests"): {400, 422},
    ("PUT", "/v1/installations/{installationId}/resource-transfer-requests/{providerClaimId}"): {400, 422},
    # partner-api.md 4.3: targetInstallationId must be the installation in the path
    (
        "POST",
        "/v1/installations/{installationId}/resource-transfer-requests/{providerClaimId}/accept",
    ): {400, 422},
    ("GET", "/v1/installations/{installationId}/resource-transfer-requests/{providerClaimId}/verify"): {422},
    ("POST", "/v1/installations/{installationId}/resource-transfer-requests/{providerClaimId}/verify"): {422},
}


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: Any) -> bool:
    """Keep every failure but a schema-valid request refused with a status the Marketplace spec documents for a
    rule no schema states (BUSINESS_REFUSALS)."""
    if failure.code != "ST202":  # "Schema-valid request rejected"
        return True
    return response.status_code not in BUSINESS_REFUSALS.get((case.method.upper(), case.path), set())


# ---------------------------------------------------------------------------------------------------------------
# the server and what it holds before the run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    fuzzed: Installation  # every operation runs on it
    kept: str  # a resource of it every resource operation reaches
    doomed_resource: str  # the one DELETE resource may delete
    doomed: Installation  # the one DELETE installation may uninstall


@pytest.fixture(scope="module")
async def target(
    tmp_path_factory: pytest.TempPathFactory, token_kit: TokenKit, fake_vercel: FakeVercel
) -> AsyncIterator[Target]:
    settings = load_settings(
        {
            "STORAGE_BACKEND": "sqlite",
            "DATABASE_URL": str(tmp_path_factory.mktemp("openapi") / "marketplace.db"),
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": "openapi-client-secret",
            "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
            "VERCEL_API_URL": fake_vercel.url,
            "JWKS_REFETCH_SECONDS": "0",
            "SERVE_WORKER": "false",
        }
    )
    async with serving(create_app(settings)) as url, aiohttp.ClientSession() as session:
        api = Api(url, session)
        fuzzed = Installation("icfg_schemathesis", api, token_kit)
        doomed = Installation("icfg_schemathesis_doomed", api, token_kit)
        for installation in (fuzzed, doomed):
            assert (await installation.upsert()).status == 204
        resources = []
        for name in ("kept", "doomed"):
            reply = await fuzzed.provision(name=name)
            assert reply.status == 200, reply.body
            resources.append(reply.json["id"])
        yield Target(url, fuzzed, resources[0], resources[1], doomed)


def toml(value: Any) -> str:
    """A TOML value (JSON's strings, numbers and arrays are TOML's)."""
    return json.dumps(value)


def only(method: str, path: str) -> list[str]:
    """An [[operations]] entry for one operation: its exact-value filters would match either (they are ORed),
    its regular expressions together."""
    return [
        "[[operations]]",
        f"include-method-regex = {toml(f'^{method}$')}",
        f"include-path-regex = {toml(f'^{re.escape(path)}$')}",
    ]


def config_file(target: Target, directory: Path) -> Path:
    """What the run is told: the tokens and ids to use, and which operation is left out."""
    fuzzed, doomed = target.fuzzed, target.doomed
    lines = [
        "workers = 1",
        f"headers = {{ Authorization = {toml('Bearer ' + fuzzed.admin)} }}",
        "[generation]",
        "deterministic = true",
        f"max-examples = {MAX_EXAMPLES}",
        "[parameters]",
        f'"path.installationId" = {toml(fuzzed.id)}',
        f'"path.resourceId" = {toml(target.kept)}',
        '"path.productSlug" = "acme-kv"',
        # Uninstalling and deleting happen elsewhere, or the rest of the run would meet only 404s.
        *only("DELETE", "/v1/installations/{installationId}"),
        f'parameters = {{ "path.installationId" = {toml(doomed.id)} }}',
        f"headers = {{ Authorization = {toml('Bearer ' + doomed.admin)} }}",
        *only("DELETE", "/v1/installations/{installationId}/resources/{resourceId}"),
        f'parameters = {{ "path.resourceId" = {toml(target.doomed_resource)} }}',
        # Transfers are Vercel's own calls (auth.md): a system token.
        "[[operations]]",
        'include-path-regex = "/resource-transfer-requests"',
        f"headers = {{ Authorization = {toml('Bearer ' + fuzzed.system)} }}",
        # The browser's SSO landing: its query constraints and HTML pages are the dashboard's (dashboard.py).
        "[[operations]]",
        'include-path = "/callback"',
        "enabled = false",
    ]
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_schemathesis_finds_nothing(target: Target, tmp_path: Path) -> None:
    config = config_file(target, tmp_path)
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st), "--config-file", str(config), "run", f"{target.url}/schema/openapi.json", "--no-color",
        cwd=tmp_path,  # its report folder and example database, if any, stay in the test's own folder
        env={**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert re.search(r"Tested:\s+2\d\b", report), report  # every operation but /callback was run
    print(report)  # shown with `pytest -rP`: the phases, what was generated, the warnings
