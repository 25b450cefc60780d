"""The flows Vercel runs against a Partner API server, in the order of an integration's life. Each flow reports
every step it checks; `run` adds the flows a flow needs first (provisioning needs an installation...)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from marketplace_provider.adapters.simulator import deliveries
from marketplace_provider.adapters.simulator.driver import Driver, FlowFailed, missing, told

INSTALLED = (200, 201, 204)


async def install(d: Driver, installation_id: str | None = None, flow: str = "install") -> None:
    """Upsert the installation with its access token and every policy the product's plans require; twice."""
    inst = installation_id or d.life.installation_id
    if not d.life.plans:
        await _product_plans(d, flow, style="system", installation_id=None)  # before install: no installation yet
    policies = sorted({p["id"] for plan in d.life.plans for p in plan.get("requiredPolicies") or [] if "id" in p})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "scopes": ["read:resource", "write:resource"],
        "acceptedPolicies": {policy: now for policy in policies},
        "credentials": {"access_token": d.sim.new_access_token(inst), "token_type": "Bearer"},
        "account": {"name": "Simulated Team", "url": "https://vercel.com/simulated-team",
                    "contact": {"email": "ops@simulated.example", "name": "Ops"}},
    }
    accepted = ", ".join(policies) or "none required"
    sent = await d.call("PUT", d.path("", inst), style="user", body=body, installation_id=inst)
    d.check(flow, sent, INSTALLED, f"installed; access token handed over; policies accepted: {accepted}")
    sent = await d.call("PUT", d.path("", inst), style="user", body=body, installation_id=inst)
    d.check(flow, sent, INSTALLED, "the same upsert again is accepted (an upsert, not a create)")
    if installation_id is None:
        d.life.installed = True


async def plans(d: Driver) -> None:
    """The product's plans (as the create-resource form asks) and the installation's."""
    await _product_plans(d, "plans", style="user")
    sent = await d.call("GET", d.path("/plans"), style="system")
    if sent.status in (404, 405, 501):
        d.note("plans", f"GET {sent.path} -> {sent.status}: installation plans not offered (optional)")
    else:
        d.check("plans", sent, (200,), f"{len(sent.body.get('plans') or [])} installation plan(s)", *_plan_problems(sent.body))


async def _product_plans(d: Driver, flow: str, *, style: str, installation_id: str | None = "") -> None:
    product = d.options.product_id
    inst = d.life.installation_id if installation_id == "" else installation_id
    sent = await d.call("GET", f"/v1/products/{product}/plans", style=style, installation_id=inst,
                        params={"metadata": "{}"})
    offered = found if isinstance(found := sent.body.get("plans"), list) else []
    d.check(flow, sent, (200,), f"product {product}: plans {', '.join(p.get('id', '?') for p in offered)}",
            *_plan_problems(sent.body), "" if offered else "no plan offered")
    d.life.plans = offered


def _plan_problems(body: dict[str, Any]) -> list[str]:
    listed = body.get("plans")
    if not isinstance(listed, list):
        return ["the answer has no plans list"]
    return [f"plan {p.get('id', '?')} lacks {', '.join(k for k in ('id', 'type', 'name', 'description') if k not in p)}"
            for p in listed if not all(k in p for k in ("id", "type", "name", "description"))]


def _first_plan(d: Driver) -> str:
    if d.options.plan_id:
        return d.options.plan_id
    enabled = [p for p in d.life.plans if not p.get("disabled")]
    free = [p for p in enabled if p.get("type") == "subscription" and p.get("paymentMethodRequired") is False]
    chosen = (free or enabled or [{}])[0].get("id")
    if chosen is None:
        raise FlowFailed("no plan to provision on")
    return chosen


async def provision(d: Driver, installation_id: str | None = None, flow: str = "provision") -> str:
    """Create a resource; the same Idempotency-Key again must not make a second one; read it back."""
    inst = installation_id or d.life.installation_id
    plan_id = _first_plan(d)
    body = {"productId": d.options.product_id, "name": f"sim-{int(time.time()) % 100000}",
            "metadata": d.options.metadata, "billingPlanId": plan_id}
    key = f"sim-provision-{inst}"
    sent = await d.call("POST", d.path("/resources", inst), style="user", body=body, key=key, installation_id=inst)
    made = sent.body
    names = [s.get("name") for s in made.get("secrets") or [] if isinstance(s, dict)]
    d.check(flow, sent, (200, 201), f"resource {made.get('id')} on plan {plan_id}, status {made.get('status')}, "
            f"secrets {', '.join(map(str, names)) or 'none'} (values hidden)",
            missing(made, "id", "productId", "name", "metadata", "status", "secrets"))
    resource_id = made["id"]
    d.sim.remember_resource(made)
    again = await d.call("POST", d.path("/resources", inst), style="user", body=body, key=key, installation_id=inst)
    d.check(flow, again, (200, 201), "the same Idempotency-Key again: the same resource",
            "" if again.body.get("id") == resource_id else f"a retry made another resource ({again.body.get('id')})")
    read = await d.call("GET", d.path(f"/resources/{resource_id}", inst), style="system", installation_id=inst)
    d.check(flow, read, (200,), f"read back: status {read.body.get('status')}",
            "" if read.body.get("id") == resource_id else "another resource came back",
            "the answer carries secrets" if read.body.get("secrets") else "")
    if installation_id is None:
        d.life.resource_id, d.life.plan_id = resource_id, plan_id
    return resource_id


