"""What the fake Vercel API answers on each marketplace endpoint of vercel-api.md: the documented status and a
plausible body, from and into the FakeVercel's state (`fake`). The routes table is FakeVercel's."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from marketplace_provider.adapters.simulator.vercel_api import FakeVercel

Answer = Callable[["FakeVercel", "Call", dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    status: int | None = None  # the answer's, once answered; None for a dropped connection

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def empty(status: int) -> web.Response:
    return web.Response(status=status)


def found(body: dict | None, what: str) -> web.Response:
    return error(404, "not_found", f"no such {what}") if body is None else web.json_response(body)


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
         410: "gone", 412: "precondition_failed", 422: "unprocessable_entity"}

INSTALLATION = r"/v1/installations/(?P<inst>[^/]+)"
RESOURCE = INSTALLATION + r"/resources/(?P<rid>[^/]+)"
SSO_TOKEN = "/v1/integrations/sso/token"


def no_content(status: int) -> Answer:
    async def answer(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
        return empty(status)

    return answer


async def account(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    return web.json_response(fake.account_info)


async def member(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    return found(fake.members.get(params["mid"]), "member")


async def event(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    event = (call.json or {}).get("event") or {}
    if event.get("type") not in ("installation.updated", "resource.updated"):
        return error(400, "bad_request", "unknown event type")
    if event["type"] == "resource.updated" and not event.get("resourceId"):
        return error(400, "bad_request", "resourceId is required")
    return empty(201)


async def import_resource(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    body = call.json or {}
    missing = [k for k in ("productId", "name", "status") if k not in body]
    if missing:
        return error(400, "bad_request", f"missing {', '.join(missing)}")
    rid = params["rid"]
    previous = fake.resources.get(rid, {})
    fake.resources[rid] = {
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


async def update_resource(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    resource = fake.resources.get(params["rid"])
    if resource is None:
        return error(404, "not_found", "no such resource")
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


async def submit_invoice(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    body = call.json or {}
    if not body.get("items") or "invoiceDate" not in body or "period" not in body:
        return error(400, "bad_request", "invoiceDate, period and items are required")
    external_id = body.get("externalId")
    if external_id and any(i.get("externalId") == external_id for i in fake.invoices.values()):
        return error(409, "conflict", "an invoice with this externalId exists")
    test = body.get("test")
    invoice_id = "inv_" + secrets.token_hex(8)
    fake.invoices[invoice_id] = {
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


async def get_invoice(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    return found(fake.invoices.get(params["iid"]), "invoice")


async def create_items(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    items = (call.json or {}).get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("id") for i in items):
        return error(400, "bad_request", "items with ids are required")
    known = fake.experimentation_items.setdefault(params["rid"], {})
    if any(i["id"] in known for i in items):
        return error(409, "conflict", "an item with this id exists")
    known.update({i["id"]: i for i in items})
    return empty(204)


async def update_item(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    known = fake.experimentation_items.get(params["rid"], {})
    if params["item"] not in known:
        return error(404, "not_found", "no such item")
    known[params["item"]] = {"id": params["item"], **(call.json or {})}
    return empty(204)


async def delete_item(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    if fake.experimentation_items.get(params["rid"], {}).pop(params["item"], None) is None:
        return error(404, "not_found", "no such item")
    return empty(204)


async def put_config(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    data = (call.json or {}).get("data")
    if not isinstance(data, dict):
        return error(400, "bad_request", "data must be an object")
    previous = fake.experimentation_configs.get(params["rid"], {})
    encoded = json.dumps(data, sort_keys=True).encode()
    fake.experimentation_configs[params["rid"]] = config = {
        "items": data,
        "updatedAt": previous.get("updatedAt", 0) + 1,
        "digest": hashlib.sha256(encoded).hexdigest(),
        "purpose": "experimentation",
    }
    return web.json_response(config)


async def sso_token(fake: FakeVercel, call: Call, params: dict[str, str]) -> web.StreamResponse:
    body = call.json or {}
    if not body.get("code") or not body.get("client_id") or not body.get("client_secret"):
        return error(400, "bad_request", "code, client_id and client_secret are required")
    if (fake.client_id, fake.client_secret) != (None, None) and (body["client_id"], body["client_secret"]) != (
        fake.client_id, fake.client_secret
    ):
        return error(403, "forbidden", "wrong client_id or client_secret")
    answer = fake.sso_tokens.get(body["code"])
    if answer is None:
        return error(403, "forbidden", "invalid, expired or used code")
    return web.json_response(answer() if callable(answer) else answer)
