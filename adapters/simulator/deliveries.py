"""The flows where Vercel delivers rather than asks: signed webhooks (in order or shuffled, once or twice), the
SSO sign-in, and billing, with what the provider then calls back on Vercel."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from marketplace_provider.adapters.simulator import webhooks
from marketplace_provider.adapters.simulator.driver import Driver, told
from marketplace_provider.adapters.simulator.vercel_answers import Call

ACKNOWLEDGED = (200, 201, 202, 204)
# invoice A: created, notpaid, paid, later refunded; invoice B: created, overdue, paid
# (kind, invoice, Vercel's state of the invoice once the event happened, what the provider is expected to do)
INVOICE_LIFE = (
    ("marketplace.invoice.created", "a", "invoiced", None),
    ("marketplace.invoice.notpaid", "a", "notpaid", "hold"),
    ("marketplace.invoice.paid", "a", "paid", "release"),
    ("marketplace.invoice.created", "b", "invoiced", None),
    ("marketplace.invoice.overdue", "b", "overdue", "hold"),
    ("marketplace.invoice.paid", "b", "paid", "release"),
    ("marketplace.invoice.refunded", "a", "refunded", None),
)
OTHER_EVENTS = tuple(k for k in webhooks.EVENT_TYPES
                     if k not in webhooks.INVOICE_EVENTS and k != webhooks.CONFIGURATION_REMOVED)


async def webhooks_flow(d: Driver) -> None:
    """Every documented event type but the removal (that one ends the life: `uninstall` sends it)."""
    life = d.life
    invoices = {name: f"inv_sim_{name}_{life.installation_id[-6:]}" for name in ("a", "b")}
    start = datetime.now(UTC) - timedelta(days=1)
    # (event body, invoice id, its state once delivered, expectation)
    planned: list[tuple[bytes, str | None, str | None, str | None]] = []
    for i, (kind, name, state, expect) in enumerate(INVOICE_LIFE):
        body = webhooks.envelope(kind, webhooks.payload_for(kind, life.installation_id, invoice_id=invoices[name],
                                 resource_id=life.resource_id),
                                 created_ms=int((start + timedelta(minutes=i)).timestamp() * 1000))
        planned.append((json.dumps(body).encode(), invoices[name], state, expect))
    planned += [(webhooks.event_body(k, life.installation_id, resource_id=life.resource_id), None, None, None)
                for k in OTHER_EVENTS]
    for invoice_id in invoices.values():
        d.sim.vercel.invoices[invoice_id] = _invoice(invoice_id, "invoiced")
    if d.options.shuffle:
        random.Random(d.options.seed).shuffle(planned)
        for invoice_id, final in ((invoices["a"], "refunded"), (invoices["b"], "paid")):
            d.sim.vercel.invoices[invoice_id]["state"] = final  # out of order, Vercel already knows the end
    mark = d.mark()
    for raw, planned_invoice, known_state, expect in planned:
        if planned_invoice is not None and not d.options.shuffle:
            d.sim.vercel.invoices[planned_invoice]["state"] = known_state  # what Get Invoice says from now on
        step_mark = d.mark()
        await _deliver(d, raw)
        if expect is not None and not d.options.shuffle:
            await _reaction(d, step_mark, expect)
    if d.options.shuffle:
        calls = await d.until(mark, lambda calls: False, timeout=min(d.options.wait, 3.0))
        d.note("webhooks", f"after the shuffled deliveries the provider told Vercel: {_told(calls) or 'nothing'}")


async def _deliver(d: Driver, body: bytes, flow: str = "webhooks") -> None:
    event = json.loads(body)
    label = f"{event['type']} {event['id']}"
    sent = await d.deliver(body)
    d.check(flow, sent, ACKNOWLEDGED, f"{label} acknowledged")
    if d.options.duplicate:
        again = await d.deliver(body)
        d.check(flow, again, ACKNOWLEDGED, f"{label} delivered again: acknowledged")


async def _reaction(d: Driver, mark: int, expect: str) -> None:
    """After an unpaid (hold) or paid (release) invoice: what the provider tells Vercel of its resources."""
    held = ("suspended",) if expect == "hold" else ("ready", "resumed")
    calls = await d.until(mark, lambda calls: any(s in held for s in told(calls, "PATCH", "", "status")))
    seen = _told(calls)
    if any(s in held for s in told(calls, "PATCH", "", "status")):
        d.note("webhooks", f"the provider told Vercel: {seen}")
    elif expect == "hold":
        d.note("webhooks", f"no suspension within {d.options.wait:g}s (allowed: Vercel asks for none before 15 days)"
               + (f"; it told Vercel: {seen}" if seen else ""))
    else:
        d.note("webhooks", f"no resource came back within {d.options.wait:g}s" + (f"; it told Vercel: {seen}" if seen else ""))


def _told(calls: list[Call]) -> str:
    """What the calls told Vercel, shortly: statuses and notifications, in order."""
    said = []
    for call in calls:
        body = call.json if call.body and call.method == "PATCH" else None
        if not isinstance(body, dict) or call.status is None or call.status >= 300:
            continue
        if "status" in body:
            said.append(f"{call.path.rsplit('/', 1)[-1]} {body['status']}")
        if "notification" in body:
            note = body["notification"]
            said.append("notification cleared" if note is None else f"notification {note.get('level')}")
    return ", ".join(said)


def _invoice(invoice_id: str, state: str) -> dict[str, Any]:
    period = {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
    return {"invoiceId": invoice_id, "state": state, "invoiceDate": period["end"], "period": period, "items": [],
            "total": "20.00", "created": period["end"], "updated": period["end"]}


async def removed(d: Driver) -> None:
    """Vercel's announcement of the uninstall: acknowledged, whatever the partner DELETE did before."""
    await _deliver(d, webhooks.event_body(webhooks.CONFIGURATION_REMOVED, d.life.installation_id), "uninstall")


