"""Every Partner API endpoint, in the order Vercel calls them over an installation's life: status and response
shape (partner-api.md, endpoints.json). Optional endpoints the server does not serve are skipped, not failed."""

from __future__ import annotations

import time
from functools import partial

from marketplace_provider.adapters.checker.report import GroupStopped, SetupFailed, Skipped, expect
from marketplace_provider.adapters.checker.shapes import (
    Claim,
    Finalized,
    InstallationView,
    Plans,
    Provisioned,
    Purchase,
    Resource,
    Resources,
    RotatedLater,
    RotatedNow,
    conform,
    expect_status,
    skip_if_absent,
)
from marketplace_provider.adapters.checker.world import SYSTEM, Installation, World, new_key

GROUP = "endpoints"
CHECKS = (
    "upsert-installation", "upsert-installation-again", "get-installation", "product-plans",
    "product-plans-before-install", "installation-plans", "provision-resource", "get-resource", "list-resources",
    "resource-plans", "update-resource", "rotate-secrets", "update-installation", "transfer-create",
    "transfer-verify", "transfer-accept", "provision-purchase", "delete-resource", "delete-installation",
)
EXPIRED_OR_GONE = (404, 410)


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    a = w.installation()
    with check("upsert-installation"):
        reply = await w.install(a, key=new_key())
        if not reply.ok:
            raise SetupFailed(f"{reply.says()} (expected 200, 201 or 204)")
    with check("upsert-installation-again"):
        a.access_token += "-rotated"  # a later upsert may carry a new access token: always an update, never 409
        expect_status(await w.install(a, key=new_key()), 200, 201, 204)
    with check("get-installation"):
        reply = await w.as_system(a, "GET", a.path)
        skip_if_absent(reply)
        expect_status(reply, 200)
        conform(reply, InstallationView)
    await _plans(w, a)
    resource_id = await _resource(w, a)
    await _installation_plan(w, a)
    b = await w.installed()
    await _transfer(w, a, b, resource_id)
    await _purchase(w, b)
    with check("delete-resource"):
        owner = b if w.report.passed(GROUP, "transfer-accept") else a
        reply = await w.as_admin(owner, "DELETE", owner.resource_path(resource_id), key=new_key())
        expect_status(reply, 204, 200)
        after = await w.get_resource(owner, resource_id)
        uninstalled = after.status == 200 and isinstance(after.json, dict) and after.json.get("status") == "uninstalled"
        expect(after.status in EXPIRED_OR_GONE or uninstalled, f"then {after.says()} (expected 404, or uninstalled)")
    with check("delete-installation"):
        body = {"cascadeResourceDeletion": True, "reason": "check"}
        for inst in (a, b):
            reply = await w.as_admin(inst, "DELETE", inst.path, body=body, key=new_key())
            expect_status(reply, 200, 204)
            if reply.status == 200:
                conform(reply, Finalized)


async def _plans(w: World, a: Installation) -> None:
    check = partial(w.report.check, GROUP)
    with check("product-plans"):
        reply = await w.as_admin(a, "GET", f"/v1/products/{w.product}/plans")
        expect_status(reply, 200)
        expect(conform(reply, Plans).plans, f"{reply.says()}: no plans for product {w.product}")
    with check("product-plans-before-install"):
        # before the first installation Vercel's token is incomplete: no account_id, installation_id null
        token = await w.vercel.token(SYSTEM, None, omit=("account_id",))
        reply = await w.client.call("GET", f"/v1/products/{w.product}/plans", token=token, style=SYSTEM)
        expect_status(reply, 200)
        conform(reply, Plans)
    with check("installation-plans"):
        reply = await w.as_system(a, "GET", a.path + "/plans")
        skip_if_absent(reply)
        expect_status(reply, 200)
        conform(reply, Plans)


