"""The browser side: GET /callback (Vercel-initiated SSO) and the server-rendered /dashboard pages.

A session is ours (an opaque id in an HttpOnly cookie, its hash in storage); Vercel's id token is verified
and dropped. Every form carries Litestar's CSRF token. Failures render an error page, never a stack trace."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from marketplace_provider.adapters.http.errors import STATUS
from marketplace_provider.domain.errors import DomainError, Invalid
from marketplace_provider.domain.services.dashboard import Dashboard
from marketplace_provider.domain.services.sign_in import SignIn
from marketplace_provider.domain.sso import Area, Session, SsoIntent, provider_sso_url

log = logging.getLogger("marketplace.dashboard")

SESSION_COOKIE = "mp_session"
INSTALLATION_ID = re.compile(r"^icfg_[A-Za-z0-9]{1,64}\Z")


class Browser(msgspec.Struct, frozen=True, kw_only=True):
    """What the pages need besides the use cases: our own origin and how to send a user to Vercel's SSO."""

    public_url: str
    vercel_url: str
    integration_slug: str | None

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def origin(self) -> tuple[str, str]:
        parts = urlsplit(self.public_url)
        return parts.scheme.lower(), parts.netloc.lower()

    def sign_in_again(self, installation_id: str | None) -> str | None:
        if not self.integration_slug or not installation_id or not INSTALLATION_ID.match(installation_id):
            return None
        return provider_sso_url(self.vercel_url, self.integration_slug, installation_id)


class Brand(msgspec.Struct, frozen=True, kw_only=True):
    """Whose pages these are, as a Vercel user sees them (BRAND_NAME, SUPPORT_URL, LOGO_URL)."""

    name: str
    support_url: str | None = None  # https://... or mailto:...
    logo_url: str | None = None

    @property
    def support_label(self) -> str | None:
        """The address to show: the e-mail address of a mailto: link, else the URL."""
        if self.support_url is None:
            return None
        return self.support_url.removeprefix("mailto:")

    @property
    def support_by_mail(self) -> bool:
        return bool(self.support_url and self.support_url.startswith("mailto:"))


