"""Resources through HTTP: provision, read, list, update, delete, rotate secrets, REPL."""

from __future__ import annotations

from tests.http.conftest import Installation, provision_body


async def test_provision_returns_resource_with_secrets(installed: Installation) -> None:
    reply = await installed.provision(name="cache", metadata={"region": "fra1"}, externalId="ext-1")
    assert reply.status == 200, reply.body
    body = reply.json
    assert body["id"].startswith("res_")
    assert body["productId"] == "acme-kv"
    assert body["name"] == "cache"
    assert body["status"] == "ready"
    assert body["metadata"]["region"] == "fra1"
    assert set(body["metadata"]) >= {"region"}  # defaults filled in for the other fields
    assert body["billingPlan"]["id"] == "free"
    assert body["billingPlan"]["type"] == "subscription"
    assert body["secrets"] and all(s["name"] and s["value"] for s in body["secrets"])


async def test_get_resource_has_no_secrets(installed: Installation) -> None:
    created = (await installed.provision()).json
    reply = await installed.resource(created["id"])
    assert reply.status == 200
    assert "secrets" not in reply.json
    assert reply.json["id"] == created["id"]
    assert reply.json["billingPlan"]["id"] == "free"


async def test_viewer_can_read_but_not_change(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}"
    assert (await installed.api.get(path, token=installed.viewer, style="user")).status == 200
    renamed = await installed.api.patch(path, token=installed.viewer, style="user", body={"name": "x"})
    assert renamed.status == 403
    deleted = await installed.api.delete(path, token=installed.viewer, style="user")
    assert deleted.status == 403
    assert (await installed.resource(created["id"])).json["name"] == created["name"]


async def test_unknown_resource_and_product_are_404(installed: Installation) -> None:
    assert (await installed.resource("res_unknown")).status == 404
    reply = await installed.provision(productId="no-such-product")
    assert reply.status == 404
    assert reply.error_code == "not_found"


async def test_provision_on_unknown_installation_is_404(fresh: Installation) -> None:
    reply = await fresh.provision()
    assert reply.status == 404


async def test_provision_validates_plan_and_metadata(installed: Installation) -> None:
    cases = [
        ({"billingPlanId": "nope"}, "billingPlanId"),
        ({"billingPlanId": "legacy"}, "billingPlanId"),  # disabled
        ({"billingPlanId": "team-free"}, "billingPlanId"),  # installation-level
        ({"metadata": {"region": "mars"}}, "metadata.region"),
        ({"metadata": {"unknown": 1}}, "metadata.unknown"),
        ({"name": ""}, "name"),
    ]
    for changes, field in cases:
        reply = await installed.provision(**changes)
        assert reply.status == 400, (changes, reply.body)
        assert field in [f["key"] for f in reply.json["error"]["fields"]], (changes, reply.body)
    listed = await installed.api.get(installed.path + "/resources", token=installed.system, style="system")
    assert listed.json == {"resources": []}


async def test_required_metadata_without_default(installed: Installation) -> None:
    reply = await installed.provision(productId="acme-queue", billingPlanId="queue-free", metadata={})
    assert reply.status == 400
    keys = [f["key"] for f in reply.json["error"]["fields"]]
    assert keys and all(k.startswith("metadata.") for k in keys)


async def test_list_resources_with_ids_filter(installed: Installation) -> None:
    a = (await installed.provision(name="a")).json
    b = (await installed.provision(name="b")).json
    everything = await installed.api.get(installed.path + "/resources", token=installed.system, style="system")
    assert [r["id"] for r in everything.json["resources"]] == [a["id"], b["id"]]
    only_b = await installed.api.get(
        installed.path + "/resources", token=installed.system, style="system", params=[("ids", b["id"])]
    )
    assert [r["id"] for r in only_b.json["resources"]] == [b["id"]]


async def test_update_resource(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}"
    reply = await installed.api.patch(
        path,
        token=installed.admin,
        style="user",
        body={"name": "renamed", "metadata": {"region": "sfo1"}, "billingPlanId": "pro"},
    )
    assert reply.status == 200, reply.body
    assert reply.json["name"] == "renamed"
    assert reply.json["metadata"]["region"] == "sfo1"
    assert reply.json["billingPlan"]["id"] == "pro"
    assert (await installed.resource(created["id"])).json["name"] == "renamed"


async def test_update_resource_bad_plan_changes_nothing(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}"
    reply = await installed.api.patch(path, token=installed.admin, style="user", body={"name": "x", "billingPlanId": "nope"})
    assert reply.status == 400
    after = (await installed.resource(created["id"])).json
    assert after["name"] == created["name"] and after["billingPlan"]["id"] == "free"


async def test_deprecated_status_field_is_honoured(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}"
    reply = await installed.api.patch(path, token=installed.admin, style="user", body={"status": "suspended"})
    assert reply.status == 200 and reply.json["status"] == "suspended"
    bad = await installed.api.patch(path, token=installed.admin, style="user", body={"status": "sleeping"})
    assert bad.status == 400


async def test_delete_resource_then_again(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}"
    assert (await installed.api.delete(path, token=installed.admin, style="user")).status == 204
    assert (await installed.resource(created["id"])).status == 404
    assert (await installed.api.delete(path, token=installed.system, style="system")).status == 204
    assert (await installed.api.delete(f"{installed.path}/resources/res_never", token=installed.system, style="system")).status == 404


async def test_resource_of_another_installation_is_not_visible(installed: Installation, other: Installation) -> None:
    created = (await installed.provision()).json
    assert (await other.resource(created["id"])).status == 404


async def test_rotate_secrets_sync(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}/secrets/rotate"
    reply = await installed.api.post(
        path, token=installed.admin, style="user", body={"reason": "leak", "delayOldSecretsExpirationHours": 2.5}
    )
    assert reply.status == 200, reply.body
    assert reply.json["sync"] is True
    new = {s["name"]: s["value"] for s in reply.json["secrets"]}
    old = {s["name"]: s["value"] for s in created["secrets"]}
    assert any(old[name] != value for name, value in new.items())


async def test_rotate_secrets_delay_bounds(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}/secrets/rotate"
    for delay in (-1, 720.5, "soon"):
        reply = await installed.api.post(path, token=installed.admin, style="user", body={"delayOldSecretsExpirationHours": delay})
        assert reply.status == 400, (delay, reply.body)
    for delay in (0, 720):
        reply = await installed.api.post(path, token=installed.system, style="system", body={"delayOldSecretsExpirationHours": delay})
        assert reply.status == 200
    assert (await installed.api.post(path, token=installed.viewer, style="user", body={})).status == 403


async def test_repl(installed: Installation) -> None:
    created = (await installed.provision()).json
    path = f"{installed.path}/resources/{created['id']}/repl"
    reply = await installed.api.post(path, token=installed.admin, style="user", body={"input": "help"})
    assert reply.status == 200
    assert isinstance(reply.json, list) and reply.json[0]["type"] in ("paragraph", "table")
    read_only = await installed.api.post(path, token=installed.viewer, style="user", body={"input": "info", "readOnly": True})
    assert read_only.status == 200
    writing = await installed.api.post(path, token=installed.viewer, style="user", body={"input": "set a 1"})
    assert writing.status == 403


async def test_provision_body_is_unchanged_by_extra_fields(installed: Installation) -> None:
    reply = await installed.api.post(
        installed.path + "/resources", token=installed.admin, style="user", body={**provision_body(), "futureField": {"x": 1}}
    )
    assert reply.status == 200
