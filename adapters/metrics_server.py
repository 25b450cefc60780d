"""GET /metrics for a process that serves no HTTP app of ours: the `worker` command (WORKER_METRICS_ADDRESS), whose
deliveries, provisioner calls and JWKS-free life no server's /metrics can show. A small aiohttp server, the same
text and the same METRICS_TOKEN check as the server's route (adapters/http/metrics_route.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from marketplace_provider.adapters.metrics import CONTENT_TYPE, OutboxSnapshot, exposition, outbox_counts, token_matches
from marketplace_provider.ports.storage import Storage

UNAUTHENTICATED = {"error": {"code": "unauthenticated", "message": "/metrics needs Authorization: Bearer <METRICS_TOKEN>"}}


@asynccontextmanager
async def metrics_endpoint(host: str, port: int, *, token: str | None, storage: Storage) -> AsyncIterator[str]:
    """Serve /metrics on host:port while the block runs; yields its URL (with the port bound, when 0 was asked).
    OSError when the address cannot be listened on."""

    async def metrics(request: web.Request) -> web.Response:
        if token is not None and not token_matches(request.headers.get("Authorization"), token):
            return web.json_response(UNAUTHENTICATED, status=401, headers={"WWW-Authenticate": "Bearer"})
        body = exposition([OutboxSnapshot(await outbox_counts(storage))])
        return web.Response(body=body, headers={"Content-Type": f"{CONTENT_TYPE}; charset=utf-8"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound_port}/metrics"
    finally:
        await runner.cleanup()
