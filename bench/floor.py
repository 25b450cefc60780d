"""The floor: a bare Litestar route answering a small JSON like Get Installation's, served exactly as `serve`
serves the real app. The floor IS the `marketplace-provider serve` command (same ASGI server, same options,
whatever entrypoints/cli.py chooses), started with bench/floor_site on PYTHONPATH and BENCH_FLOOR=1: its
sitecustomize.py calls `install()` in that process and any it spawns, which swaps the app factory.

bench/server.py checks that /healthz answers {"floor": true}: if `serve` ever stops building its app through
`entrypoints.http:app_from_env`, the benchmark says so instead of measuring the wrong thing.
"""

from __future__ import annotations

from litestar import Litestar, get

INSTALLATION = {  # Get Installation's answer of the shipped catalog: the same keys and length (252 bytes)
    "billingPlan": {
        "id": "team-free", "type": "subscription", "name": "Team Hobby",
        "description": "Every ACME product on its free tier, for the whole team.", "scope": "installation",
        "paymentMethodRequired": False, "details": [{"label": "Members", "value": "Up to 3"}],
    }
}


@get("/v1/installations/{installation_id:str}")
async def installation(installation_id: str) -> dict[str, object]:
    return INSTALLATION


@get("/healthz")
async def healthz() -> dict[str, object]:
    return {"status": "ok", "floor": True}


def floor_app() -> Litestar:
    return Litestar([installation, healthz])


def install() -> None:
    from marketplace_provider.entrypoints import http

    http.app_from_env = floor_app  # type: ignore[assignment]  # the ASGI server imports the factory by name
