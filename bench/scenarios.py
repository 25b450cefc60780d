"""The HTTP scenarios' requests, as Vercel sends them: installations of the benchmark's own (upserted and given a
resource through the Partner API), then for each scenario the requests wrk cycles through.

Each installation's requests carry one token, minted when the scenario starts and reused (Vercel reuses a token
until it expires); requests go round the installations, so 32 connections touch many installations at once.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import aiohttp

from bench.load import Request
from bench.server import WEBHOOK_SECRET
from marketplace_provider.adapters.simulator import webhooks
from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import TokenKit
from tests.http.conftest import provision_body, upsert_body


@dataclass(frozen=True)
class Tenant:
    installation_id: str
    resource_id: str

    @property
    def path(self) -> str:
        return f"/v1/installations/{self.installation_id}"


JSON = {"Content-Type": "application/json"}


def _user(kit: TokenKit, tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {kit.user_token(tenant.installation_id)}", "X-Vercel-Auth": "user"}


def _system(kit: TokenKit, tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {kit.system_token(tenant.installation_id)}", "X-Vercel-Auth": "system"}


async def install(url: str, kit: TokenKit, count: int, *, resources: bool = True) -> list[Tenant]:
    """`count` installations, each with one provisioned resource unless not `resources`, through the Partner API."""
    tenants = []
    async with aiohttp.ClientSession() as session:
        api = Api(url, session)
        for _ in range(count):
            installation_id = "icfg_" + secrets.token_hex(12)
            user = kit.user_token(installation_id)
            path = f"/v1/installations/{installation_id}"
            _expect(await api.put(path, token=user, style="user", body=upsert_body()), 204, "upsert installation")
            if not resources:
                tenants.append(Tenant(installation_id, ""))
                continue
            created = _expect(
                await api.post(path + "/resources", token=user, style="user", body=provision_body(name="bench")),
                200, "provision resource",
            )
            tenants.append(Tenant(installation_id, created.json["id"]))
    return tenants


def _expect(reply: Reply, status: int, what: str) -> Reply:
    if reply.status != status:
        raise RuntimeError(f"{what}: expected {status}, got {reply.status}: {reply.body[:300]!r}")
    return reply


def get_installation(kit: TokenKit, tenants: list[Tenant]) -> list[Request]:
    return [Request("GET", t.path, _system(kit, t)) for t in tenants]


def get_resource(kit: TokenKit, tenants: list[Tenant]) -> list[Request]:
    return [Request("GET", f"{t.path}/resources/{t.resource_id}", _system(kit, t)) for t in tenants]


def provision(kit: TokenKit, tenants: list[Tenant]) -> list[Request]:
    """Each request a new resource: a name unique in the run (%N%), no Idempotency-Key."""
    tag = secrets.token_hex(3)
    body = json.dumps(provision_body(name=f"bench-{tag}-%N%"))
    return [Request("POST", f"{t.path}/resources", _user(kit, t) | JSON, body) for t in tenants]


def patch_resource(kit: TokenKit, tenants: list[Tenant]) -> list[Request]:
    """Renames, alternating two names, so every request changes the resource."""
    return [
        Request("PATCH", f"{t.path}/resources/{t.resource_id}", _user(kit, t) | JSON, json.dumps({"name": name}))
        for name in ("bench-a", "bench-b")
        for t in tenants
    ]


def invoice_event(tenant: Tenant, invoice_id: str) -> bytes:
    """A `marketplace.invoice.created` delivery for a new invoice: its effect is that invoice, recorded."""
    return webhooks.event_body("marketplace.invoice.created", tenant.installation_id, invoice_id=invoice_id)


def signed(body: bytes) -> dict[str, str]:
    return webhooks.signed_headers(body, WEBHOOK_SECRET)


def webhook_deliveries(tenants: list[Tenant], count: int) -> list[Request]:
    """`count` signed invoice events, each with its own event id and invoice, round the installations (HMAC-SHA1 is
    signed here: wrk's Lua has none); wrk cycles them, so a run longer than `count` requests repeats ids (answered as
    duplicates, and said so)."""
    tag = secrets.token_hex(3)
    requests = []
    for n in range(count):
        body = invoice_event(tenants[n % len(tenants)], f"inv_bench_{tag}_{n}")
        requests.append(Request("POST", "/webhook", signed(body), body.decode()))
    return requests
