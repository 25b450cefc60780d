"""A client that hangs up before its whole body arrived: routine on the internet, not our failure.

Litestar reports it as an InternalServerException ("client disconnected prematurely") from wherever the body
was being read (a Partner API body, a webhook, a dashboard form), which the 500 handler would log at ERROR
with a traceback. This handler logs one INFO line instead (the route template: nothing the client chose) and
answers 400, which nobody reads. Every other InternalServerException goes on to the usual handler."""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response
from litestar.exceptions import InternalServerException
from litestar.types import ExceptionHandlersMap

from marketplace_provider.adapters.http.errors import http_error
from marketplace_provider.adapters.http.schemas import ErrorBody

log = logging.getLogger("marketplace.http")

# Litestar's wording when the server hands it `http.disconnect` while a body is being read (connection/request.py)
LITESTAR_DISCONNECT_DETAIL = "client disconnected prematurely"


def server_exception(request: Request, exc: InternalServerException) -> Response[ErrorBody]:
    if exc.detail != LITESTAR_DISCONNECT_DETAIL:
        return http_error(request, exc)
    route = request.scope.get("path_template", "?")
    log.info("client disconnected before sending its whole body: %s %s", request.method, route)
    body = ErrorBody.of("bad_request", "the connection closed before the whole request body arrived")
    return Response(body, status_code=400, media_type=MediaType.JSON)


DISCONNECT_HANDLERS: ExceptionHandlersMap = {InternalServerException: server_exception}
