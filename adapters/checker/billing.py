"""What the server tells Vercel after invoice events (webhooks.md 4.1, billing.md): after `notpaid` a notification
or a suspension, after `paid` their undoing, each through the Vercel API calls the stand-in recorded, made with the
installation's access token. A server that never called the stand-in is not wired to it: those checks are skipped."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from marketplace_provider.adapters.checker.report import Failed, Skipped, expect
from marketplace_provider.adapters.checker.world import Installation, World, new_key

GROUP = "billing"
CHECKS = ("notpaid-tells-vercel", "paid-tells-vercel", "calls-carry-the-access-token")
NOTPAID, PAID = "marketplace.invoice.notpaid", "marketplace.invoice.paid"


def unpaid_signals(said: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A warning or error notification, or a suspension."""
    return [
        (kind, value) for kind, value in said
        if (kind == "notification" and isinstance(value, dict) and value.get("level") in ("warn", "error"))
        or (kind == "status" and value == "suspended")
    ]


def undone(said: list[tuple[str, Any]], after: int) -> list[str]:
    """What of the unpaid signals in said[:after] was not taken back in said[after:]: "notification", "suspension"."""
    before, later = unpaid_signals(said[:after]), said[after:]
    missing = []
    if any(kind == "notification" for kind, _ in before) and not any(
        kind == "notification" and (value is None or (isinstance(value, dict) and value.get("level") == "info"))
        for kind, value in later
    ):
        missing.append("notification")
    if any(kind == "status" for kind, _ in before) and not any(
        kind == "status" and value in ("ready", "resumed") for kind, value in later
    ):
        missing.append("suspension")
    return missing


async def settled(w: World, inst: Installation, quiet: float = 1.5) -> int:
    """Wait until nothing new was told about `inst` for `quiet` seconds (or the wait is over); how much was."""
    loop = asyncio.get_running_loop()
    deadline, count, since = loop.time() + w.wait_seconds, len(await w.told(inst)), loop.time()
    while loop.time() < deadline and loop.time() - since < quiet:
        await asyncio.sleep(0.1)
        now = len(await w.told(inst))
        if now != count:
            count, since = now, loop.time()
    return count


async def deliver_notpaid(w: World, inst: Installation, resource_id: str, invoice_id: str) -> bytes:
    """Vercel says the invoice is unpaid, then sends the event; the event's bytes (to deliver it again)."""
    await w.invoice(invoice_id, "notpaid", invoice_items(w, resource_id))
    body = w.event(NOTPAID, inst, invoice_id=invoice_id)
    reply = await w.deliver(body)
    expect(reply.ok, f"the signed {NOTPAID} event: {reply.says()}")
    return body


async def told_unpaid(w: World, inst: Installation) -> bool:
    async def unpaid() -> bool:
        return bool(unpaid_signals(await w.told(inst)))

    return await w.heard(unpaid)


def invoice_items(w: World, resource_id: str) -> list[dict[str, Any]]:
    return [{"billingPlanId": w.plan, "resourceId": resource_id, "name": "Plan", "price": "20.00", "quantity": 1,
             "units": "month", "total": "20.00"}]


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    inst = await w.installed()
    resource_id = await w.provisioned(inst, "check-billing")
    invoice_id = "inv_" + new_key()
    with check("notpaid-tells-vercel"):
        await deliver_notpaid(w, inst, resource_id, invoice_id)
        if not await told_unpaid(w, inst):
            if not await w.wired():
                raise Skipped(w.not_wired())
            said = await w.told(inst)
            raise Failed(f"no notification or suspension told to Vercel within {w.wait_seconds:g}s: {said}")
    with check("paid-tells-vercel"):
        if not w.report.passed(GROUP, "notpaid-tells-vercel"):
            raise Skipped("needs notpaid-tells-vercel")
        mark = await settled(w, inst)
        await w.invoice(invoice_id, "paid", invoice_items(w, resource_id))
        await asyncio.sleep(0.01)  # a later createdAt than the notpaid event's
        reply = await w.deliver(w.event(PAID, inst, invoice_id=invoice_id))
        expect(reply.ok, f"the signed {PAID} event: {reply.says()}")
        async def taken_back() -> bool:
            return not undone(await w.told(inst), mark)

        if not await w.eventually(taken_back):
            missing = " and ".join(undone(await w.told(inst), mark))
            raise Failed(f"the {missing} of the unpaid invoice was not taken back within {w.wait_seconds:g}s")
    with check("calls-carry-the-access-token"):
        calls = await w.calls_for(inst)
        if not calls:
            raise Skipped(w.not_wired() if not await w.wired() else "the server made no Vercel call for this installation")
        if not w.vercel.bearer_visible:
            raise Skipped("the simulator's recording does not show bearer values")
        wrong = sorted({f"{c.method} {c.path}" for c in calls if c.bearer != f"Bearer {inst.access_token}"})
        expect(not wrong, f"not made with the installation's access token: {', '.join(wrong[:3])}")
