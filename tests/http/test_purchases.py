"""Prepayment purchases: Vercel's invoice is the proof; one invoice credits once."""

from __future__ import annotations

import secrets

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.http.conftest import Installation


def paid_invoice(invoice_id: str, items: list[dict], state: str = "paid") -> dict:
    return {
        "invoiceId": invoice_id,
        "state": state,
        "total": "0.00",
        "invoiceDate": "2026-11-01T00:00:00Z",
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "items": items,
        "created": "2026-11-01T00:00:00Z",
        "updated": "2026-11-01T00:00:00Z",
    }


async def buy(inst: Installation, invoice_id: str, **kw: object):
    return await inst.api.post(
        inst.path + "/billing/provision", token=inst.admin, style="user", body={"invoiceId": invoice_id}, **kw
    )


async def test_paid_invoice_credits_once(installed: Installation, fake_vercel: FakeVercel) -> None:
    resource = (await installed.provision(billingPlanId="credits")).json
    invoice_id = "inv_" + secrets.token_hex(6)
    fake_vercel.invoices[invoice_id] = paid_invoice(
        invoice_id,
        [
            {"billingPlanId": "credits", "name": "Credits", "price": "10.00", "quantity": 1, "units": "USD", "total": "10.00"},
            {"billingPlanId": "credits", "resourceId": resource["id"], "name": "Credits", "price": "5.559", "quantity": 1, "units": "USD", "total": "5.559"},
        ],
    )
    first = await buy(installed, invoice_id)
    assert first.status == 200, first.body
    balances = {b.get("resourceId"): b["currencyValueInCents"] for b in first.json["balances"]}
    assert balances == {None: 1000, resource["id"]: 555}  # fractions of a cent are never granted
    assert first.json["timestamp"].endswith("Z")

    second = await buy(installed, invoice_id)  # a retry without a key: no double credit
    assert second.status == 200
    assert {b.get("resourceId"): b["currencyValueInCents"] for b in second.json["balances"]} == balances

    # Vercel was asked with the installation's own access token
    call = next(c for c in reversed(fake_vercel.calls) if c.path.endswith(invoice_id))
    assert call.method == "GET"
    assert call.path == f"/v1/installations/{installed.id}/billing/invoices/{invoice_id}"
    assert call.authorization == "Bearer vercel-access-token"


async def test_unpaid_or_unknown_invoice_is_422(installed: Installation, fake_vercel: FakeVercel) -> None:
    invoice_id = "inv_" + secrets.token_hex(6)
    fake_vercel.invoices[invoice_id] = paid_invoice(invoice_id, [{"total": "10.00"}], state="notpaid")
    unpaid = await buy(installed, invoice_id)
    assert unpaid.status == 422
    assert unpaid.error_code == "unprocessable"
    unknown = await buy(installed, "inv_unknown")
    assert unknown.status == 422
    # once it is paid, it is credited (the refusal remembered nothing)
    fake_vercel.invoices[invoice_id]["state"] = "paid"
    paid = await buy(installed, invoice_id)
    assert paid.status == 200
    assert paid.json["balances"] == [{"currencyValueInCents": 1000}]


async def test_vercel_down_is_503(installed: Installation, fake_vercel: FakeVercel) -> None:
    fake_vercel.fail_status = 500
    try:
        reply = await buy(installed, "inv_x")
    finally:
        fake_vercel.fail_status = None
    assert reply.status == 503
    assert reply.error_code == "unavailable"


async def test_viewer_cannot_buy(installed: Installation) -> None:
    reply = await installed.api.post(
        installed.path + "/billing/provision", token=installed.viewer, style="user", body={"invoiceId": "inv_1"}
    )
    assert reply.status == 403


async def test_a_purchase_queues_the_new_balances_for_vercel(installed: Installation, fake_vercel: FakeVercel) -> None:
    """Vercel's top-up thresholds read the reported balance, so a purchase records a report in its own
    transaction (the worker delivers it); /readyz shows the queue."""
    before = (await installed.api.get("/readyz")).json["outbox"]
    invoice_id = "inv_" + secrets.token_hex(6)
    fake_vercel.invoices[invoice_id] = paid_invoice(
        invoice_id, [{"billingPlanId": "credits", "name": "Credits", "price": "3.00", "quantity": 1, "units": "USD", "total": "3.00"}]
    )
    assert (await buy(installed, invoice_id)).status == 200
    assert (await buy(installed, invoice_id)).status == 200  # the same invoice again credits and queues nothing
    after = (await installed.api.get("/readyz")).json["outbox"]
    assert after == {**before, "pending": before["pending"] + 1}
