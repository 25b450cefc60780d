"""The web server process: settings -> the container -> the Litestar app (and, unless turned off, the worker
loop in-process, so that `serve` alone tells Vercel what it owes)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar

from marketplace_provider.adapters.http.app import Runtime
from marketplace_provider.adapters.http.app import create_app as create_litestar_app
from marketplace_provider.adapters.http.dashboard import Brand
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.entrypoints.containers import Container, container_for, plugin_report, resolved
from marketplace_provider.entrypoints.worker import work, worker_parts
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.usage import UsageSource

log = logging.getLogger("marketplace.http")


def runtime_opener(container: Container) -> Callable[[], AbstractAsyncContextManager[Runtime]]:
    settings: Settings = container.settings()

    @asynccontextmanager
    async def open_runtime() -> AsyncIterator[Runtime]:
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        try:
            runtime = Runtime(
                services=await resolved(container.services()),
                token_verifier=await resolved(container.token_verifier()),
                storage=await resolved(container.storage()),
                webhook_secret=settings.integration_client_secret,
                sign_in=await resolved(container.sign_in()),
                dashboard=await resolved(container.dashboard()),
                browser=await resolved(container.browser()),
                plugins=await plugin_report(container),
            )
            if settings.serve_worker:
                worker = asyncio.create_task(work(await worker_parts(container), settings, stop))
            yield runtime
        finally:
            stop.set()
            if worker is not None:
                await worker
            await resolved(container.shutdown_resources())

    return open_runtime


def create_app(
    settings: Settings | None = None,
    *,
    provisioner: ResourceProvisioner | None = None,
    usage_source: UsageSource | None = None,
    container: Container | None = None,
) -> Litestar:
    """The ASGI app, from settings (default: the environment) with your parts given from code, or from a
    container you built and overrode. Parts that are async context managers are entered at start-up."""
    if container is None:
        settings = settings or load_settings()
        container = container_for(settings, provisioner=provisioner, usage_source=usage_source)
    settings = container.settings()
    catalog = container.catalog()  # a bad catalog fails here, at start-up, never at the first request
    brand = Brand(
        name=settings.brand_name or (catalog.products[0].name if catalog.products else "Dashboard"),
        support_url=settings.support_link,
        logo_url=settings.logo_url,
    )
    return create_litestar_app(
        runtime_opener(container),
        brand=brand,
        csrf_secret=csrf_secret(settings),
        secure_cookies=settings.public_url.startswith("https://"),
        max_body_bytes=settings.max_body_bytes,
        metrics_token=settings.metrics_token,
    )


def csrf_secret(settings: Settings) -> str:
    """Every server process must sign CSRF tokens alike: derived from the client secret, never equal to it."""
    return hmac.new(settings.integration_client_secret.encode(), b"marketplace-provider csrf", hashlib.sha256).hexdigest()


def app_from_env() -> Litestar:
    """Factory for the ASGI server (`uvicorn --factory marketplace_provider.entrypoints.http:app_from_env`)."""
    app = create_app(load_settings())
    app.on_startup.append(freeze_start_up_objects)  # run once the runtime is open
    return app


def freeze_start_up_objects() -> None:
    """Keep what start-up made (modules, the app, the runtime) out of every later garbage collection.

    They live as long as the process, yet each full collection walked all of them: under load one took about
    30 ms, every half-second, which made the p99 latency (issue 13). Only for a server process: a test process
    building many apps would keep its garbage from before each freeze for good."""
    gc.collect()
    gc.freeze()


def server_options(*, host: str, port: int, workers: int = 1, log_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The uvicorn options `serve` runs with; a benchmark's floor app must be served with the same ones.

    uvloop and httptools (both dependencies) take about half the CPU per request of uvicorn's pure-Python
    defaults (asyncio's loop, h11): measured in issue 13, where Granian did no better per request.

    uvicorn's only read timeout is `timeout_keep_alive` (after a response), and httptools bounds no header: the
    protocol is httptools behind the limits of adapters/uvicorn_limits.py (a request head within 10 s, its body
    within 30 s, a 16 KiB request line, a 64 KiB head; JSON errors 400/408/414/431), issue 14."""
    from marketplace_provider.adapters.uvicorn_limits import GuardedHttpToolsProtocol

    return {
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        "http": GuardedHttpToolsProtocol,  # httptools, with the limits above
        "log_config": log_config,  # entrypoints/logs.py: uvicorn applies it in each server process it starts
        "log_level": None,  # the levels are log_config's (third-party loggers, uvicorn's too, stay at INFO)
        "access_log": False,  # access lines would carry query strings; our own logs say what matters
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": 5,  # an idle connection closes 5 s after its last answer (a proxy in front: keep it below)
    }
