"""POST /webhook: Vercel's signed event deliveries (webhooks.md).

The signature is checked over the raw bytes before anything is parsed. A verified event is stored before the
2xx goes out, then applied after the answer (and by the worker, should this process die first)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from marketplace_provider.adapters.http.schemas import ErrorBody, Wire
from marketplace_provider.adapters.metrics import WEBHOOK_EVENTS, event_type_label
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.webhooks import StoredEvent, new_event

log = logging.getLogger("marketplace.webhooks")

SIGNATURE_HEADER = "x-vercel-signature"


class _Envelope(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    type: str
    created_at: int | float  # milliseconds since the epoch
    payload: dict[str, Any] = {}


def parse_event(body: bytes, received_at: datetime) -> StoredEvent:
    """The wire format of a verified body, handed to the domain as typed values; Invalid when it is not an event."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.ValidationError as exc:
        raise Invalid(f"not a webhook event: {exc}") from None
    except msgspec.DecodeError:
        raise Invalid("the body is not valid JSON") from None
    return new_event(
        event_id=envelope.id,
        event_type=envelope.type,
        created_at_ms=envelope.created_at,
        payload=envelope.payload,
        body=body,
        received_at=received_at,
    )


def read_payload(body: bytes) -> dict[str, Any]:
    """The payload of a stored delivery (the domain's `ReadPayload`, given to it by the composition root)."""
    return msgspec.json.decode(body, type=_Envelope).payload


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def refuse_control_characters_in_ids(body: bytes) -> None:
    """Invalid naming the field when an id of the event (its own `id`, and every `id`, `...Id` or `...Ids` of
    its payload: installation, resource, invoice, user ids...) holds a NUL or another control character; such an
    id would be stored, logged and sent back to Vercel as it came."""
    try:
        pending: list[tuple[str, Any]] = [("", msgspec.json.decode(body))]
    except msgspec.DecodeError:
        return  # parse_event names what is wrong with the body
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            entries = [(f"{path}.{k}" if path else k, k == "id" or k.endswith("Id"), v) for k, v in value.items()]
        elif isinstance(value, list):
            entries = [(f"{path}[{n}]", path.endswith("Ids"), v) for n, v in enumerate(value)]  # `...Ids`: ids
        else:
            continue
        for where, names_id, item in entries:
            if names_id and isinstance(item, str) and CONTROL_CHARACTER.search(item):
                raise Invalid.field(where, "must not contain control characters")
            if isinstance(item, (dict, list)):
                pending.append((where, item))


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    """Hex HMAC-SHA1 of the raw body with the client secret, compared in constant time."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest().encode()
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))


class Received(Wire):
    received: bool
    duplicate: bool


async def _apply_after_answer(webhooks: Webhooks, event_id: str, event_type: str) -> None:
    label = event_type_label(event_type)  # for /metrics only: the event itself keeps its own type
    try:
        applied = await webhooks.apply(event_id, event_type=event_type)
    except Exception:  # stored, so nothing is lost: the worker applies it later
        WEBHOOK_EVENTS.labels(type=label, outcome="apply_failed").inc()
        log.exception("webhook %s: applying it failed; the worker will try again", event_id)
        return
    if applied:  # False: a duplicate, or another process was first
        WEBHOOK_EVENTS.labels(type=label, outcome="applied").inc()


@post(
    "/webhook",
    tags=["Webhooks"],
    summary="Receive a Vercel webhook event",
    description="Signed with the integration's client secret (hex HMAC-SHA1 of the raw body in x-vercel-signature). "
    "A wrong or missing signature gets 403 and has no effect; a repeated event id is acknowledged and ignored.",
    status_code=200,
    responses={
        200: ResponseSpec(Received, description="Stored (or a repeat of a stored event); applied after this answer"),
        400: ResponseSpec(ErrorBody, description="Signed, but not an event: not JSON, or a bad id, type or createdAt",
                          generate_examples=False),
        403: ResponseSpec(ErrorBody, description="Missing or wrong signature: nothing was done", generate_examples=False),
        413: ResponseSpec(ErrorBody, description="The body is larger than the server accepts", generate_examples=False),
    },
)
async def receive_webhook(request: Request, webhooks: NamedDependency[Webhooks]) -> Response[Received | ErrorBody]:
    body = await request.body()
    if not signature_matches(request.app.state.runtime.webhook_secret, body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("webhook refused: missing or wrong signature")
        WEBHOOK_EVENTS.labels(type="unknown", outcome="refused").inc()  # unsigned: its type is not to be trusted
        return Response(
            ErrorBody.of("invalid_signature", "signature didn't match"), status_code=403, media_type=MediaType.JSON
        )
    try:
        event = parse_event(body, webhooks.ports.clock.now())  # Invalid -> 400 with the error body
        refuse_control_characters_in_ids(body)
    except Invalid:
        WEBHOOK_EVENTS.labels(type="unknown", outcome="invalid").inc()
        raise
    new = await webhooks.receive(event)
    WEBHOOK_EVENTS.labels(type=event_type_label(event.type), outcome="accepted" if new else "duplicate").inc()
    return Response(
        Received(received=True, duplicate=not new),
        status_code=200,
        background=BackgroundTask(_apply_after_answer, webhooks, event.id, event.type),
    )
