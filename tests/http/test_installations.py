"""Installations through HTTP: upsert, get, update plan, delete with and without cascade."""

from __future__ import annotations

import asyncio

from tests.http.conftest import Installation, upsert_body


async def test_upsert_creates_then_updates(fresh: Installation) -> None:
    first = await fresh.upsert()
    assert first.status == 204 and first.body == b""
    again = await fresh.api.put(fresh.path, token=fresh.admin, style="user", body=upsert_body("new-token"))
    assert again.status == 204
    got = await fresh.api.get(fresh.path, token=fresh.system, style="system")
    assert got.status == 200
    # a new installation starts on the catalog's free installation-level plan
    assert got.json["billingPlan"]["id"] == "team-free"
    assert got.json["billingPlan"]["scope"] == "installation"
    assert "notification" not in got.json


async def test_get_unknown_installation_is_404(fresh: Installation) -> None:
    reply = await fresh.api.get(fresh.path, token=fresh.system, style="system")
    assert reply.status == 404
    assert reply.error_code == "not_found"


async def test_upsert_by_viewer_is_forbidden_and_creates_nothing(fresh: Installation) -> None:
    reply = await fresh.api.put(fresh.path, token=fresh.viewer, style="user", body=upsert_body())
    assert reply.status == 403
    assert reply.json["error"]["user"]["message"]
    assert (await fresh.api.get(fresh.path, token=fresh.system, style="system")).status == 404


async def test_update_installation_plan(installed: Installation) -> None:
    reply = await installed.api.patch(installed.path, token=installed.admin, style="user", body={"billingPlanId": "team-pro"})
    assert reply.status == 204
    got = await installed.api.get(installed.path, token=installed.system, style="system")
    assert got.json["billingPlan"]["id"] == "team-pro"


async def test_update_installation_without_plan_changes_nothing(installed: Installation) -> None:
    reply = await installed.api.patch(installed.path, token=installed.admin, style="user", body={})
    assert reply.status == 204
    got = await installed.api.get(installed.path, token=installed.system, style="system")
    assert got.json["billingPlan"]["id"] == "team-free"


async def test_update_installation_to_a_resource_plan_is_400(installed: Installation) -> None:
    reply = await installed.api.patch(installed.path, token=installed.admin, style="user", body={"billingPlanId": "pro"})
    assert reply.status == 400
    assert reply.json["error"]["fields"][0]["key"] == "billingPlanId"
    got = await installed.api.get(installed.path, token=installed.system, style="system")
    assert got.json["billingPlan"]["id"] == "team-free"


async def test_delete_free_installation_is_finalized_at_once(installed: Installation) -> None:
    assert (await installed.provision()).status == 200
    reply = await installed.api.delete(installed.path, token=installed.admin, style="user")
    assert reply.status == 200
    assert reply.json == {"finalized": True}
    # gone for the Partner API; a repeated delete succeeds with nothing to do
    assert (await installed.api.get(installed.path, token=installed.system, style="system")).status == 404
    again = await installed.api.delete(installed.path, token=installed.system, style="system")
    assert again.status == 204


async def test_delete_with_paid_plan_waits_for_final_invoices(installed: Installation) -> None:
    assert (await installed.provision(billingPlanId="pro")).status == 200
    reply = await installed.api.delete(installed.path, token=installed.admin, style="user", body={"reason": "bye"})
    assert reply.status == 200
    assert reply.json == {"finalized": False}


async def test_delete_with_cascade_uninstalls_resources(installed: Installation) -> None:
    resource = (await installed.provision()).json
    reply = await installed.api.delete(
        installed.path, token=installed.admin, style="user", body={"cascadeResourceDeletion": True}
    )
    assert reply.status == 200
    # the installation can be re-installed; its old resource stays uninstalled
    assert (await installed.upsert()).status == 204
    assert (await installed.resource(resource["id"])).status == 404


async def test_delete_unknown_installation_is_204(fresh: Installation) -> None:
    reply = await fresh.api.delete(fresh.path, token=fresh.admin, style="user")
    assert reply.status == 204


async def test_concurrent_upserts_leave_one_installation(fresh: Installation) -> None:
    replies = await asyncio.gather(*(fresh.upsert() for _ in range(200)))
    assert {r.status for r in replies} == {204}
    got = await fresh.api.get(fresh.path, token=fresh.system, style="system")
    assert got.status == 200
    listed = await fresh.api.get(fresh.path + "/resources", token=fresh.system, style="system")
    assert listed.json == {"resources": []}


async def test_readiness_shows_the_outbox_counts(installed: Installation) -> None:
    ready = await installed.api.get("/readyz")
    assert ready.status == 200
    assert ready.json["status"] == "ok" and ready.json["storage"] == "up"
    assert set(ready.json["outbox"]) == {"pending", "retrying", "dead"}
    assert all(isinstance(n, int) and n >= 0 for n in ready.json["outbox"].values())
