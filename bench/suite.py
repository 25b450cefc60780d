"""The scenarios, each run against a real server process: the floor (7), the Partner API calls (1-4) and the
webhook ingest (5) on each backend, the outbox drain (6) and growth (8) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import scenarios
from bench.growth import measure_growth
from bench.load import Figures, Load, Request, measure
from bench.outbox_drain import drain
from bench.scenarios import Tenant
from bench.server import Running, Storage, Vercel, backend_server, floor_env, free_port, serve_command, serving
from bench.webhook_effect import StoreProbe, ack_to_effect, drain_seconds
from marketplace_provider.adapters.simulator.tokens import TokenKit

# name -> (label, the requests of the scenario); in the order they run on one server (provisioning and webhooks
# last: they add rows that the others would then read around)
HTTP_SCENARIOS: dict[str, tuple[str, Callable[[TokenKit, list[Tenant]], list[Request]]]] = {
    "get_installation": ("1 GET installation", scenarios.get_installation),
    "get_resource": ("2 GET resource", scenarios.get_resource),
    "patch_resource": ("4 PATCH resource", scenarios.patch_resource),
    "provision": ("3 POST provision", scenarios.provision),
}
WEBHOOKS_LABEL = "5 webhook ingest"
FLOOR_LABEL = "7 floor (bare route)"


@dataclass(frozen=True)
class Plan:
    load: Load
    log_level: str
    tenants: int  # installations the requests go round
    webhook_tenants: int  # installations the webhook events go round (each event records a new invoice)
    webhook_bodies: int  # distinct signed events per webhook run
    effect_events: int  # events timed from acknowledgement to effect
    outbox_installations: int
    outbox_messages: int  # per installation
    outbox_latency_ms: float
    growth_sizes: list[int]


async def floor(side: Vercel, plan: Plan, when: str) -> Figures:
    """The bare route, behind the same `serve` command (bench/floor.py), with Get Installation's headers."""
    env = floor_env(side.env(plan.log_level))
    async with serving(serve_command(free_port()), env, plan.load.workdir / f"floor-{when}.log", floor=True) as server:
        requests = scenarios.get_installation(side.kit, [Tenant("icfg_floor", "")])
        return await measure(plan.load, server.url, server.pid, f"floor-{when}", requests)


async def backend(side: Vercel, plan: Plan, name: str) -> dict[str, dict[str, object]]:
    """Scenarios 1-5 on one server of that backend; figures by scenario."""
    results: dict[str, dict[str, object]] = {}
    async with backend_server(name, side, plan.load.workdir, plan.log_level) as (server, store):
        tenants = await scenarios.install(server.url, side.kit, plan.tenants)
        for key, (_, requests) in HTTP_SCENARIOS.items():
            figures = await measure(plan.load, server.url, server.pid, f"{name}-{key}", requests(side.kit, tenants))
            results[key] = figures.to_json()
        hooked = await scenarios.install(server.url, side.kit, plan.webhook_tenants, resources=False)
        results["webhooks"] = await webhooks(plan, server, store, hooked)
    return results


async def webhooks(plan: Plan, server: Running, store: Storage, tenants: list[Tenant]) -> dict[str, object]:
    """Ingest under wrk; then, where the store can be read from outside, the backlog and ack -> effect."""
    deliveries = scenarios.webhook_deliveries(tenants, plan.webhook_bodies)
    warmup = scenarios.webhook_deliveries(tenants, plan.webhook_bodies // 2)
    figures = await measure(plan.load, server.url, server.pid, f"{store.backend}-webhooks", deliveries, warmup)
    if figures.requests > len(deliveries):
        figures.notes.append(f"{figures.requests - len(deliveries)} deliveries repeated an event id (duplicates)")
    result: dict[str, object] = figures.to_json()
    if store.backend == "memory":
        result["effect"] = None  # its state lives inside the server: nothing to poll from outside
        return result
    async with StoreProbe(store.backend, store.url) as probe:
        left, seconds = await drain_seconds(probe)
        result["backlog"] = {"unapplied_at_end": left, "drained_in_s": seconds}
        result["effect"] = await ack_to_effect(server.url, probe, tenants, plan.effect_events)
    return result


async def outbox(side: Vercel, plan: Plan) -> list[dict[str, object]]:
    return [
        await drain(
            side, workers, installations=plan.outbox_installations, messages=plan.outbox_messages,
            latency_ms=plan.outbox_latency_ms, workdir=plan.load.workdir,
        )
        for workers in (1, 2)
    ]


async def growth(side: Vercel, plan: Plan) -> list[dict[str, object]]:
    return await measure_growth(side, plan.load, plan.growth_sizes, plan.tenants, plan.log_level)

