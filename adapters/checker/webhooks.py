"""Webhook deliveries (webhooks.md 2, 3): a valid signature is accepted; a missing or wrong one is refused (4xx)
and does nothing, tried with an uninstall that would show; the same event delivered twice is acknowledged both
times and applied once (counted on what the server told Vercel); a signed uninstall ends the installation."""

from __future__ import annotations

import asyncio
from functools import partial

from marketplace_provider.adapters.checker.billing import deliver_notpaid, settled, told_unpaid
from marketplace_provider.adapters.checker.report import Skipped, expect
from marketplace_provider.adapters.checker.world import Installation, World, new_key
from marketplace_provider.adapters.simulator.webhooks import CONFIGURATION_REMOVED, sign

GROUP = "webhooks"
CHECKS = (
    "signed-accepted", "missing-signature", "wrong-secret", "another-body-signature", "duplicate-acknowledged",
    "duplicate-applied-once", "removed-uninstalls",
)
GONE = (404, 410)


async def still_installed(w: World, inst: Installation, settle: float = 0.5) -> None:
    await asyncio.sleep(settle)  # a server that applies events after answering has had its chance
    reply = await w.as_system(inst, "GET", inst.path)
    expect(reply.status not in GONE, f"a refused uninstall event uninstalled it: {reply.says()}")


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    inst = await w.installed()
    resource_id = await w.provisioned(inst, "check-webhooks")
    with check("signed-accepted"):
        reply = await w.deliver(w.event("test-webhook", inst))
        expect(reply.ok, f"{reply.says()} (expected 2xx; signed with the client secret the checker was given)")
    removal = w.event(CONFIGURATION_REMOVED, inst)
    forged = {
        "missing-signature": None,
        "wrong-secret": sign(removal, "not-the-client-secret"),
        "another-body-signature": sign(w.event("test-webhook", inst), w.client_secret),
    }
    for name, signature in forged.items():
        with check(name):
            reply = await w.deliver(removal, signature, signed=signature is not None)
            expect(400 <= reply.status < 500, f"{reply.says()} (expected 403: a forged event must be refused)")
            await still_installed(w, inst)
    body, told = b"", 0
    with check("duplicate-acknowledged"):
        body = await deliver_notpaid(w, inst, resource_id, "inv_" + new_key())
        if await told_unpaid(w, inst):  # its effect on Vercel, when the server is wired to the stand-in
            told = await settled(w, inst)
        again = await w.deliver(body)
        expect(again.ok, f"the same event again: {again.says()} (expected 2xx, or Vercel keeps retrying)")
    with check("duplicate-applied-once"):
        if not w.report.passed(GROUP, "duplicate-acknowledged"):
            raise Skipped("needs duplicate-acknowledged")
        if not told:
            raise Skipped(w.not_wired() if not await w.wired() else "the event told Vercel nothing to count")
        await asyncio.sleep(min(w.wait_seconds, 3.0))
        said = await w.told(inst)
        expect(len(said) == told, f"the second delivery told Vercel again: {said[told:]}")
    with check("removed-uninstalls"):
        reply = await w.deliver(removal)
        expect(reply.ok, f"the signed {CONFIGURATION_REMOVED} event: {reply.says()}")

        async def gone() -> bool:
            return (await w.as_system(inst, "GET", inst.path)).status in GONE

        expect(await w.eventually(gone), f"the installation is still there {w.wait_seconds:g}s later")