def own_path(url: str | None, browser: Browser) -> str | None:
    """`url` as a path on our own origin, or None when it points anywhere else or could be read that way
    (another host, `//host`, `/\\host`, encoded slashes or backslashes, control characters, `javascript:`)."""
    if not url or len(url) > 2048 or url.startswith("//") or any(ord(c) < 32 or c in "\\ " for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        if (parts.scheme.lower(), parts.netloc.lower()) != browser.origin:
            return None
    path = parts.path or "/"
    decoded = unquote(unquote(path))
    if not path.startswith("/") or decoded.startswith("//") or "\\" in decoded or any(ord(c) < 32 for c in decoded):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


# ---------------------------------------------------------------- dependencies (written as app.py says why)


def _browser(request: Request) -> Browser:
    return request.app.state.runtime.browser


def _sign_in(request: Request) -> SignIn:
    return request.app.state.runtime.sign_in


def _dashboard(request: Request, session: NamedDependency[Session]) -> Dashboard:
    return request.app.state.runtime.dashboard  # after the session, not beside it


async def _session(request: Request) -> Session:
    return await request.app.state.runtime.sign_in.current(request.cookies.get(SESSION_COOKIE))


# ---------------------------------------------------------------- pages


def page(name: str, session: Session | None, status: int = 200, **context: Any) -> Template:
    return Template(template_name=name, context={"session": session, **context}, status_code=status)


def error_page(request: Request, exc: DomainError) -> Response[Any]:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    browser: Browser = request.app.state.runtime.browser
    again = browser.sign_in_again(request.query_params.get("installation_id"))
    log.info("dashboard %s %s: %d %s", request.method, request.url.path, status, exc.message)
    return page("error.html.j2", None, status, title=_TITLES.get(status, "Something went wrong"),
                message=exc.message, sign_in_again=again)


_TITLES = {400: "That request was not valid", 401: "Please sign in through Vercel", 403: "Not allowed",
           404: "Not found", 409: "Conflict", 422: "Cannot do that", 503: "Try again shortly"}


def _page(description: str) -> ResponseSpec:
    """A browser page (HTML), not the Partner API's JSON error body."""
    return ResponseSpec(str, description=description, media_type=MediaType.HTML, generate_examples=False)


@get(
    "/callback",
    name="sso-callback",
    include_in_schema=True,
    tags=["SSO"],
    summary="Redirect Login URL",
    description="Vercel sends the browser here with `mode=sso` and a one-time `code`; the code is exchanged with "
    "Vercel, a session cookie is set and the browser is sent on to the page the other parameters name. Every "
    "answer is for a browser: a redirect or an HTML page.",
    status_code=303,
    responses={
        303: ResponseSpec(None, description="Signed in: the session cookie is set and `Location` names the page"),
        400: _page("`mode` is not `sso`, `code` is missing or too long, or another parameter is not valid"),
        401: _page("Vercel did not accept the code (used, expired, or not ours), or the state did not match"),
        403: _page("The token's installation is not installed here (or no longer), or Vercel does not know the member"),
        503: _page("Vercel could not be reached to exchange the code: try again shortly"),
    },
)
async def callback(
    request: Request,
    sign_in: NamedDependency[SignIn],
    browser: NamedDependency[Browser],
    mode: FromQuery[str | None] = None,
    code: FromQuery[str | None] = None,
    oauth_state: Annotated[str | None, QueryParameter(name="state")] = None,  # `state` is Litestar's own name
    product_id: FromQuery[str | None] = None,
    resource_id: FromQuery[str | None] = None,
    check_id: FromQuery[str | None] = None,
    project_id: FromQuery[str | None] = None,
    experimentation_item_id: FromQuery[str | None] = None,
    invoice_id: FromQuery[str | None] = None,
    pr: FromQuery[str | None] = None,
    path: FromQuery[str | None] = None,
    url: FromQuery[str | None] = None,
) -> Response[Any]:
    if mode != "sso":
        raise Invalid.field("mode", "must be sso")
    if not code or len(code) > 2048:
        raise Invalid.field("code", "is required")
    area = next((a for a in Area if a.value == path), None)
    intent = SsoIntent(
        product_id=product_id,
        resource_id=resource_id,
        project_id=project_id,
        check_id=check_id,
        invoice_id=invoice_id,
        experimentation_item_id=experimentation_item_id,
        pull_request=pr,
        area=area,
        url=url,
    )
    signed_in = await sign_in.callback(code, oauth_state, intent, own_path(url, browser), None)
    cookie = Cookie(
        key=SESSION_COOKIE,
        value=signed_in.session_id,
        path="/",
        max_age=int((signed_in.expires_at - sign_in.ports.clock.now()).total_seconds()),
        httponly=True,
        secure=browser.secure,
        samesite="lax",
    )
    return Redirect(signed_in.landing, status_code=303, cookies=[cookie])


@get("/", name="overview")
async def overview(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard], done: FromQuery[str | None] = None) -> Template:
    view = await dashboard.overview(session)
    return page("overview.html.j2", session, view=view, done=done)


@get("/resources/{resource_id:str}", name="resource")
async def resource(
    session: NamedDependency[Session], dashboard: NamedDependency[Dashboard], resource_id: FromPath[str],
    project: FromQuery[str | None] = None, done: FromQuery[str | None] = None,
) -> Template:
    view = await dashboard.resource(session, resource_id)
    return page("resource.html.j2", session, view=view, project=project, done=done)


@get("/billing", name="billing")
async def billing(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Template:
    plan, invoices = await dashboard.billing(session)
    return page("billing.html.j2", session, invoices=invoices, plan=plan)


@get("/invoices/{invoice_id:str}", name="invoice")
async def invoice(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard], invoice_id: FromPath[str]) -> Template:
    return page("invoice.html.j2", session, view=await dashboard.invoice(session, invoice_id))


