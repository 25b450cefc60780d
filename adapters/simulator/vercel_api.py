"""A stand-in for Vercel's REST API: a real aiohttp server on 127.0.0.1 that records every call, answers each
marketplace endpoint of vercel-api.md with its documented status and a plausible body, and can be told to fail.

Fault injection, each consuming the next calls in arrival order (recorded all the same):
`fail_next(n, status)`, `rate_limit_next(n, retry_after)`, `delay_next(n, seconds)` (then answers normally),
`drop_next(n)` (closes the connection without answering). `fail_status` answers every call with that status.
`flaky(rate, seed)` makes that share of calls fail at random (500, 503, 429 or a dropped connection).
`accepted` keeps the calls Vercel took (answered 2xx), in order: what a delivery test counts. `on_call` hears of
every call once it is answered (`call.status`; None when the connection was dropped).

Left open (None or empty), a check is skipped: `client_id`/`client_secret` (the SSO token exchange's) and
`access_tokens` (installation id -> the bearer its calls must carry).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from marketplace_provider.adapters.simulator import vercel_answers as answers
from marketplace_provider.adapters.simulator.vercel_answers import (
    CODES,
    INSTALLATION,
    RESOURCE,
    SSO_TOKEN,
    Answer,
    Call,
    error,
)

__all__ = ["CODES", "Call", "FakeVercel"]


@dataclass
class _Fault:
    kind: str  # fail | rate_limit | delay | drop
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0



@dataclass
class FakeVercel:
    invoices: dict[str, dict] = field(default_factory=dict)  # invoice id -> Get Invoice body
    calls: list[Call] = field(default_factory=list)
    accepted: list[Call] = field(default_factory=list)
    fail_status: int | None = None  # answer every call with this status
    # canned answers
    account_info: dict = field(
        default_factory=lambda: {"name": "Acme", "url": "https://vercel.com/acme/~/integrations/x", "contact": None}
    )
    members: dict[str, dict] = field(default_factory=dict)  # member id -> Get Member body
    sso_tokens: dict[str, dict | Callable[[], dict]] = field(default_factory=dict)  # code -> exchange body (or maker)
    client_id: str | None = None  # the SSO token exchange must name these, when set
    client_secret: str | None = None
    access_tokens: dict[str, str] = field(default_factory=dict)  # installation id -> its bearer, when set
    on_call: Callable[[Call], None] | None = None
    resources: dict[str, dict] = field(default_factory=dict)  # partner resource id -> Get Resource body
    experimentation_items: dict[str, dict[str, dict]] = field(default_factory=dict)  # resource id -> item id -> item
    experimentation_configs: dict[str, dict] = field(default_factory=dict)  # resource id -> config body
    config_segment: str = "edge-config"
    _faults: deque[_Fault] = field(default_factory=deque)
    _flaky_rate: float = 0.0
    broken: dict[str, int] = field(default_factory=dict)  # installation id -> status every call for it gets
    _rng: random.Random = field(default_factory=random.Random)
    _runner: web.AppRunner | None = None
    url: str = ""

    # -------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Serve on a port of its own."""
        app = web.Application()
        self.serve_on(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def serve_on(self, app: web.Application) -> None:
        """Answer every path of `app` not routed before this call (the simulator's app); then set `url`."""
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -------------------------------------------------------- fault injection

    def fail_next(self, n: int, status: int = 500) -> None:
        self._faults.extend(_Fault("fail", status=status) for _ in range(n))

    def rate_limit_next(self, n: int, retry_after: int | float | str | None = 0) -> None:
        header = None if retry_after is None else str(retry_after)
        self._faults.extend(_Fault("rate_limit", status=429, retry_after=header) for _ in range(n))

    def delay_next(self, n: int, seconds: float) -> None:
        self._faults.extend(_Fault("delay", seconds=seconds) for _ in range(n))

    def drop_next(self, n: int) -> None:
        self._faults.extend(_Fault("drop") for _ in range(n))

    def flaky(self, rate: float, seed: int = 0) -> None:
        self._flaky_rate = rate
        self._rng = random.Random(seed)

    def pending_faults(self) -> int:
        return len(self._faults)

    @property
    def flaky_rate(self) -> float:
        return self._flaky_rate

    def reset(self) -> None:
        """Forget calls, pending faults and experimentation items (canned answers stay)."""
        self.calls.clear()
        self.accepted.clear()
        self.experimentation_items.clear()
        self._faults.clear()
        self.fail_status = None
        self._flaky_rate = 0.0
        self.broken.clear()

    # -------------------------------------------------------- dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = Call(
            request.method,
            request.path,
            request.headers.get("Authorization"),
            await request.read(),
            {k.lower(): v for k, v in request.headers.items()},
        )
        self.calls.append(call)
        try:
            response = await self._answer(request, call)
        except asyncio.CancelledError:
            self._heard(call)  # dropped (or the client gave up): status stays None
            raise
        call.status = response.status
        self._heard(call)
        return response

    def _heard(self, call: Call) -> None:
        if self.on_call is not None:
            self.on_call(call)

    async def _answer(self, request: web.Request, call: Call) -> web.StreamResponse:
        if self.fail_status is not None:
            return error(self.fail_status, "fail", "told to fail")
        installation = re.match(INSTALLATION, request.path)
        if installation and installation["inst"] in self.broken:
            return error(self.broken[installation["inst"]], "broken", "told to fail for this installation")
        fault = self._faults.popleft() if self._faults else None
        if fault is None and self._flaky_rate and self._rng.random() < self._flaky_rate:
            fault = self._rng.choice(
                [_Fault("fail", status=500), _Fault("fail", status=503), _Fault("rate_limit", status=429, retry_after="0"),
                 _Fault("drop")]
            )
        if fault is not None:
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError  # nothing is written: the client sees the connection go
            if fault.kind == "fail":
                return error(fault.status, CODES.get(fault.status, "internal_server_error"), "told to fail")
            if fault.kind == "rate_limit":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                return web.json_response(
                    {"error": {"code": "rate_limited", "message": "slow down"}}, status=429, headers=headers
                )
            await asyncio.sleep(fault.seconds)  # delay: long enough for the client to give up
        for method, pattern, answer in self._routes():
            match = re.fullmatch(pattern, request.path)
            if match and request.method == method:
                if pattern != SSO_TOKEN:  # the only call without a bearer: client id + secret in the body
                    refused = self._check_auth(call)
                    if refused is not None:
                        return refused
                if call.body and not call.headers.get("content-type", "").startswith("application/json"):
                    return error(415, "unsupported_media_type", "send JSON")
                response = await answer(self, call, match.groupdict())
                if 200 <= response.status < 300:
                    self.accepted.append(call)
                return response
        return error(404, "not_found", "unknown route")

    def _routes(self) -> list[tuple[str, str, Answer]]:
        experimentation = RESOURCE + "/experimentation"
        config = experimentation + "/" + re.escape(self.config_segment)
        return [
            ("PATCH", INSTALLATION, answers.no_content(204)),
            ("GET", INSTALLATION + "/account", answers.account),
            ("GET", INSTALLATION + r"/member/(?P<mid>[^/]+)", answers.member),
            ("POST", INSTALLATION + "/events", answers.event),
            ("POST", INSTALLATION + "/billing/finalize", answers.no_content(204)),
            ("PUT", RESOURCE, answers.import_resource),
            ("PATCH", RESOURCE, answers.update_resource),
            ("PUT", RESOURCE + "/secrets", answers.no_content(201)),
            ("POST", INSTALLATION + "/billing", answers.no_content(201)),
            ("POST", INSTALLATION + "/billing/invoices", answers.submit_invoice),
            ("GET", INSTALLATION + r"/billing/invoices/(?P<iid>[^/]+)", answers.get_invoice),
            ("POST", INSTALLATION + "/billing/balance", answers.no_content(201)),
            ("POST", experimentation + "/items", answers.create_items),
            ("PATCH", experimentation + r"/items/(?P<item>[^/]+)", answers.update_item),
            ("DELETE", experimentation + r"/items/(?P<item>[^/]+)", answers.delete_item),
            ("PUT", config, answers.put_config),
            ("POST", SSO_TOKEN, answers.sso_token),
        ]

    def _check_auth(self, call: Call) -> web.Response | None:
        auth = call.authorization or ""
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            return error(401, "unauthorized", "a Bearer token is required")
        installation = re.match(INSTALLATION, call.path)
        expected = self.access_tokens.get(installation["inst"]) if installation else None
        if expected is not None and auth.removeprefix("Bearer ").strip() != expected:
            return error(401, "unauthorized", "not this installation's access token")
        return None
