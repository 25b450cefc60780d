"""The Litestar application: routes, dependencies and error handling, around a runtime opened at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, Request, Response, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from marketplace_provider.adapters.http.api_docs import openapi_config
from marketplace_provider.adapters.http.auth import provide_caller, provide_request_key
from marketplace_provider.adapters.http.dashboard import Brand, Browser, callback_router, dashboard_router
from marketplace_provider.adapters.http.disconnects import DISCONNECT_HANDLERS
from marketplace_provider.adapters.http.errors import EXCEPTION_HANDLERS
from marketplace_provider.adapters.http.metrics_route import metrics_route
from marketplace_provider.adapters.http.observability import CallerNoting, observe_requests
from marketplace_provider.adapters.http.page_headers import browser_headers
from marketplace_provider.adapters.http.partner_api import partner_api
from marketplace_provider.adapters.http.static_files import static_files_router
from marketplace_provider.adapters.http.webhooks import receive_webhook
from marketplace_provider.domain.services import Services
from marketplace_provider.domain.services.common import RequestKey
from marketplace_provider.domain.services.dashboard import Dashboard
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.domain.services.sign_in import SignIn
from marketplace_provider.domain.services.transfers import Transfers
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.tokens import TokenVerifier

log = logging.getLogger("marketplace.http")


class Runtime(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP process serves with, opened by the entrypoint's container."""

    services: Services
    token_verifier: TokenVerifier
    storage: Storage
    webhook_secret: str  # the integration's client secret: it signs Vercel's webhook deliveries
    sign_in: SignIn
    dashboard: Dashboard
    browser: Browser
    plugins: dict[str, object]  # which provisioner and usage source serve, and warnings about them


# One provider function per service: Litestar resolves them by parameter name (STYLE.md 2.4). Measured in issue 13:
# - A Partner API handler's dependencies form a chain, caller -> request_key -> service: Litestar resolves several
#   dependencies of one level concurrently, in an anyio task group per request (a fifth of a cheap call's CPU).
#   The service's `request_key` parameter is there only to order it; it costs a header lookup.
# - They read `request.app.state`: a `state: State` parameter is a new State object per call (about 5 %).
def _installations(request: Request, request_key: NamedDependency[RequestKey | None]) -> Installations:
    return request.app.state.runtime.services.installations


def _resources(request: Request, request_key: NamedDependency[RequestKey | None]) -> Resources:
    return request.app.state.runtime.services.resources


def _plans(request: Request, request_key: NamedDependency[RequestKey | None]) -> Plans:
    return request.app.state.runtime.services.plans


def _purchases(request: Request, request_key: NamedDependency[RequestKey | None]) -> Purchases:
    return request.app.state.runtime.services.purchases


def _transfers(request: Request, request_key: NamedDependency[RequestKey | None]) -> Transfers:
    return request.app.state.runtime.services.transfers


def _webhooks(request: Request) -> Webhooks:
    return request.app.state.runtime.services.webhooks


@get("/healthz", tags=["Operations"], summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["Operations"], summary="Readiness: storage answers; outbox counts for operators")
async def readyz(state: State) -> Response[dict[str, object]]:
    storage = state.runtime.storage
    try:
        await storage.ping()
        async with storage.unit_of_work() as uow:
            counts = await uow.outbox.counts()
    except Exception as exc:  # any failure means "not ready"; the reason is logged, not shown
        log.warning("readiness check failed: %s", type(exc).__name__)
        return Response({"status": "unavailable", "storage": "down"}, status_code=503)
    # A backlog is reported, not treated as unreadiness: the server still serves; the worker delivers.
    body = {"status": "ok", "storage": "up", "outbox": msgspec.to_builtins(counts), **state.runtime.plugins}
    return Response(body, status_code=200)


async def _apply_left_over(webhooks: Webhooks) -> None:
    try:
        while await webhooks.apply_pending():
            pass
    except Exception:  # the worker will do it; the server serves regardless
        log.exception("applying stored webhook events at start-up failed")


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def require_json_body(request: Request) -> None:
    """A body must be JSON; Litestar would otherwise try to parse any content type as JSON."""
    path = request.url.path
    # the webhook's signature is checked before anything else; the dashboard's forms are url-encoded
    if request.method not in BODY_METHODS or path == "/webhook" or path.startswith("/dashboard/"):
        return
    if not await request.body():
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="the request body must be application/json")


PAGES = Path(__file__).parent / "pages"


def create_app(
    open_runtime: Callable[[], AbstractAsyncContextManager[Runtime]],
    *,
    brand: Brand,
    csrf_secret: str,
    secure_cookies: bool = False,
    max_body_bytes: int = 1_048_576,
    metrics_token: str | None = None,  # METRICS_TOKEN: None leaves /metrics open
    debug: bool = False,
) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime() as runtime:
            app.state.runtime = runtime
            app.state.token_verifier = CallerNoting(runtime.token_verifier)  # the access line names the caller
            # Events stored but never applied (this process died after acknowledging them) are applied now.
            sweep = asyncio.create_task(_apply_left_over(runtime.services.webhooks))
            yield
            await sweep

    pages = Environment(
        loader=FileSystemLoader(PAGES / "templates"),
        autoescape=select_autoescape(["html", "html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    pages.globals["brand"] = brand
    app = Litestar(
        route_handlers=[
            partner_api,
            receive_webhook,
            callback_router,
            dashboard_router(
                CSRFConfig(
                    secret=csrf_secret,
                    cookie_name="mp_csrf",
                    cookie_httponly=True,
                    cookie_secure=secure_cookies,
                )
            ),
            static_files_router("/static", PAGES / "static"),
            healthz,
            readyz,
            metrics_route(metrics_token),
        ],
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(pages)),
        dependencies={
            "caller": Provide(provide_caller),
            "request_key": Provide(provide_request_key),
            "installations": Provide(_installations, sync_to_thread=False),
            "resources": Provide(_resources, sync_to_thread=False),
            "plans": Provide(_plans, sync_to_thread=False),
            "purchases": Provide(_purchases, sync_to_thread=False),
            "transfers": Provide(_transfers, sync_to_thread=False),
            "webhooks": Provide(_webhooks, sync_to_thread=False),
        },
        before_request=require_json_body,
        exception_handlers={**EXCEPTION_HANDLERS, **DISCONNECT_HANDLERS},
        before_send=[browser_headers(brand.logo_url)],  # security headers on /dashboard, /callback, /static
        lifespan=[lifespan],
        request_max_body_size=max_body_bytes,
        openapi_config=openapi_config(version="0.1.0"),  # offline Swagger UI at /schema, the bearer scheme
        debug=debug,
        logging_config=None,
    )
    return observe_requests(app)  # request ids, access lines and request metrics, around everything