@get("/usage", name="usage")
async def usage(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Template:
    report, resources = await dashboard.usage(session)
    return page("usage.html.j2", session, report=report, names={r.id: r.name for r in resources})


@get("/events", name="events")
async def events(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Template:
    return page("events.html.j2", session, events=await dashboard.events(session))


@get("/support", name="support")
async def support(request: Request, session: NamedDependency[Session]) -> Template:
    context = {k: v for k, v in request.query_params.items() if k in ("product", "project", "check", "item", "pr", "resource")}
    return page("support.html.j2", session, context=context)


@get("/onboarding", name="onboarding")
async def onboarding(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Template:
    return page("onboarding.html.j2", session, view=await dashboard.overview(session))


@get("/secrets", name="secrets")
async def secrets_page(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Template:
    return page("secrets.html.j2", session, view=await dashboard.overview(session))


@get("/checks/{check_id:str}", name="check")
async def check(session: NamedDependency[Session], check_id: FromPath[str]) -> Template:
    return page("check.html.j2", session, check_id=check_id)


# ---------------------------------------------------------------- forms (ADMIN; CSRF-checked by the middleware)


class NotificationForm(msgspec.Struct, kw_only=True):
    level: str = "info"
    title: str = ""
    message: str = ""


class PlanForm(msgspec.Struct, kw_only=True):
    plan: str = ""




@post("/notification", name="set-notification", status_code=303)
async def set_notification(
    session: NamedDependency[Session], dashboard: NamedDependency[Dashboard],
    data: URLEncodedBody[NotificationForm],
) -> Redirect:
    await dashboard.set_notification(session, data.level, data.title, data.message)
    return Redirect("/dashboard?done=notification-set", status_code=303)


@post("/notification/clear", name="clear-notification", status_code=303)
async def clear_notification(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard]) -> Redirect:
    await dashboard.clear_notification(session)
    return Redirect("/dashboard?done=notification-cleared", status_code=303)


@post("/resources/{resource_id:str}/rotate", name="rotate", status_code=303)
async def rotate(session: NamedDependency[Session], dashboard: NamedDependency[Dashboard], resource_id: FromPath[str]) -> Redirect:
    await dashboard.rotate_secrets(session, resource_id)
    return Redirect(f"/dashboard/resources/{resource_id}?done=secrets-rotated#secrets", status_code=303)


@post("/resources/{resource_id:str}/plan", name="change-plan", status_code=303)
async def change_plan(
    session: NamedDependency[Session], dashboard: NamedDependency[Dashboard], resource_id: FromPath[str],
    data: URLEncodedBody[PlanForm],
) -> Redirect:
    await dashboard.change_plan(session, resource_id, data.plan)
    return Redirect(f"/dashboard/resources/{resource_id}?done=plan-changed", status_code=303)


@post("/signout", name="sign-out", status_code=303)
async def sign_out(request: Request, sign_in: NamedDependency[SignIn]) -> Redirect:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await sign_in.sign_out(session_id)
    return Redirect("/dashboard/signed-out", status_code=303, cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")])


@get("/signed-out", name="signed-out")
async def signed_out() -> Template:
    return page("signed_out.html.j2", None)


DASHBOARD_DEPENDENCIES = {
    "session": Provide(_session),
    "dashboard": Provide(_dashboard, sync_to_thread=False),
    "sign_in": Provide(_sign_in, sync_to_thread=False),
    "browser": Provide(_browser, sync_to_thread=False),
}
BROWSER_ERRORS: ExceptionHandlersMap = {DomainError: error_page}



def dashboard_router(csrf: CSRFConfig) -> Router:
    """The pages and their forms, behind the CSRF middleware: the only routes a browser's cookies reach.

    On this router rather than the app, where Litestar would wrap every Partner API call in it, excluded or not."""
    return Router(
        path="/dashboard",
        route_handlers=[overview, resource, billing, invoice, usage, events, support, onboarding, secrets_page, check,
                        set_notification, clear_notification, rotate, change_plan, sign_out, signed_out],
        dependencies=DASHBOARD_DEPENDENCIES,
        exception_handlers=BROWSER_ERRORS,
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        include_in_schema=False,
    )


callback_router = Router(
    path="/", route_handlers=[callback], dependencies=DASHBOARD_DEPENDENCIES, exception_handlers=BROWSER_ERRORS
)