async def sso(d: Driver) -> None:
    """Vercel opens the Redirect Login URL with a code; the provider trades it for an id token and signs in."""
    provider = d.api.base_url
    context = {"resource_id": d.life.resource_id or "", "path": "usage"}
    url = d.sim.login_url(provider, d.life.installation_id, login_path=d.options.login_path, **context)
    mark = d.mark()
    reply = await d.api.session.get(url, allow_redirects=False)
    async with reply:
        status, location = reply.status, reply.headers.get("Location", "")
        cookies = {k: m.value for k, m in reply.cookies.items()}
    exchanged = [c for c in d.sim.vercel.calls[mark:] if c.path == "/v1/integrations/sso/token"]
    ok = status in (302, 303, 307) and bool(location) and any(c.status == 200 for c in exchanged)
    where = location.split("?")[0]
    d.step("sso", ok, f"GET {d.options.login_path}?mode=sso&code=... -> {status}"
           + (f"  code exchanged, signed in, sent to {where}" if ok else
              f"  expected a redirect after the code exchange (exchanges seen: {[c.status for c in exchanged]})"))
    async with d.api.session.get(urljoin(provider, location), cookies=cookies, allow_redirects=False) as page:
        d.step("sso", page.status == 200, f"GET {where} with the session -> {page.status}")
    d.note("sso", "a person can sign in too: open "
           + d.sim.login_url(provider, d.life.installation_id, login_path=d.options.login_path, **context))


async def billing(d: Driver) -> None:
    """The provider's billing data (display only) for the installation: made now when we can (our `bill`)."""
    mark = d.mark()
    if d.options.bill is not None:
        d.note("billing", await d.options.bill(d.life.installation_id))
    calls = await d.until(mark, lambda calls: bool(told(calls, "POST", "/billing")))
    data = told(calls, "POST", "/billing")
    if data:
        body = data[-1]
        billed = body.get("billing")
        items = billed.get("items", []) if isinstance(billed, dict) else billed or []
        d.step("billing", True, f"billing data received: {len(items)} item(s), {len(body.get('usage') or [])} usage "
               f"metric(s), period {(body.get('period') or {}).get('start', '?')[:10]}")
    else:  # display-only data, owed at least daily: late is no failure
        after = "after `bill`" if d.options.bill is not None else "(providers send it at least daily)"
        d.note("billing", f"no billing data within {d.options.wait:g}s {after}")

