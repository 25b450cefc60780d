"""POST /webhook: Vercel's signed event deliveries (webhooks.md).

The signature is checked over the raw bytes before anything is parsed. A verified event is stored before the
2xx goes out, then applied after the answer (and by the worker, should this process die first)."""

from __future__ import annotations

import hashlib
import hmac
import logging

from litestar import MediaType, Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency

from marketplace_provider.adapters.http.schemas import ErrorBody, Wire
from marketplace_provider.domain.services.webhooks import Webhooks
from marketplace_provider.domain.webhooks import parse_event

log = logging.getLogger("marketplace.webhooks")

SIGNATURE_HEADER = "x-vercel-signature"


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    """Hex HMAC-SHA1 of the raw body with the client secret, compared in constant time."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest().encode()
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))


class Received(Wire):
    received: bool
    duplicate: bool


async def _apply_after_answer(webhooks: Webhooks, event_id: str) -> None:
    try:
        await webhooks.apply(event_id)
    except Exception:  # stored, so nothing is lost: the worker applies it later
        log.exception("webhook %s: applying it failed; the worker will try again", event_id)


@post(
    "/webhook",
    tags=["Webhooks"],
    summary="Receive a Vercel webhook event",
    description="Signed with the integration's client secret (hex HMAC-SHA1 of the raw body in x-vercel-signature). "
    "A wrong or missing signature gets 403 and has no effect; a repeated event id is acknowledged and ignored.",
    status_code=200,
    responses={},
)
async def receive_webhook(request: Request, webhooks: NamedDependency[Webhooks]) -> Response[Received | ErrorBody]:
    body = await request.body()
    if not signature_matches(request.app.state.runtime.webhook_secret, body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("webhook refused: missing or wrong signature")
        return Response(
            ErrorBody.of("invalid_signature", "signature didn't match"), status_code=403, media_type=MediaType.JSON
        )
    event = parse_event(body, webhooks.ports.clock.now())  # Invalid -> 400 with the error body
    new = await webhooks.receive(event)
    return Response(
        Received(received=True, duplicate=not new),
        status_code=200,
        background=BackgroundTask(_apply_after_answer, webhooks, event.id),
    )