async def _resource(w: World, a: Installation) -> str:
    check = partial(w.report.check, GROUP)
    name = "check-endpoints"
    made = None
    with check("provision-resource"):
        reply = await w.provision(a, name, key=new_key())
        if not reply.ok:
            raise SetupFailed(f"{reply.says()} (expected 200, or 201)")
        expect_status(reply, 200, 201)
        made = conform(reply, Provisioned)
        expect((made.name, made.product_id) == (name, w.product), f"provisioned {made.name!r} of {made.product_id!r}")
    if made is None:
        raise GroupStopped("provision-resource")
    resource_id = made.id
    with check("get-resource"):
        reply = await w.get_resource(a, resource_id)
        expect_status(reply, 200)
        got = conform(reply, Resource)
        expect((got.id, got.name) == (resource_id, name), f"got {got.id!r} named {got.name!r}")
        expect("secrets" not in reply.json, "Get Resource shows the secrets (only the provision answer may)")
    with check("list-resources"):
        reply = await w.as_system(a, "GET", a.path + "/resources")
        skip_if_absent(reply)
        expect_status(reply, 200)
        listed = [r.id for r in conform(reply, Resources).resources]
        expect(resource_id in listed, f"the new resource is not listed: {listed}")
    with check("resource-plans"):
        reply = await w.as_system(a, "GET", a.resource_path(resource_id) + "/plans")
        skip_if_absent(reply)
        expect_status(reply, 200)
        conform(reply, Plans)
    with check("update-resource"):
        path = a.resource_path(resource_id)
        reply = await w.as_admin(a, "PATCH", path, body={"name": "check-renamed"}, key=new_key())
        skip_if_absent(reply)
        expect_status(reply, 200)
        expect(conform(reply, Resource).name == "check-renamed", "the answer does not carry the new name")
        after = await w.get_resource(a, resource_id)
        expect((after.json or {}).get("name") == "check-renamed", f"then {after.says()}")
    with check("rotate-secrets"):
        body = {"reason": "check", "delayOldSecretsExpirationHours": 2.5}  # fractions are allowed (gaps.md 12)
        reply = await w.as_admin(a, "POST", a.resource_path(resource_id) + "/secrets/rotate", body=body, key=new_key())
        skip_if_absent(reply)
        expect_status(reply, 200, 202)
        conform(reply, RotatedNow if reply.status == 200 else RotatedLater)
    return resource_id


async def _installation_plan(w: World, a: Installation) -> None:
    with w.report.check(GROUP, "update-installation"):
        listed = await w.as_system(a, "GET", a.path + "/plans")
        plans = (listed.json or {}).get("plans") if listed.status == 200 and isinstance(listed.json, dict) else None
        current = ((await w.as_system(a, "GET", a.path)).json or {}).get("billingPlan")
        choices = [
            p["id"] for p in plans or [] if isinstance(p, dict) and p.get("scope") == "installation"
            and not p.get("disabled") and p.get("id") != (current or {}).get("id")
        ]
        if not choices:
            raise Skipped("the server offers no other installation-level plan")
        body = {"billingPlanId": choices[0]}
        reply = await w.as_admin(a, "PATCH", a.path, body=body, key=new_key())
        skip_if_absent(reply)
        expect_status(reply, 200, 204)


async def _transfer(w: World, a: Installation, b: Installation, resource_id: str) -> None:
    check = partial(w.report.check, GROUP)
    with check("transfer-create"):
        body = {"resourceIds": [resource_id], "expiresAt": int((time.time() + 3600) * 1000)}
        reply = await w.as_system(a, "POST", a.path + "/resource-transfer-requests", body=body, key=new_key())
        skip_if_absent(reply)
        expect_status(reply, 200)
        claim = conform(reply, Claim).provider_claim_id
    if not w.report.passed(GROUP, "transfer-create"):
        return
    claim_path = f"{b.path}/resource-transfer-requests/{claim}"
    with check("transfer-verify"):
        reply = await w.as_system(b, "GET", claim_path + "/verify")
        expect_status(reply, 200)
    with check("transfer-accept"):
        body = {"targetInstallationId": b.id}
        reply = await w.as_system(b, "POST", claim_path + "/accept", body=body, key=new_key())
        expect_status(reply, 204, 200)
        moved = await w.get_resource(b, resource_id)
        expect(moved.status == 200, f"the target cannot read the resource: {moved.says()}")
        left = await w.get_resource(a, resource_id)
        expect(not left.ok, f"the source still reads it: {left.says()}")


async def _purchase(w: World, b: Installation) -> None:
    with w.report.check(GROUP, "provision-purchase"):
        body = {"invoiceId": await w.credits_invoice()}
        reply = await w.as_admin(b, "POST", b.path + "/billing/provision", body=body, key=new_key())
        skip_if_absent(reply)
        if not reply.ok and not await w.calls_for(b):
            raise Skipped(w.not_wired())
        expect_status(reply, 200)
        bought = conform(reply, Purchase)
        expect(bought.balances, "no balance in the answer")
