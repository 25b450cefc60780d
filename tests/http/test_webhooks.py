"""POST /webhook through a real server on every backend: signatures, the inbox, and what events do."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import re
import secrets
import time

import pytest

from marketplace_provider.adapters.simulator import webhooks
from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import ACCOUNT_ID, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.http.conftest import Installation

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


class EventLog:
    """The dashboard's event log of one installation, read as a member signed in through SSO sees it: how the
    tests know that an event was applied (and what it did) rather than guessing how long that takes."""

    def __init__(self, installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit) -> None:
        self.installed, self.fake_vercel, self.token_kit = installed, fake_vercel, token_kit
        self.session: str | None = None

    async def _sign_in(self) -> str:
        user_id = secrets.token_hex(6)
        token = self.token_kit.user_token(self.installed.id, user_id=user_id, sub=f"account:{ACCOUNT_ID}:user:{user_id}")
        self.fake_vercel.members[user_id] = {"id": user_id, "role": "ADMIN"}
        code = "code_" + secrets.token_hex(12)
        self.fake_vercel.sso_tokens[code] = {"id_token": token, "access_token": None, "token_type": None}
        landed = await self.installed.api.get(f"/callback?mode=sso&code={code}&state=s")
        cookie = next(c for c in landed.set_cookies if c.startswith("mp_session="))
        return cookie.split(";", 1)[0].split("=", 1)[1]

    async def row(self, event_id: str) -> tuple[int, bool, str] | None:
        """(deliveries, applied, note) of the event, or None while it is not listed."""
        self.session = self.session or await self._sign_in()
        page = await self.installed.api.get("/dashboard/events", headers={"Cookie": f"mp_session={self.session}"})
        assert page.status == 200, page.body[:300]
        found = re.search(
            rf"<code>{re.escape(event_id)}</code></td>\s*<td class=\"num\">(\d+)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>",
            page.body.decode(), re.S,
        )
        if found is None:
            return None
        return int(found[1]), "badge-pending" not in found[2], html.unescape(found[3])

    async def applied(self, event_id: str, deliveries: int = 1) -> tuple[int, bool, str]:
        """Wait until the event is listed as applied after `deliveries` deliveries; its row."""

        async def done() -> tuple[int, bool, str] | None:
            got = await self.row(event_id)
            return got if got is not None and got[0] == deliveries and got[1] else None

        found = await until(done)
        assert found is not None, (event_id, await self.row(event_id))
        return found


@pytest.fixture
def event_log(installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit) -> EventLog:
    return EventLog(installed, fake_vercel, token_kit)


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
    # a refused delivery is neither stored nor applied later (no work is left behind the answer): look at once
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
    installed: Installation, fake_vercel: FakeVercel, event_log: EventLog
) -> None:
    resource = (await installed.provision(billingPlanId="pro")).json
    body = event("marketplace.invoice.notpaid", installed.id, **invoice_payload("inv_" + secrets.token_hex(4)))
    first = await post(installed.api, body)
    assert first.status == 200 and first.json == {"received": True, "duplicate": False}
    await event_log.applied(json.loads(body)["id"])
    assert await status_of(installed, resource["id"]) == "suspended"
    queued = (await installed.api.get("/readyz")).json["outbox"]
    second = await post(installed.api, body)
    assert second.status == 200 and second.json == {"received": True, "duplicate": True}
    await event_log.applied(json.loads(body)["id"], deliveries=2)  # the repeat is counted on the one event
    assert (await installed.api.get("/readyz")).json["outbox"] == queued  # nothing more owed to Vercel


async def _is(installed: Installation, resource_id: str, status: str) -> bool:
    return await status_of(installed, resource_id) == status


async def test_notpaid_suspends_and_paid_resumes_through_http(installed: Installation, event_log: EventLog) -> None:
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
    # a stale notpaid (it happened before the payment) changes nothing: once applied, it says so
    stale = event("marketplace.invoice.notpaid", installed.id, created_ms=start + 1500, **invoice_payload(invoice_id))
    assert (await post(installed.api, stale)).status == 200
    _, _, note = await event_log.applied(json.loads(stale)["id"])
    assert note == "stale or repeated notpaid: the invoice stays paid"
    assert await status_of(installed, resource["id"]) == "ready"


async def test_removed_then_the_partner_api_answers_404(installed: Installation) -> None:
    _ = (await installed.provision(billingPlanId="free")).json
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