async def update(d: Driver) -> None:
    name = f"sim-renamed-{int(time.time()) % 100000}"
    path = d.path(f"/resources/{d.life.resource_id}")
    sent = await d.call("PATCH", path, style="user", body={"name": name})
    d.check("update", sent, (200,), f"renamed to {name}",
            "" if sent.body.get("name") == name else f"the answer says name {sent.body.get('name')!r}")
    read = await d.call("GET", path, style="system")
    d.check("update", read, (200,), "the new name reads back",
            "" if read.body.get("name") == name else f"it reads {read.body.get('name')!r}")
    viewer = await d.call("PATCH", path, style="user", role="USER", body={"name": "sim-viewer-was-here"})
    d.check("update", viewer, (403,), "a USER (read-only) member may not change it")


async def rotate(d: Driver) -> None:
    mark = d.mark()
    body = {"reason": "simulated rotation", "delayOldSecretsExpirationHours": 1}
    sent = await d.call("POST", d.path(f"/resources/{d.life.resource_id}/secrets/rotate"), style="user", body=body)
    if sent.status == 200:
        names = [s.get("name") for s in sent.body.get("secrets") or [] if isinstance(s, dict)]
        d.check("rotate", sent, (200,), f"rotated at once: {', '.join(map(str, names))} (values hidden)",
                missing(sent.body, "sync", "secrets"))
        return
    d.check("rotate", sent, (202,), "rotation started; the provider sends the secrets to Vercel later")
    pushed = await d.until(mark, lambda calls: bool(told(calls, "PUT", "/secrets")))
    if told(pushed, "PUT", "/secrets"):
        d.note("rotate", "the provider sent the new secrets to Vercel (PUT .../secrets)")
    else:
        d.note("rotate", f"no PUT .../secrets within {d.options.wait:g}s")


async def change_plan(d: Driver) -> None:
    path = d.path(f"/resources/{d.life.resource_id}")
    offered = await d.call("GET", path + "/plans", style="system", params={"metadata": "{}"})
    listed = found if isinstance(found := offered.body.get("plans"), list) else []
    d.check("plan", offered, (200,), f"the resource may move to {', '.join(p.get('id', '?') for p in listed)}")
    others = [p for p in listed if p.get("id") != d.life.plan_id and not p.get("disabled")]
    others.sort(key=lambda p: (p.get("type") != "subscription", p.get("paymentMethodRequired") is False))
    if not others:
        d.note("plan", "no other plan to move to")
        return
    target = others[0]["id"]
    sent = await d.call("PATCH", path, style="user", body={"billingPlanId": target})
    now_on = (sent.body.get("billingPlan") or {}).get("id")
    d.check("plan", sent, (200,), f"moved from {d.life.plan_id} to {target}",
            "" if now_on == target else f"the answer says plan {now_on}")
    d.life.plan_id = target


async def credits(d: Driver) -> None:
    """Credits bought in Vercel: Vercel's paid invoice, then Provision Purchase; never credited twice."""
    prepaid = next((p for p in d.life.plans if p.get("type") == "prepayment"), None)
    plan_id = prepaid["id"] if prepaid else d.life.plan_id
    invoice_id = f"inv_sim_credits_{d.life.installation_id[-6:]}"
    d.sim.vercel.invoices[invoice_id] = _paid_invoice(invoice_id, plan_id or "credits", "25.00")
    mark = d.mark()
    sent = await d.call("POST", d.path("/billing/provision"), style="user", body={"invoiceId": invoice_id})
    balances = found if isinstance(found := sent.body.get("balances"), list) else []
    cents = [b.get("currencyValueInCents") for b in balances if isinstance(b, dict)]
    d.check("credits", sent, (200,), f"25.00 USD bought (invoice {invoice_id}): balances {cents} cents",
            missing(sent.body, "timestamp", "balances"))
    again = await d.call("POST", d.path("/billing/provision"), style="user", body={"invoiceId": invoice_id})
    cents_again = [b.get("currencyValueInCents") for b in again.body.get("balances") or [] if isinstance(b, dict)]
    d.check("credits", again, (200,), "the same invoice again credits nothing more",
            "" if cents_again == cents else f"balances became {cents_again} cents")
    reported = told(await d.until(mark, lambda calls: bool(told(calls, "POST", "/billing/balance"))),
                    "POST", "/billing/balance", "balances")
    cents_reported = [b.get("currencyValueInCents") for b in (reported or [[]])[-1] if isinstance(b, dict)]
    d.note("credits", f"the provider reported its balances to Vercel: {cents_reported} cents" if reported
           else f"no balance report within {d.options.wait:g}s (providers send one at least daily)")


