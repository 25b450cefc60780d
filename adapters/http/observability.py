"""What every request leaves behind: an id, an access line, the request metrics.

`RequestObserver` is a raw ASGI wrapper around the whole Litestar app (outside its router and exception handling),
so it sees every answer, 404s and 500s included, with the route template the router matched. Per request it costs
a header scan, one small object, a closure, a log record and two pre-bound metric updates: the benchmark's GETs
go through it.

The request id is the caller's `X-Request-Id`, else Vercel's `x-vercel-id`, reduced to letters, digits and
`._:-` and at most 128 characters, else 16 random hex digits. It comes back in the `X-Request-Id` header and is on
every log line the request produces (adapters/log_context.py, entrypoints/logs.py).

The access line never holds the path as sent (only the route template), a query string, a header, a cookie or a
body: `GET /v1/installations/{installationId} 200 1.9ms installation=icfg_... caller=user role=ADMIN`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from marketplace_provider.adapters.log_context import RequestFacts, current_request
from marketplace_provider.adapters.metrics import HTTP_LATENCY, HTTP_REQUESTS
from marketplace_provider.domain.roles import Caller
from marketplace_provider.ports.tokens import TokenVerifier

access_log = logging.getLogger("marketplace.access")

UNLOGGED_ROUTES = frozenset({"/healthz", "/metrics"})  # probes and scrapes: counted, never an access line
UNMATCHED = "unmatched"  # the route label of a path no route has: never the path itself (unbounded)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID_HEADERS = (b"x-request-id", b"x-vercel-id")  # in order of preference
MAX_REQUEST_ID = 128
MAX_LOGGED_ID = 128
ACCESS_LINE = "%s %s %d %.1fms%s"  # method, route template, status, duration, then installation=, caller=, role=
_NOT_IN_REQUEST_ID = re.compile(rb"[^A-Za-z0-9._:-]")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's own id when it sent a usable one (see above), else a new one."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in REQUEST_ID_HEADERS and name not in found:
            found[name] = value
    for name in REQUEST_ID_HEADERS:
        sent = found.get(name)
        if sent:
            cleaned = _NOT_IN_REQUEST_ID.sub(b"", sent)[:MAX_REQUEST_ID]
            if cleaned:
                return cleaned.decode("ascii")
    return os.urandom(8).hex()


class RequestObserver:
    """ASGI middleware: request id (context and response header), access line, request count and latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # pre-bound metric children
        self._records = AccessRecords()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:  # a str enum: equal to the server's "http"
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        facts = RequestFacts(request_id_from(scope["headers"]))
        id_header = (b"x-request-id", facts.id.encode("ascii"))
        answer: list[Any] = [500, 0.0]  # status, when the last body part went (the app may go on: background tasks)

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answer[1] = perf_counter()
            await send(message)

        token = current_request.set(facts)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._done(scope, facts, answer[0], (answer[1] or perf_counter()) - started)
            current_request.reset(token)

    def _done(self, scope: HTTPScope, facts: RequestFacts, status: int, seconds: float) -> None:
        route: str = scope.get("path_template") or UNMATCHED
        raw_method: str = scope["method"]
        method = raw_method if raw_method in METHODS else "OTHER"
        series = self._series.get((method, route, status))
        if series is None:
            series = (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route))
            self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)
        if route in UNLOGGED_ROUTES or not access_log.isEnabledFor(logging.INFO):
            return
        milliseconds = int(seconds * 10_000 + 0.5) / 10
        extra: dict[str, object] = {"method": raw_method, "route": route, "status": status, "duration_ms": milliseconds}
        tail = ""
        caller: Caller | None = facts.caller
        installation = (scope.get("path_params") or {}).get("installationId") or (caller and caller.installation_id)
        if isinstance(installation, str) and installation:
            extra["installation_id"] = installation = installation[:MAX_LOGGED_ID]
            tail = f" installation={installation}"
        if caller is not None:
            extra["caller"] = style = caller.style.value
            tail += f" caller={style}"
            if caller.role is not None:
                extra["role"] = role = caller.role.value
                tail += f" role={role}"
        access_log.handle(self._records.make((raw_method, route, status, milliseconds, tail), extra))


class AccessRecords:
    """The access lines' LogRecords, each a copy of a template with its own time, arguments and fields.

    `access_log.info(...)` would make each record from scratch: find the calling frame, work out the file and
    module names, the thread and the process, the same for every access line of a thread. That was half a line's
    cost, measured (about 20 µs of CPU a line here, 9 µs with the template): once a request on the benchmark's
    GETs. The record is a plain LogRecord with every attribute one has; handlers and filters see no difference."""

    def __init__(self) -> None:
        self._templates: dict[tuple[int, int], dict[str, Any]] = {}  # per process and thread

    def make(self, args: tuple[object, ...], extra: dict[str, object]) -> logging.LogRecord:
        where = (os.getpid(), threading.get_ident())
        template = self._templates.get(where)
        if template is None:
            made = access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, ACCESS_LINE, (), None)
            template = self._templates[where] = dict(made.__dict__)
        record = logging.LogRecord.__new__(logging.LogRecord)
        fields = record.__dict__
        fields.update(template)
        now = time.time()
        fields["created"] = now
        fields["msecs"] = (now - int(now)) * 1000
        fields["relativeCreated"] = template["relativeCreated"] + (now - template["created"]) * 1000
        fields["args"] = args
        fields.update(extra)
        return record


def observe_requests(app: Litestar) -> Litestar:
    """Put the observer around everything the app answers. `asgi_handler` is what `Litestar.__call__` hands each
    request to, already wrapped in Litestar's exception handling, so statuses are the ones the client gets."""
    app.asgi_handler = RequestObserver(app.asgi_handler)
    return app


class CallerNoting:
    """The token verifier, noting each verified caller on the request being served (for its access line)."""

    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner

    async def verify(self, raw_token: str) -> Caller:
        caller = await self.inner.verify(raw_token)
        facts = current_request.get()
        if facts is not None:
            facts.caller = caller
        return caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
