"""POST /webhook through a real server on every backend: signatures, the inbox, and what events do."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time

import pytest

from tests.http.conftest import Installation
from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator import webhooks
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel

SECRET = b"test-client-secret"  # INTEGRATION_CLIENT_SECRET of the test server (conftest.py)


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return webhooks.sign(body, secret)


def event(kind: str, installation_id: str, *, created_ms: int | None = None, **payload: object) -> bytes:
    return json.dumps({
        "id": "evt_" + secrets.token_hex(8),
        "type": kind,
        "createdAt": created_ms or int(time.time() * 1000),
        "payload": {"configuration": {"id": installation_id}, "installationId": installation_id, **payload},
    }).encode()


def invoice_payload(invoice_id: str) -> dict:
    return {"invoiceId": invoice_id, "externalInvoiceId": None, "invoiceDate": "2026-11-01T00:00:00Z",
            "invoiceTotal": "20.00", "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}}


async def post(api: Api, body: bytes, signature: str | None = "sign", **headers: str) -> Reply:
    sent = {"Content-Type": "application/json", **headers}
    if signature is not None:
        sent["x-vercel-signature"] = sign(body) if signature == "sign" else signature
    return await api.post("/webhook", raw=body, headers=sent)


async def until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Events are applied just after the answer: wait for their effect."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.02)


async def status_of(installed: Installation, resource_id: str) -> str:
    return (await installed.resource(resource_id)).json["status"]


OTHER_BODY = b'{"id":"evt_other","type":"test-webhook","createdAt":1764400000000,"payload":{}}'


@pytest.mark.parametrize(
    ("name", "signature"),
    [
        ("wrong secret", sign(b"x", b"not-the-secret")),
        ("another body's signature", sign(OTHER_BODY)),
        ("missing", None),
        ("empty", ""),
        ("not hex", "zz" * 20),
        ("truncated", "sign-truncated"),
        ("sha256 instead of sha1", "sha256"),
    ],
)
async def test_a_bad_signature_is_403_and_changes_nothing(
    installed: Installation, name: str, signature: str | None
) -> None:
    created = await installed.provision(billingPlanId="pro")
    body = event("marketplace.invoice.notpaid", installed.id, **invoice_payload("inv_" + secrets.token_hex(4)))
    if signature == "sign-truncated":
        signature = sign(body)[:-2]
    elif signature == "sha256":
        signature = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    before = (await installed.api.get("/readyz")).json["outbox"]
    refused = await post(installed.api, body, signature)
    assert refused.status == 403, name
    assert refused.json == {"error": {"code": "invalid_signature", "message": "signature didn't match"}}
    await asyncio.sleep(0.1)
    assert await status_of(installed, created.json["id"]) == "ready"
    assert (await installed.api.get("/readyz")).json["outbox"] == before


async def test_a_good_signature_is_accepted_in_either_case_and_whatever_the_content_type(installed: Installation) -> None:
    body = event("test-webhook", installed.id)
    upper = await post(installed.api, body, sign(body).upper())
    assert upper.status == 200 and upper.json == {"received": True, "duplicate": False}
    text = event("test-webhook", installed.id)
    plain = await post(installed.api, text, **{"Content-Type": "text/plain"})
    assert plain.status == 200


async def test_the_same_event_twice_is_acknowledged_and_applied_once(
    installed: Installation, fake_vercel: FakeVercel
) -> None:
    resource = (await installed.provision(billingPlanId="pro")).json
    body = event("marketplace.invoice.notpaid", installed.id, **invoice_payload("inv_" + secrets.token_hex(4)))
    first = await post(installed.api, body)
    assert first.status == 200 and first.json == {"received": True, "duplicate": False}
    assert await until(lambda: _is(installed, resource["id"], "suspended"))
    queued = (await installed.api.get("/readyz")).json["outbox"]
    second = await post(installed.api, body)
    assert second.status == 200 and second.json == {"received": True, "duplicate": True}
    await asyncio.sleep(0.2)
    assert (await installed.api.get("/readyz")).json["outbox"] == queued  # nothing more owed to Vercel


async def _is(installed: Installation, resource_id: str, status: str) -> bool:
    return await status_of(installed, resource_id) == status


async def test_notpaid_suspends_and_paid_resumes_through_http(installed: Installation) -> None:
    resource = (await installed.provision(billingPlanId="pro")).json
    invoice_id = "inv_" + secrets.token_hex(4)
    start = int(time.time() * 1000)
    assert (await post(installed.api, event("marketplace.invoice.created", installed.id, created_ms=start,
                                            **invoice_payload(invoice_id)))).status == 200
    assert (await post(installed.api, event("marketplace.invoice.notpaid", installed.id, created_ms=start + 1000,
                                            **invoice_payload(invoice_id)))).status == 200
    assert await until(lambda: _is(installed, resource["id"], "suspended"))
    shown = (await installed.api.get(installed.path, token=installed.system, style="system")).json
    assert shown["notification"]["level"] == "error" and shown["notification"]["href"].startswith("sso:")
    assert (await post(installed.api, event("marketplace.invoice.paid", installed.id, created_ms=start + 2000,
                                            **invoice_payload(invoice_id)))).status == 200
    assert await until(lambda: _is(installed, resource["id"], "ready"))
    # a stale notpaid (it happened before the payment) changes nothing
    assert (await post(installed.api, event("marketplace.invoice.notpaid", installed.id, created_ms=start + 1500,
                                            **invoice_payload(invoice_id)))).status == 200
    await asyncio.sleep(0.2)
    assert await status_of(installed, resource["id"]) == "ready"


async def test_removed_then_the_partner_api_answers_404(installed: Installation) -> None:
    (await installed.provision(billingPlanId="free")).json
    assert (await post(installed.api, event("integration-configuration.removed", installed.id))).status == 200

    async def gone() -> bool:
        reply = await installed.api.get(installed.path, token=installed.system, style="system")
        return reply.status == 404

    assert await until(gone)


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("not JSON", b"{nope", 400),
        ("JSON but not an object", b"[1, 2]", 400),
        ("no id", b'{"type":"test-webhook","createdAt":1764400000000}', 400),
        ("no type", b'{"id":"evt_x","createdAt":1764400000000}', 400),
        ("createdAt not a number", b'{"id":"evt_x","type":"t","createdAt":"yesterday"}', 400),
        ("createdAt out of range", b'{"id":"evt_x","type":"t","createdAt":1e300}', 400),
        ("payload not an object", b'{"id":"evt_x","type":"t","createdAt":1,"payload":[]}', 400),
        ("empty id", b'{"id":"","type":"t","createdAt":1}', 400),
        ("invalid UTF-8", b'{"id":"evt_\xff","type":"t","createdAt":1}', 400),
    ],
)
async def test_a_signed_but_malformed_body_is_400_never_5xx(api: Api, name: str, body: bytes, code: int) -> None:
    reply = await post(api, body)
    assert reply.status == code, (name, reply.body)
    assert reply.error_code is not None


async def test_unknown_types_and_unknown_installations_are_acknowledged(api: Api) -> None:
    for body in (event("some.future.event", "icfg_" + secrets.token_hex(8)),
                 event("marketplace.invoice.paid", "icfg_unknown" + secrets.token_hex(4), **invoice_payload("inv_u"))):
        reply = await post(api, body)
        assert reply.status == 200 and reply.json["received"] is True


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    body = b'{"id":"evt_big","type":"t","createdAt":1,"payload":{"x":"' + b"a" * 1_100_000 + b'"}}'
    reply = await post(api, body)
    assert reply.status == 413 and reply.error_code == "payload_too_large"
