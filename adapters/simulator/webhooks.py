"""Vercel's webhook deliveries (webhooks.md): the signature, the envelope, and a payload for every documented type.

    body = event_body("marketplace.invoice.paid", "icfg_1", invoice_id="inv_1")
    headers = signed_headers(body, client_secret)   # x-vercel-signature: hex HMAC-SHA1 of these exact bytes
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

SIGNATURE_HEADER = "x-vercel-signature"

INVOICE_EVENTS = (
    "marketplace.invoice.created",
    "marketplace.invoice.paid",
    "marketplace.invoice.notpaid",
    "marketplace.invoice.overdue",
    "marketplace.invoice.refunded",
)
CONFIGURATION_REMOVED = "integration-configuration.removed"
# webhooks.md 5, in a plausible life order; the removal comes last since it ends the installation
EVENT_TYPES = (
    *INVOICE_EVENTS,
    "marketplace.member.changed",
    "integration-configuration.permission-upgraded",
    "integration-configuration.scope-change-confirmed",
    "integration-configuration.transferred",
    "integration-resource.project-connected",
    "integration-resource.project-disconnected",
    "deployment.checkrun.start",
    "deployment.checkrun.cancel",
    "deployment.integration.action.start",
    "deployment.integration.action.cancel",
    "deployment.integration.action.cleanup",
    "test-webhook",
    CONFIGURATION_REMOVED,
)


def sign(body: bytes, secret: str | bytes) -> str:
    """The `x-vercel-signature` value: hex HMAC-SHA1 of the raw body, keyed with the integration's client secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha1).hexdigest()


def signed_headers(body: bytes, secret: str | bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)}


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(10)


def envelope(kind: str, payload: dict[str, Any], *, event_id: str | None = None, created_ms: int | None = None) -> dict:
    return {
        "id": event_id or new_event_id(),
        "type": kind,
        "createdAt": created_ms if created_ms is not None else int(time.time() * 1000),
        "region": None,
        "payload": payload,
    }


def payload_for(
    kind: str,
    installation_id: str,
    *,
    resource_id: str | None = None,
    invoice_id: str | None = None,
    external_invoice_id: str | None = None,
    total: str = "20.00",
    period: tuple[str, str] = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"),
    member_id: str = "mem_1",
    role: str = "USER",
) -> dict[str, Any]:
    """A documented payload of `kind` for one installation (and resource, invoice or member where it has one)."""
    common: dict[str, Any] = {
        "configuration": {"id": installation_id},
        "installationId": installation_id,
        "team": {"id": "team_simulated"},
        "user": {"id": "user_simulated"},
    }
    resource = resource_id or "res_simulated"
    deployment = {"id": "dpl_simulated", "url": "simulated.vercel.app", "name": "simulated"}
    if kind in INVOICE_EVENTS:
        invoice: dict[str, Any] = {
            "invoiceId": invoice_id or "inv_simulated",
            "externalInvoiceId": external_invoice_id,
            "period": {"start": period[0], "end": period[1]},
        }
        if kind == "marketplace.invoice.refunded":
            invoice |= {"amount": total, "reason": "simulated refund"}
        else:
            invoice |= {"invoiceDate": period[1], "invoiceTotal": total}
        return common | invoice
    match kind:
        case "marketplace.member.changed":
            return common | {"memberId": member_id, "role": role}
        case "integration-configuration.removed":
            return common | {"configuration": {"id": installation_id, "projectSelection": "all", "projects": []}}
        case "integration-configuration.permission-upgraded":
            return common | {"projects": {"added": ["prj_simulated"], "removed": []}}
        case "integration-configuration.scope-change-confirmed":
            return common | {"configuration": {"id": installation_id, "scopes": ["read:project"]}}
        case "integration-configuration.transferred":
            return common | {"previousTeamId": "team_old", "previousAccountId": "acc_old",
                             "newTeamId": "team_new", "newAccountId": "acc_new"}
        case "integration-resource.project-connected" | "integration-resource.project-disconnected":
            connected = kind == "integration-resource.project-connected"
            project = {"id": "prj_simulated"} | ({"name": "simulated"} if connected else {})  # disconnected: no name
            return common | {"resourceId": resource, "project": project, "projectId": "prj_simulated",
                             "targets": ["production", "preview"]}
        case "deployment.checkrun.start" | "deployment.checkrun.cancel":
            source = {"kind": "integration", "integrationConfigurationId": installation_id, "externalResourceId": resource}
            return common | {"checkRun": {"id": "chkrun_simulated", "checkId": "chk_simulated", "source": source,
                                          "deploymentId": deployment["id"]}, "deployment": deployment}
        case kind if kind.startswith("deployment.integration.action."):
            return common | {"action": "simulated-action", "resourceId": resource, "deployment": deployment}
        case _:
            return common


def event_body(kind: str, installation_id: str, *, event_id: str | None = None, **details: Any) -> bytes:
    """The exact bytes Vercel would POST for one event (sign these, never a re-serialization)."""
    return json.dumps(envelope(kind, payload_for(kind, installation_id, **details), event_id=event_id)).encode()
