"""GET /metrics: Prometheus's text format (adapters/metrics.py), optionally behind a bearer token (METRICS_TOKEN)."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from marketplace_provider.adapters.http.schemas import ErrorBody
from marketplace_provider.adapters.metrics import CONTENT_TYPE, OutboxSnapshot, exposition, outbox_counts, token_matches
from marketplace_provider.domain.errors import Unauthenticated


def metrics_route(token: str | None) -> HTTPRouteHandler:
    """The route, open when `token` is None."""

    @get(
        "/metrics",
        tags=["Operations"],
        summary="Prometheus metrics",
        description="Requests, token cache, JWKS fetches, outbox backlog and deliveries, webhook events and "
        "provisioner calls, in Prometheus's text format. When METRICS_TOKEN is set, it needs "
        "`Authorization: Bearer <METRICS_TOKEN>`.",
        media_type=CONTENT_TYPE,  # Litestar adds "; charset=utf-8"
        responses={
            401: ResponseSpec(ErrorBody, description="METRICS_TOKEN is set and was not sent", generate_examples=False)
        },
    )
    async def metrics(request: Request) -> Response[bytes]:
        if token is not None and not token_matches(request.headers.get("authorization"), token):
            raise Unauthenticated("/metrics needs Authorization: Bearer <METRICS_TOKEN>")
        counts = await outbox_counts(request.app.state.runtime.storage)
        return Response(exposition([OutboxSnapshot(counts)]), media_type=CONTENT_TYPE)

    return metrics
