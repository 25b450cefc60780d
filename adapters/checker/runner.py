"""One check run: find the Vercel side the server trusts (a running simulator, or the checker's own stand-ins; the
first authenticated call tells, and lists the product's plans), then run the chosen groups in order, each in
installations of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import aiohttp

from marketplace_provider.adapters.checker import auth_matrix, bad_input, billing, endpoints, idempotency, webhooks
from marketplace_provider.adapters.checker.partner import PartnerClient
from marketplace_provider.adapters.checker.report import (
    CannotRun,
    GroupStopped,
    NotTrusted,
    Outcome,
    Report,
    Result,
    SetupFailed,
    unexpected,
)
from marketplace_provider.adapters.checker.simulator_link import DEFAULT_SIMULATOR_URL, RunningSimulator
from marketplace_provider.adapters.checker.stand_ins import (
    StandIns,
    StandInSettings,
    default_keys_file,
    load_or_create_key,
)
from marketplace_provider.adapters.checker.world import SYSTEM, VercelSide, World

GROUPS: dict[str, ModuleType] = {
    module.GROUP: module for module in (endpoints, auth_matrix, webhooks, bad_input, idempotency, billing)
}


AUTO = "auto"  # the checker's own stand-ins when the server trusts them, else a simulator at its default URL


@dataclass(frozen=True)
class CheckOptions:
    base_url: str
    stand_ins: StandInSettings = field(default_factory=StandInSettings)
    keys_file: Path = field(default_factory=default_keys_file)
    simulator: str | None = None  # a running simulator's URL, AUTO, or None: the checker's own stand-ins
    simulator_client_secret: str | None = None  # signs webhooks when a simulator plays Vercel (its secret)
    product: str = "acme-kv"
    plan: str | None = None  # the resource plan to provision on; default: a free one the server lists
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook_path: str = "/webhook"
    only: tuple[str, ...] = ()  # group names; empty: all, in GROUPS order
    wait_seconds: float = 15.0  # for effects that come after the answer (Vercel calls, uninstall by webhook)
    timeout_seconds: float = 30.0  # per request


async def run_checks(options: CheckOptions, progress: TextIO | None = None) -> Report:
    async with PartnerClient(options.base_url, options.timeout_seconds) as client:
        report = Report(client.base_url, progress)
        async with _trusted_side(client, report, options) as world:
            for name in options.only or tuple(GROUPS):
                await _run_group(world, GROUPS[name])
        report.end_progress()
        return report


@asynccontextmanager
async def _trusted_side(client: PartnerClient, report: Report, options: CheckOptions) -> AsyncIterator[World]:
    """The World on the first Vercel side the server trusts (`_candidates`); NotTrusted when it trusts none."""
    candidates = await _candidates(options)
    refused: CannotRun | None = None
    for side, secret in candidates:
        try:
            await side.start()
        except OSError as exc:
            reason = exc.strerror or exc
            refused = CannotRun(f"cannot listen on 127.0.0.1 ({reason}): choose --jwks-port and --vercel-port")
            continue
        try:
            world = World(client, side, secret, report, options.product, options.metadata, options.webhook_path,
                          options.wait_seconds)
            try:
                await _probe(world, options)
            except NotTrusted as exc:
                refused = refused if isinstance(refused, NotTrusted) else exc  # the own stand-ins' settings first
                continue
            report.vercel = side.describe()
            yield world
            return
        finally:
            await side.stop()
    assert refused is not None
    raise refused


async def _candidates(options: CheckOptions) -> list[tuple[VercelSide, str]]:
    """Who may play Vercel, in order: the checker's own stand-ins, or the simulator named; AUTO: the own, then a
    simulator found at its default URL (so `simulate --serve-provider` then `check` just works)."""
    try:
        key = load_or_create_key(options.keys_file)
    except (OSError, ValueError) as exc:
        raise CannotRun(f"cannot use the signing key in {options.keys_file} ({exc}): see --keys-file") from None
    own = (StandIns(options.stand_ins, key), options.stand_ins.client_secret)
    if options.simulator is None:
        return [own]
    secret = options.simulator_client_secret or options.stand_ins.client_secret
    simulator = RunningSimulator(DEFAULT_SIMULATOR_URL if options.simulator == AUTO else options.simulator)
    if options.simulator != AUTO:
        return [(simulator, secret)]
    try:
        await simulator.start()  # is one there?
    except CannotRun:
        return [own]
    await simulator.stop()
    return [own, (simulator, secret)]


async def _run_group(w: World, group: ModuleType) -> None:
    try:
        await group.run(w)
    except GroupStopped:
        pass
    except SetupFailed as exc:
        w.report.add(Result(group.GROUP, "setup", Outcome.FAIL, str(exc)))
    except Exception as exc:  # noqa: BLE001
        w.report.add(Result(group.GROUP, "setup", Outcome.FAIL, unexpected(exc)))
    ran = {r.check for r in w.report.results if r.group == group.GROUP}
    for name in group.CHECKS:
        if name not in ran:
            w.report.add(Result(group.GROUP, name, Outcome.SKIP, "not run: an earlier step of this group failed"))


async def _probe(w: World, options: CheckOptions) -> None:
    """List the product's plans with a good system token: refused means the server does not trust the keys."""
    base, path = w.client.base_url, f"/v1/products/{options.product}/plans"
    try:
        reply = await w.client.call("GET", path, token=await w.installation().system(), style=SYSTEM)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CannotRun(f"cannot reach {base}: {type(exc).__name__} {exc}".strip()) from None
    if reply.status in (401, 403):
        fetched = " and never fetched its JWKS" if w.vercel.jwks_fetched() is False else ""
        settings = " ".join(f"{k}={v}" for k, v in w.vercel.server_env().items())
        raise NotTrusted(f"{base} refused the checker's token ({reply.status}){fetched}: start it with {settings}")
    if reply.status >= 500:
        raise CannotRun(f"{base} failed the first call: {reply.says()}")
    if reply.status == 404:
        raise CannotRun(f"{base} does not know product {options.product!r} ({reply.says()}): name yours with --product")
    plans = reply.json.get("plans") if reply.status == 200 and isinstance(reply.json, dict) else None
    w.plans = [p for p in plans or [] if isinstance(p, dict)]
    w.plan = options.plan or pick_plan(w.plans) or ""
    if not w.plan:
        raise CannotRun(f"no plan to provision on ({reply.says()}): name one with --plan")


def pick_plan(plans: list[dict[str, Any]]) -> str | None:
    """A resource-level subscription plan, a free one first (provisioning then needs no payment method)."""
    usable = [
        p for p in plans
        if p.get("scope", "resource") == "resource" and p.get("type") == "subscription" and not p.get("disabled")
    ]
    free = [p for p in usable if p.get("paymentMethodRequired") is False]
    chosen = (free or usable or [{}])[0].get("id")
    return chosen if isinstance(chosen, str) else None
