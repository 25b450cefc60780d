"""A stand-in for Vercel's REST API: a real aiohttp server on 127.0.0.1 that records every call, answers each
marketplace endpoint of vercel-api.md with its documented status and a plausible body, and can be told to fail.

Fault injection, each consuming the next calls in arrival order (recorded all the same):
`fail_next(n, status)`, `rate_limit_next(n, retry_after)`, `delay_next(n, seconds)` (then answers normally),
`drop_next(n)` (closes the connection without answering). `fail_status` answers every call with that status.
`flaky(rate, seed)` makes that share of calls fail at random (500, 503, 429 or a dropped connection).
`accepted` keeps the calls Vercel took (answered 2xx), in order: what a delivery test counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request, "Call", dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Fault:
    kind: str  # fail | rate_limit | delay | drop
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
         410: "gone", 412: "precondition_failed", 422: "unprocessable_entity"}

INSTALLATION = r"/v1/installations/(?P<inst>[^/]+)"
RESOURCE = INSTALLATION + r"/resources/(?P<rid>[^/]+)"
SSO_TOKEN = "/v1/integrations/sso/token"


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
    sso_tokens: dict[str, dict] = field(default_factory=dict)  # code -> SSO token exchange body
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
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

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
        if self.fail_status is not None:
            return _error(self.fail_status, "fail", "told to fail")
        installation = re.match(INSTALLATION, request.path)
        if installation and installation["inst"] in self.broken:
            return _error(self.broken[installation["inst"]], "broken", "told to fail for this installation")
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
                return _error(fault.status, CODES.get(fault.status, "internal_server_error"), "told to fail")
            if fault.kind == "rate_limit":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                return web.json_response(
                    {"error": {"code": "rate_limited", "message": "slow down"}}, status=429, headers=headers
                )
            await asyncio.sleep(fault.seconds)  # delay: long enough for the client to give up
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, request.path)
            if match and request.method == method:
                if pattern != SSO_TOKEN:  # the only call without a bearer: client id + secret in the body
                    refused = self._check_auth(call)
                    if refused is not None:
                        return refused
                if call.body and not call.headers.get("content-type", "").startswith("application/json"):
                    return _error(415, "unsupported_media_type", "send JSON")
                response = await handler(request, call, match.groupdict())
                if 200 <= response.status < 300:
                    self.accepted.append(call)
                return response
        return _error(404, "not_found", "unknown route")

    def _routes(self) -> list[tuple[str, str, Handler]]:
        experimentation = RESOURCE + "/experimentation"
        config = experimentation + "/" + re.escape(self.config_segment)
        return [
            ("PATCH", INSTALLATION, self._no_content(204)),
            ("GET", INSTALLATION + "/account", self._account),
            ("GET", INSTALLATION + r"/member/(?P<mid>[^/]+)", self._member),
            ("POST", INSTALLATION + "/events", self._event),
            ("POST", INSTALLATION + "/billing/finalize", self._no_content(204)),
            ("PUT", RESOURCE, self._import_resource),
            ("PATCH", RESOURCE, self._update_resource),
            ("PUT", RESOURCE + "/secrets", self._no_content(201)),
            ("POST", INSTALLATION + "/billing", self._no_content(201)),
            ("POST", INSTALLATION + "/billing/invoices", self._submit_invoice),
            ("GET", INSTALLATION + r"/billing/invoices/(?P<iid>[^/]+)", self._get_invoice),
            ("POST", INSTALLATION + "/billing/balance", self._no_content(201)),
            ("POST", experimentation + "/items", self._create_items),
            ("PATCH", experimentation + r"/items/(?P<item>[^/]+)", self._update_item),
            ("DELETE", experimentation + r"/items/(?P<item>[^/]+)", self._delete_item),
            ("PUT", config, self._put_config),
            ("POST", SSO_TOKEN, self._sso_token),
        ]

    @staticmethod
    def _check_auth(call: Call) -> web.Response | None:
        auth = call.authorization or ""
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            return _error(401, "unauthorized", "a Bearer token is required")
        return None

    # -------------------------------------------------------- handlers

    @staticmethod
    def _no_content(status: int) -> Handler:
        async def handler(request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
            return _empty(status)

        return handler

    async def _account(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.account_info)

    async def _member(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        member = self.members.get(params["mid"])
        if member is None:
            return _error(404, "not_found", "no such member")
        return web.json_response(member)

    async def _event(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        event = (call.json or {}).get("event") or {}
        if event.get("type") not in ("installation.updated", "resource.updated"):
            return _error(400, "bad_request", "unknown event type")
        if event["type"] == "resource.updated" and not event.get("resourceId"):
            return _error(400, "bad_request", "resourceId is required")
        return _empty(201)

    async def _import_resource(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        body = call.json or {}
        missing = [k for k in ("productId", "name", "status") if k not in body]
        if missing:
            return _error(400, "bad_request", f"missing {', '.join(missing)}")
        rid = params["rid"]
        previous = self.resources.get(rid, {})
        self.resources[rid] = {
            "id": rid,
            "internalId": previous.get("internalId") or "store_" + secrets.token_hex(6),
            "name": body["name"],
            "productId": body["productId"],
            "status": body["status"],
            "metadata": body.get("metadata") or {},
            **({"notification": body["notification"]} if body.get("notification") else {}),
            **({"billingPlanId": body["billingPlan"]["id"]} if body.get("billingPlan") else {}),
        }
        return web.json_response({"name": body["name"]})

    async def _update_resource(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        resource = self.resources.get(params["rid"])
        if resource is None:
            return _error(404, "not_found", "no such resource")
        body = call.json or {}
        for key in ("name", "status", "metadata"):
            if key in body:
                resource[key] = body[key]
        if "notification" in body:
            if body["notification"] is None:
                resource.pop("notification", None)
            else:
                resource["notification"] = body["notification"]
        return web.json_response({"name": resource["name"]})

    async def _submit_invoice(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("items") or "invoiceDate" not in body or "period" not in body:
            return _error(400, "bad_request", "invoiceDate, period and items are required")
        external_id = body.get("externalId")
        if external_id and any(i.get("externalId") == external_id for i in self.invoices.values()):
            return _error(409, "conflict", "an invoice with this externalId exists")
        test = body.get("test")
        invoice_id = "inv_" + secrets.token_hex(8)
        self.invoices[invoice_id] = {
            "invoiceId": invoice_id,
            **({"externalId": external_id} if external_id else {}),
            "state": test.get("result", "pending") if test else "pending",
            "invoiceDate": body["invoiceDate"],
            "period": body["period"],
            "items": body["items"],
            "total": f"{sum(float(i['total']) for i in body['items']):.2f}",
            "test": bool(test),
            "created": body["invoiceDate"],
            "updated": body["invoiceDate"],
        }
        return web.json_response({"invoiceId": invoice_id, **({"test": True} if test else {})})

    async def _get_invoice(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        invoice = self.invoices.get(params["iid"])
        if invoice is None:
            return _error(404, "not_found", "no invoice")
        return web.json_response(invoice)

    async def _create_items(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        items = (call.json or {}).get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("id") for i in items):
            return _error(400, "bad_request", "items with ids are required")
        known = self.experimentation_items.setdefault(params["rid"], {})
        if any(i["id"] in known for i in items):
            return _error(409, "conflict", "an item with this id exists")
        known.update({i["id"]: i for i in items})
        return _empty(204)

    async def _update_item(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        known = self.experimentation_items.get(params["rid"], {})
        if params["item"] not in known:
            return _error(404, "not_found", "no such item")
        known[params["item"]] = {"id": params["item"], **(call.json or {})}
        return _empty(204)

    async def _delete_item(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        if self.experimentation_items.get(params["rid"], {}).pop(params["item"], None) is None:
            return _error(404, "not_found", "no such item")
        return _empty(204)

    async def _put_config(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        data = (call.json or {}).get("data")
        if not isinstance(data, dict):
            return _error(400, "bad_request", "data must be an object")
        previous = self.experimentation_configs.get(params["rid"], {})
        encoded = json.dumps(data, sort_keys=True).encode()
        self.experimentation_configs[params["rid"]] = config = {
            "items": data,
            "updatedAt": previous.get("updatedAt", 0) + 1,
            "digest": hashlib.sha256(encoded).hexdigest(),
            "purpose": "experimentation",
        }
        return web.json_response(config)

    async def _sso_token(self, request: web.Request, call: Call, params: dict[str, str]) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("code") or not body.get("client_id") or not body.get("client_secret"):
            return _error(400, "bad_request", "code, client_id and client_secret are required")
        answer = self.sso_tokens.get(body["code"])
        if answer is None:
            return _error(403, "forbidden", "invalid, expired or used code")
        return web.json_response(answer)
