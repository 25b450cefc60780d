"""Bad input (partner-api.md 0.4, gaps.md b8): malformed JSON, wrong shapes, unknown products and plans. Each is
answered with a 4xx and the documented error body (never a 5xx, never an auth refusal of a good token), and
changes nothing: what the Partner API shows of the installation, its resource and a never-installed id is read
before and after and compared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from marketplace_provider.adapters.checker.partner import Reply
from marketplace_provider.adapters.checker.report import expect
from marketplace_provider.adapters.checker.shapes import ErrorBody, conform, expect_refusal, skip_if_absent
from marketplace_provider.adapters.checker.world import SYSTEM, USER, Installation, World

GROUP = "bad-input"
MALFORMED = b'{"productId": "x", "name": '  # cut short: not JSON
NOT_AN_OBJECT = b"[1, 2]"
JSON = {"Content-Type": "application/json"}


def provision(**changes: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: w.provision_body("x") | changes


def without_credentials(w: World) -> dict[str, Any]:
    return {k: v for k, v in w.upsert_body(w.installation()).items() if k != "credentials"}


# name -> (method, where, style, body): where is "installation", "resource", "transfers" or "never-installed";
# body is bytes (sent as is, as JSON) or an object, or a function of the World giving one
CASES: dict[str, tuple[str, str, str, Any]] = {
    "provision-malformed-json": ("POST", "resources", USER, MALFORMED),
    "provision-not-an-object": ("POST", "resources", USER, NOT_AN_OBJECT),
    "provision-missing-fields": ("POST", "resources", USER, {}),
    "provision-wrong-types": ("POST", "resources", USER, provision(name=123, metadata="x")),
    "provision-unknown-product": ("POST", "resources", USER, provision(productId="check-no-such-product")),
    "provision-unknown-plan": ("POST", "resources", USER, provision(billingPlanId="check-no-such-plan")),
    "upsert-malformed-json": ("PUT", "never-installed", USER, MALFORMED),
    "upsert-missing-credentials": ("PUT", "never-installed", USER, without_credentials),
    "update-resource-malformed-json": ("PATCH", "resource", USER, MALFORMED),
    "update-resource-wrong-types": ("PATCH", "resource", USER, {"name": 42, "metadata": "x"}),
    "rotate-delay-out-of-range": ("POST", "rotate", USER, {"delayOldSecretsExpirationHours": 721}),
    "transfer-malformed-json": ("POST", "transfers", SYSTEM, MALFORMED),
}
OPTIONAL = {"rotate", "transfers"}
CHECKS = (*CASES, "unknown-resource", "plans-bad-metadata-query", "webhook-malformed-json")


@dataclass
class Site:
    w: World
    a: Installation  # installed, owns resource_id
    c: Installation  # never installed
    resource_id: str
    seen: list[tuple[int, Any]] | None = None

    def path(self, where: str) -> str:
        resource = self.a.resource_path(self.resource_id)
        return {
            "resources": self.a.path + "/resources",
            "resource": resource,
            "rotate": resource + "/secrets/rotate",
            "transfers": self.a.path + "/resource-transfer-requests",
            "never-installed": self.c.path,
        }[where]

    async def snapshot(self) -> list[tuple[int, Any]]:
        return await self.w.snapshot(self.a, self.resource_id) + await self.w.snapshot(self.c)


def refused(reply: Reply) -> None:
    """A 4xx that is not an auth refusal (the token is good), with the documented error body."""
    expect(reply.status < 500, f"{reply.says()} (a 5xx: expected 400)")
    expect(400 <= reply.status < 500 and reply.status not in (401, 403), f"{reply.says()} (expected 400)")
    conform(reply, ErrorBody)


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    a = await w.installed()
    site = Site(w, a, w.installation(), await w.provisioned(a, "check-bad-input"))
    for name, (method, where, style, body) in CASES.items():
        with check(name):
            owner = site.c if where == "never-installed" else a
            token = await (owner.admin() if style == USER else owner.system())
            body = body(w) if callable(body) else body
            sent = {"raw": body, "headers": JSON} if isinstance(body, bytes) else {"body": body}
            before = site.seen or await site.snapshot()
            reply = await w.client.call(method, site.path(where), token=token, style=style, **sent)
            site.seen = await site.snapshot()
            if where in OPTIONAL:
                skip_if_absent(reply)
            refused(reply)
            expect(site.seen == before, f"{reply.says()}, and it changed what the Partner API shows")
    with check("unknown-resource"):
        reply = await w.get_resource(a, "res_check_missing")
        expect_refusal(reply, 404)
    with check("plans-bad-metadata-query"):  # the form values, JSON-encoded: a server may ignore them, never crash
        reply = await w.as_system(a, "GET", f"/v1/products/{w.product}/plans", query={"metadata": "{nope"})
        if reply.status != 200:
            refused(reply)
    with check("webhook-malformed-json"):  # signed but not JSON: 2xx or 400, never a 5xx that Vercel retries
        reply = await w.deliver(b"{nope")
        expect(reply.ok or 400 <= reply.status < 500, f"{reply.says()} (expected 400 or 2xx, never a 5xx)")
