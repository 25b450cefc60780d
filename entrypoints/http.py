"""The web server process: settings -> container -> Litestar app."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar

from marketplace_provider.adapters.http.app import Runtime, create_app
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.entrypoints.containers import HttpContainer, resolved


def runtime_opener(container: HttpContainer) -> Callable[[], AbstractAsyncContextManager[Runtime]]:
    @asynccontextmanager
    async def open_runtime() -> AsyncIterator[Runtime]:
        await resolved(container.init_resources())
        try:
            yield Runtime(
                services=await resolved(container.services()),
                token_verifier=await resolved(container.token_verifier()),
                storage=await resolved(container.core.storage()),
                webhook_secret=container.settings().integration_client_secret,
                sign_in=await resolved(container.sign_in()),
                dashboard=await resolved(container.dashboard()),
                browser=container.browser(),
            )
        finally:
            await resolved(container.shutdown_resources())

    return open_runtime


def build_app(settings: Settings, container: HttpContainer | None = None) -> Litestar:
    container = container or HttpContainer(settings=settings)
    container.core.catalog()  # a bad catalog fails here, at start-up, never at the first request
    return create_app(
        runtime_opener(container),
        csrf_secret=csrf_secret(settings),
        secure_cookies=settings.public_url.startswith("https://"),
        max_body_bytes=settings.max_body_bytes,
    )


def csrf_secret(settings: Settings) -> str:
    """Every server process must sign CSRF tokens alike: derived from the client secret, never equal to it."""
    return hmac.new(settings.integration_client_secret.encode(), b"marketplace-provider csrf", hashlib.sha256).hexdigest()


def app_from_env() -> Litestar:
    """Factory for the ASGI server (`uvicorn --factory entrypoints.http:app_from_env`)."""
    return build_app(load_settings())
