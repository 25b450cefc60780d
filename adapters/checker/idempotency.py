"""Retries (partner-api.md 0.5): a provision retried with its Idempotency-Key gives the same resource and no second
one; a replayed update answers as the first time and changes nothing since; credits are granted once per invoice;
deleting what is already deleted succeeds."""

from __future__ import annotations

from functools import partial
from typing import Any

from marketplace_provider.adapters.checker.report import Skipped, expect
from marketplace_provider.adapters.checker.world import Installation, World, new_key

GROUP = "idempotency"
CHECKS = (
    "provision-retried", "update-resource-replayed", "purchase-twice", "delete-resource-twice",
    "delete-installation-twice",
)


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    a = await w.installed()
    with check("provision-retried"):
        key = new_key()
        first, second = await w.provision(a, "check-retried", key), await w.provision(a, "check-retried", key)
        expect(first.ok and second.ok, f"{first.says()}; then {second.says()}")
        ids = [(r.json or {}).get("id") if isinstance(r.json, dict) else None for r in (first, second)]
        expect(ids[0] == ids[1], f"the retry made another resource: {ids[0]} then {ids[1]}")
        listed = await w.as_system(a, "GET", a.path + "/resources")
        if listed.status == 200 and isinstance(listed.json, dict):
            names = [r.get("name") for r in listed.json.get("resources") or [] if isinstance(r, dict)]
            expect(names.count("check-retried") == 1, f"{names.count('check-retried')} resources after one retry")
    resource_id = await w.provisioned(a, "check-replayed")
    with check("update-resource-replayed"):
        path, key = a.resource_path(resource_id), new_key()
        first = await w.as_admin(a, "PATCH", path, body={"name": "check-first"}, key=key)
        expect(first.status == 200, first.says())
        later = await w.as_admin(a, "PATCH", path, body={"name": "check-later"}, key=new_key())
        expect(later.status == 200, later.says())
        replay = await w.as_admin(a, "PATCH", path, body={"name": "check-first"}, key=key)
        expect(replay.ok, f"the replay: {replay.says()}")
        name = ((await w.get_resource(a, resource_id)).json or {}).get("name")
        expect(name == "check-later", f"the replay renamed it again: {name!r} (expected the stored answer, no change)")
    with check("purchase-twice"):
        await _purchase_twice(w, a)
    with check("delete-resource-twice"):
        for attempt in ("the delete", "deleting again"):
            reply = await w.as_admin(a, "DELETE", a.resource_path(resource_id), key=new_key())
            expect(reply.ok, f"{attempt}: {reply.says()} (deleting what is deleted must succeed)")
    with check("delete-installation-twice"):
        for attempt in ("the delete", "deleting again"):
            reply = await w.as_admin(a, "DELETE", a.path, key=new_key())
            expect(reply.ok, f"{attempt}: {reply.says()} (deleting what is deleted must succeed)")


async def _purchase_twice(w: World, a: Installation) -> None:
    invoice_id = await w.credits_invoice()
    balances: list[Any] = []
    for attempt in ("the purchase", "the same invoice again"):
        body = {"invoiceId": invoice_id}
        reply = await w.as_admin(a, "POST", a.path + "/billing/provision", body=body, key=new_key())
        if not reply.ok and not await w.calls_for(a):
            raise Skipped(w.not_wired())
        expect(reply.ok or (balances and reply.status == 409), f"{attempt}: {reply.says()}")
        if reply.ok:
            balances.append((reply.json or {}).get("balances") if isinstance(reply.json, dict) else None)
    expect(len(balances) < 2 or balances[0] == balances[1], f"credited twice: {balances[0]} then {balances[1]}")
