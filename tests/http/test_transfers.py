"""Resource transfers through HTTP: create on the source, verify and accept on the target."""

from __future__ import annotations

import time

from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import TokenKit
from tests.http.conftest import Installation, new_installation_id


def in_one_hour_ms() -> int:
    return int((time.time() + 3600) * 1000)


async def create_claim(source: Installation, resource_ids: list[str]) -> str:
    reply = await source.api.post(
        source.path + "/resource-transfer-requests",
        token=source.system,
        style="system",
        body={"resourceIds": resource_ids, "expiresAt": in_one_hour_ms()},
    )
    assert reply.status == 200, reply.body
    return reply.json["providerClaimId"]


async def test_transfer_moves_resources(installed: Installation, other: Installation) -> None:
    target = other
    resource = (await installed.provision()).json
    claim = await create_claim(installed, [resource["id"]])
    claim_path = f"{target.path}/resource-transfer-requests/{claim}"

    # accept before verify: refused
    early = await target.api.post(claim_path + "/accept", token=target.system, style="system")
    assert early.status == 409

    verified = await target.api.get(claim_path + "/verify", token=target.system, style="system")
    assert verified.status == 200
    assert verified.json["valid"] is True
    assert verified.json["billingPlan"]["id"] == "team-free"

    accepted = await target.api.post(
        claim_path + "/accept", token=target.system, style="system", body={"targetInstallationId": target.id}
    )
    assert accepted.status == 204
    assert (await target.resource(resource["id"])).status == 200
    assert (await installed.resource(resource["id"])).status == 404

    # a repeat by the same target succeeds; verify after completion is a conflict
    assert (await target.api.post(claim_path + "/accept", token=target.system, style="system")).status == 204
    assert (await target.api.get(claim_path + "/verify", token=target.system, style="system")).status == 409


async def test_accept_by_another_target_after_completion_is_409(
    installed: Installation, other: Installation, api: Api, token_kit: TokenKit
) -> None:
    first, second = other, Installation(new_installation_id(), api, token_kit)
    assert (await second.upsert()).status == 204
    resource = (await installed.provision()).json
    claim = await create_claim(installed, [resource["id"]])
    for target in (first, second):
        path = f"{target.path}/resource-transfer-requests/{claim}/verify"
        assert (await target.api.get(path, token=target.system, style="system")).status == 200
    path = "/resource-transfer-requests/" + claim + "/accept"
    assert (await first.api.post(first.path + path, token=first.system, style="system")).status == 204
    assert (await second.api.post(second.path + path, token=second.system, style="system")).status == 409
    assert (await first.resource(resource["id"])).status == 200


async def test_unknown_claim_is_404(installed: Installation) -> None:
    path = f"{installed.path}/resource-transfer-requests/claim_nope"
    assert (await installed.api.get(path + "/verify", token=installed.system, style="system")).status == 404
    assert (await installed.api.post(path + "/accept", token=installed.system, style="system")).status == 404


async def test_create_rejects_foreign_or_expired(installed: Installation) -> None:
    path = installed.path + "/resource-transfer-requests"
    foreign = await installed.api.post(
        path, token=installed.system, style="system", body={"resourceIds": ["res_other"], "expiresAt": in_one_hour_ms()}
    )
    assert foreign.status == 422
    resource = (await installed.provision()).json
    expired = await installed.api.post(
        path, token=installed.system, style="system", body={"resourceIds": [resource["id"]], "expiresAt": 1000}
    )
    assert expired.status == 400
    assert expired.json["error"]["fields"][0]["key"] == "expiresAt"
    empty = await installed.api.post(path, token=installed.system, style="system", body={"resourceIds": [], "expiresAt": in_one_hour_ms()})
    assert empty.status == 400


# An expired claim cannot be verified: tests/domain/services/test_transfers.py, with a clock the test moves.


async def test_older_put_form(installed: Installation, other: Installation) -> None:
    fresh = other
    resource = (await installed.provision()).json
    claim = "tr_" + fresh.id
    body = {"resourceIds": [resource["id"]], "expiration": int(time.time()) + 3600}
    put = await installed.api.put(f"{installed.path}/resource-transfer-requests/{claim}", token=installed.system, style="system", body=body)
    assert put.status == 204
    again = await installed.api.put(f"{installed.path}/resource-transfer-requests/{claim}", token=installed.system, style="system", body=body)
    assert again.status == 409
    path = f"{fresh.path}/resource-transfer-requests/{claim}"
    verified = await fresh.api.post(path + "/verify", token=fresh.system, style="system")
    assert verified.status == 200 and verified.json["valid"] is True
    assert (await fresh.api.post(path + "/accept", token=fresh.system, style="system")).status == 204
    assert (await fresh.resource(resource["id"])).status == 200
