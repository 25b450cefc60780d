"""What the simulator shows of the calls a provider made to the fake Vercel API: one console line per call and a
JSON view, both without a secret. Bearer tokens, client secrets, id tokens and secret values never appear."""

from __future__ import annotations

import json
import re
from typing import Any

from marketplace_provider.adapters.simulator.vercel_answers import Call

HIDDEN = "<hidden>"
_SECRET_KEYS = frozenset({"access_token", "client_secret", "id_token", "refresh_token", "code", "authorization"})
_INSTALLATION = re.compile(r"^/v1/installations/(?P<inst>[^/]+)")


def redacted(value: Any, *, in_secrets: bool = False) -> Any:
    """A copy of a decoded JSON body with every secret value hidden (names are kept)."""
    if isinstance(value, dict):
        return {
            k: HIDDEN if k in _SECRET_KEYS or (in_secrets and k == "value")
            else redacted(v, in_secrets=in_secrets or k == "secrets")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redacted(v, in_secrets=in_secrets) for v in value]
    return value


def _body(call: Call) -> Any:
    try:
        return call.json
    except ValueError:
        return f"<{len(call.body)} bytes, not JSON>"


def view(index: int, call: Call) -> dict[str, Any]:
    """One recorded call as the JSON endpoint shows it."""
    match = _INSTALLATION.match(call.path)
    return {
        "index": index,
        "method": call.method,
        "path": call.path,
        "installationId": match["inst"] if match else None,
        "status": call.status,
        "bearer": bool(call.authorization),  # whether one was sent; never its value
        "idempotencyKey": call.headers.get("idempotency-key"),
        "userAgent": call.headers.get("user-agent"),
        "body": redacted(_body(call)),
    }


def summary(call: Call) -> str:
    """What the call told Vercel, in a few words (no secret)."""
    body = _body(call)
    if not isinstance(body, dict):
        return ""
    said: list[str] = []
    if "status" in body:
        said.append(f"status={body['status']}")
    if "notification" in body:
        note = body["notification"]
        said.append("notification cleared" if note is None else f"notification {note.get('level')}: {note.get('title')!r}")
    if isinstance(body.get("event"), dict):
        event = body["event"]
        said.append(f"event {event.get('type')}" + (f" {event['resourceId']}" if event.get("resourceId") else ""))
    if "usage" in body or "billing" in body:
        billing = body.get("billing")
        items = billing.get("items", []) if isinstance(billing, dict) else billing or []
        said.append(f"billing data: {len(items)} item(s), {len(body.get('usage') or [])} usage metric(s)")
    if "items" in body and "invoiceDate" in body:
        said.append(f"invoice {body.get('externalId') or ''} total {_total(body['items'])}"
                    + (" final" if body.get("final") else "") + (" test" if body.get("test") else ""))
    if isinstance(body.get("balances"), list):
        cents = [b.get("currencyValueInCents") for b in body["balances"] if isinstance(b, dict)]
        said.append(f"balances {cents} cents")
    secrets = body.get("secrets")
    if isinstance(secrets, dict):  # the {secrets, partial} form of Update Resource
        secrets = secrets.get("secrets")
    if isinstance(secrets, list):
        names = [s.get("name") for s in secrets if isinstance(s, dict)]
        said.append(f"secrets {', '.join(map(str, names))} (values hidden)" + (" partial" if body.get("partial") else ""))
    if "code" in body and "client_id" in body:
        said.append("SSO code exchanged")
    return "; ".join(said)


def _total(items: Any) -> str:
    try:
        return f"{sum(float(i['total']) for i in items):.2f}"
    except (TypeError, KeyError, ValueError):
        return "?"


def log_line(call: Call) -> str:
    status = "dropped" if call.status is None else str(call.status)
    said = summary(call)
    return f"  vercel <- {call.method:<6} {call.path}  {status}" + (f"  {said}" if said else "")


def dumps(calls: list[Call], since: int = 0) -> str:
    return json.dumps({"calls": [view(i, c) for i, c in enumerate(calls) if i >= since], "next": len(calls)})
