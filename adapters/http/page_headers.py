"""The headers every answer a browser renders gets: /dashboard (pages, forms, their errors), /callback and /static.

- `Cache-Control: no-store` on pages: an ADMIN's resource page carries secret values, which no browser or
  proxy cache may keep. The stylesheet gets `no-cache` instead (kept, but revalidated by its ETag).
- A Content-Security-Policy allowing our own stylesheet and images (and the logo's origin) and nothing else:
  no script at all, inline or not, no inline style, forms post only to us, no framing, no `<base>`.
- `X-Frame-Options: DENY` for browsers older than `frame-ancestors`, `Referrer-Policy: no-referrer` (the
  URLs carry installation and resource ids), `X-Content-Type-Options: nosniff`.

They are set in a before-send hook, not on the routers: a route's middleware never sees the answers Litestar
makes outside it (a CSRF refusal, an unknown /dashboard path)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from litestar.types import Message, Scope

PAGE_PREFIXES = ("/dashboard", "/callback")
STATIC_PREFIX = "/static"
# an origin as it may appear in a CSP source list: nothing that could end the directive or add another
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z")


def content_security_policy(logo_url: str | None = None) -> str:
    images = "'self'"
    if logo_url:
        parts = urlsplit(logo_url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if parts.netloc and _ORIGIN.match(origin):
            images += f" {origin}"
    return (
        "default-src 'none'; style-src 'self'; "
        f"img-src {images}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def browser_headers(logo_url: str | None = None) -> Callable[[Message, Scope], Awaitable[None]]:
    """A Litestar `before_send` hook adding the headers above to the answers under the browser's paths."""
    common = [
        (b"content-security-policy", content_security_policy(logo_url).encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
    ]
    page = [(b"cache-control", b"no-store"), *common]
    static = [(b"cache-control", b"no-cache"), *common]
    replaced = {name for name, _ in page}

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path = scope["path"]
        extra = page if path.startswith(PAGE_PREFIXES) else static if path.startswith(STATIC_PREFIX) else None
        if extra is None:
            return
        kept = [(name, value) for name, value in message.get("headers", ()) if name.lower() not in replaced]
        message["headers"] = [*kept, *extra]

    return add_headers