def _paid_invoice(invoice_id: str, plan_id: str, total: str) -> dict[str, Any]:
    day = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    return {"invoiceId": invoice_id, "state": "paid", "invoiceDate": day, "period": {"start": day, "end": day},
            "items": [{"billingPlanId": plan_id, "name": "Credits", "price": total, "quantity": 1, "units": "USD",
                       "total": total}],
            "total": total, "created": day, "updated": day}


async def transfer(d: Driver) -> None:
    """A resource of another installation (the source) moves to ours through a claim: create, verify, accept."""
    source = d.life.installation_id.replace("icfg_sim", "icfg_src", 1)
    await install(d, source, flow="transfer")
    moved = await provision(d, source, flow="transfer")
    expires = int(time.time() * 1000) + 3_600_000
    sent = await d.call("POST", d.path("/resource-transfer-requests", source), style="system",
                        body={"resourceIds": [moved], "expiresAt": expires}, installation_id=source)
    claim = sent.body.get("providerClaimId")
    d.check("transfer", sent, (200, 201), f"claim {claim} for {moved}", missing(sent.body, "providerClaimId"))
    claims = d.path(f"/resource-transfer-requests/{claim}")
    verified = await d.call("GET", claims + "/verify", style="system")
    d.check("transfer", verified, (200,), "verified for our installation")
    accepted = await d.call("POST", claims + "/accept", style="system", body={})
    d.check("transfer", accepted, (200, 204), "accepted")
    ours = await d.call("GET", d.path(f"/resources/{moved}"), style="system")
    d.check("transfer", ours, (200,), f"{moved} is ours now")
    theirs = await d.call("GET", d.path(f"/resources/{moved}", source), style="system", installation_id=source)
    d.check("transfer", theirs, (403, 404, 410), "and no longer the source's")
    gone = await d.call("DELETE", d.path("", source), style="user", body={"cascadeResourceDeletion": True},
                        installation_id=source)
    d.check("transfer", gone, (200, 204), "the source installation is uninstalled")


async def uninstall(d: Driver) -> None:
    mark = d.mark()
    sent = await d.call("DELETE", d.path(), style="user",
                        body={"cascadeResourceDeletion": True, "reason": "simulated uninstall"})
    finalized = sent.body.get("finalized")
    d.check("uninstall", sent, (200, 204), "finalized at once" if finalized else "final invoices may follow")
    await deliveries.removed(d)
    if finalized:
        return
    calls = await d.until(mark, lambda calls: bool(told(calls, "POST", "/billing/finalize")))
    final = [i for i in told(calls, "POST", "/billing/invoices") if isinstance(i, dict) and i.get("final")]
    if told(calls, "POST", "/billing/finalize"):
        d.note("uninstall", f"the provider finalized the installation on Vercel ({len(final)} final invoice(s) first)")
    else:
        d.note("uninstall", f"no finalization within {d.options.wait:g}s (due within 24 hours)")


FLOWS: dict[str, Callable[[Driver], Awaitable[object]]] = {
    "install": install, "plans": plans, "provision": provision, "update": update, "rotate": rotate,
    "plan": change_plan, "credits": credits, "transfer": transfer, "sso": deliveries.sso,
    "webhooks": deliveries.webhooks_flow, "billing": deliveries.billing, "uninstall": uninstall,
}
ORDER = tuple(FLOWS)
REQUIRES = {"plans": ("install",), "provision": ("install", "plans"), "update": ("provision",),
            "rotate": ("provision",), "plan": ("provision",), "credits": ("provision",), "transfer": ("provision",),
            "sso": ("provision",), "webhooks": ("provision",), "billing": ("provision",), "uninstall": ("install",)}


def with_prerequisites(names: list[str]) -> list[str]:
    """`names` and every flow they need, in life order ("all": every flow)."""
    wanted = set(ORDER) if "all" in names else set()
    todo = [n for n in names if n != "all"]
    while todo:
        name = todo.pop()
        if name not in FLOWS:
            raise ValueError(f"unknown flow {name!r}: one of {', '.join(ORDER)} or all")
        if name not in wanted:
            wanted.add(name)
            todo.extend(REQUIRES.get(name, ()))
    return [n for n in ORDER if n in wanted]


async def run(d: Driver, names: list[str]) -> bool:
    """Run the flows in life order; a failed flow stops the run (what follows would need it). True: all conformed."""
    for name in with_prerequisites(names):
        try:
            await FLOWS[name](d)
        except FlowFailed:
            return False
        d.life.done.append(name)
    return d.failures == 0
