"""The simulator's own parts, against real local servers: its tokens pass our verifier, its control endpoints
rotate keys, inject faults, mint tokens and SSO codes, its recording hides every secret, and its webhook
signatures are what our server checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from marketplace_provider.adapters.http.webhooks import signature_matches
from marketplace_provider.adapters.jwks import JwksTokenVerifier
from marketplace_provider.adapters.simulator import recording, webhooks
from marketplace_provider.adapters.simulator.flows import ORDER, with_prerequisites
from marketplace_provider.adapters.simulator.server import Simulator
from marketplace_provider.adapters.simulator.tokens import SigningKey
from marketplace_provider.domain.errors import Unauthenticated
from marketplace_provider.domain.roles import Role

SECRET = "simulator-test-secret"
INST = "icfg_simulatortest"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(client_id="oac_sim_test", client_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def verifier(sim: Simulator) -> JwksTokenVerifier:
    settings = sim.provider_settings()
    return JwksTokenVerifier(jwks_url=settings["VERCEL_OIDC_JWKS_URL"], issuer=settings["VERCEL_OIDC_ISSUER"],
                             audience=settings["INTEGRATION_CLIENT_ID"], refetch_interval_seconds=0)


async def control(session: aiohttp.ClientSession, sim: Simulator, method: str, path: str, body: object = None) -> tuple[int, object]:
    async with session.request(method, f"{sim.url}/_simulator{path}", json=body) as reply:
        text = await reply.text()
        return reply.status, json.loads(text) if text else None


async def test_its_tokens_pass_our_verifier_and_a_rotation_is_followed(sim: Simulator, session: aiohttp.ClientSession) -> None:
    check = verifier(sim)
    caller = await check.verify(sim.kit.user_token(INST, "USER"))
    assert (caller.installation_id, caller.role) == (INST, Role.USER)
    old = sim.kit.user_token(INST)
    status, rotated = await control(session, sim, "POST", "/keys/rotate", {})
    assert status == 200 and rotated["served"] == [rotated["kid"]]
    assert (await check.verify(sim.kit.system_token(INST))).installation_id == INST  # the new key, fetched again
    with pytest.raises(Unauthenticated):
        await check.verify(old)  # no longer served


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        ({"kind": "user", "installationId": INST}, False),
        ({"kind": "system", "installationId": None}, False),
        ({"installationId": INST, "alg": "none"}, True),
        ({"installationId": INST, "alg": "HS256"}, True),
        ({"installationId": INST, "foreignKey": True}, True),
        ({"installationId": INST, "claims": {"exp": 1_000_000}}, True),
        ({"installationId": INST, "claims": {"aud": "oac_someone_else"}}, True),
        ({"installationId": INST, "omit": ["user_role"]}, True),
    ],
)
async def test_the_token_endpoint_mints_good_and_bad_tokens(
    sim: Simulator, session: aiohttp.ClientSession, spec: dict, refused: bool
) -> None:
    status, minted = await control(session, sim, "POST", "/tokens", spec)
    assert status == 200
    if refused:
        with pytest.raises(Unauthenticated):
            await verifier(sim).verify(minted["token"])
    else:
        await verifier(sim).verify(minted["token"])


async def test_faults_the_recording_and_the_access_token(sim: Simulator, session: aiohttp.ClientSession) -> None:
    token = sim.new_access_token(INST)
    base = f"{sim.url}/v1/installations/{INST}"
    status, pending = await control(session, sim, "POST", "/faults", {"failNext": 1, "status": 503, "rateLimitNext": 1})
    assert status == 200 and pending["pending"] == 2
    bearer = {"Authorization": f"Bearer {token}"}
    secrets_body = {"secrets": [{"name": "KV_URL", "value": "redis://s3cret"}]}
    answers = []
    for _ in range(3):
        async with session.put(f"{base}/resources/res_1/secrets", json=secrets_body, headers=bearer) as reply:
            answers.append((reply.status, reply.headers.get("Retry-After")))
    assert answers == [(503, None), (429, "1"), (201, None)]
    async with session.patch(base, json={}, headers={"Authorization": "Bearer another-token"}) as reply:
        assert reply.status == 401  # not this installation's access token
    status, shown = await control(session, sim, "GET", "/calls?since=2")
    assert [c["status"] for c in shown["calls"]] == [201, 401] and shown["next"] == 4
    text = json.dumps(shown) + recording.log_line(sim.vercel.calls[2])
    assert "s3cret" not in text and token not in text and "<hidden>" in text
    assert "secrets KV_URL (values hidden)" in recording.log_line(sim.vercel.calls[2])


async def test_an_sso_code_is_traded_once_and_only_with_the_client_secret(sim: Simulator, session: aiohttp.ClientSession) -> None:
    status, made = await control(session, sim, "POST", "/sso", {"installationId": INST, "role": "USER"})
    assert status == 200
    exchange = f"{sim.url}/v1/integrations/sso/token"
    wrong = {"code": made["code"], "client_id": "oac_sim_test", "client_secret": "not-it"}
    async with session.post(exchange, json=wrong) as reply:
        assert reply.status == 403
    right = {**wrong, "client_secret": SECRET}
    async with session.post(exchange, json=right) as reply:
        assert reply.status == 200
        id_token = (await reply.json())["id_token"]
    async with session.post(exchange, json=right) as reply:
        assert reply.status == 403  # used
    caller = await verifier(sim).verify(id_token)
    assert (caller.installation_id, caller.role) == (INST, Role.USER)
    assert SECRET not in json.dumps((await control(session, sim, "GET", "/calls"))[1])
    url = sim.login_url("http://127.0.0.1:9", INST, resource_id="res_1", path="billing")
    assert url.startswith("http://127.0.0.1:9/callback?mode=sso&code=sso_") and "resource_id=res_1" in url


def test_every_documented_event_is_signed_as_our_server_checks() -> None:
    assert {"marketplace.invoice.refunded", "integration-configuration.removed"} <= set(webhooks.EVENT_TYPES)
    for kind in webhooks.EVENT_TYPES:
        body = webhooks.event_body(kind, INST, resource_id="res_1", invoice_id="inv_1")
        event = json.loads(body)
        assert event["type"] == kind and event["payload"]["configuration"]["id"] == INST
        assert signature_matches(SECRET, body, webhooks.signed_headers(body, SECRET)[webhooks.SIGNATURE_HEADER])
        assert not signature_matches(SECRET, body, webhooks.sign(body, "another secret"))
    refund = json.loads(webhooks.event_body("marketplace.invoice.refunded", INST))["payload"]
    assert {"amount", "reason"} <= set(refund) and "invoiceTotal" not in refund


def test_flows_bring_what_they_need() -> None:
    assert with_prerequisites(["update"]) == ["install", "plans", "provision", "update"]
    assert with_prerequisites(["uninstall", "install"]) == ["install", "uninstall"]
    assert with_prerequisites(["all"]) == list(ORDER)
    with pytest.raises(ValueError, match="unknown flow"):
        with_prerequisites(["dance"])


def test_a_kept_signing_key_keeps_its_kid(tmp_path: Path) -> None:
    key = SigningKey.generate()
    again = SigningKey.from_pem(key.private_pem())
    assert again.kid == SigningKey.from_pem(key.private_pem()).kid and again.public_jwk()["n"] == key.public_jwk()["n"]
    assert "PRIVATE" not in repr(again)
