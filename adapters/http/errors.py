"""Every failure leaves as the documented error body {"error": {"code", "message", ...}}. One table maps
domain errors to statuses; Litestar's own errors (validation, 404 route, 405, 413) are reshaped too."""

from __future__ import annotations

import logging
import re

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from marketplace_provider.adapters.http.schemas import PATTERN_MEANINGS, ErrorBody, FieldProblem
from marketplace_provider.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)

log = logging.getLogger("marketplace.http")

STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    Unavailable: 503,
}

CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "unavailable",
}


def _json(body: ErrorBody, status: int, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def domain_error(request: Request, exc: DomainError) -> Response[ErrorBody]:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), None)
    if status is None:  # a DomainError kind nobody mapped: our bug, answered as one
        return internal_error(request, exc)
    headers = {"WWW-Authenticate": 'Bearer realm="vercel-marketplace"'} if status == 401 else None
    return _json(ErrorBody.from_error(exc), status, headers)


MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
# msgspec names a pattern a value failed by its repr: say what it means instead
PATTERN_FAILED = re.compile(r"Expected `str` matching regex (.+)")
MEANINGS = {repr(pattern): meaning for pattern, meaning in PATTERN_MEANINGS.items()}


def _field_problem(item: dict) -> FieldProblem:
    """Litestar names the body `data` and the parent object of a missing field: name the field itself."""
    key = str(item.get("key") or item.get("source") or "body").removeprefix("$.")
    message = str(item.get("message", "is invalid"))
    if key == "data" and message == "'data'":  # no body at all
        return FieldProblem(key="body", message="a JSON body is required")
    missing = MISSING_FIELD.search(message)
    if missing:
        parent = "" if key in ("data", "body") else key + "."
        return FieldProblem(key=parent + missing.group(1), message="is required")
    message = message.split(" - at `")[0]
    failed = PATTERN_FAILED.fullmatch(message)
    if failed and failed.group(1) in MEANINGS:
        message = MEANINGS[failed.group(1)]
    return FieldProblem(key=key, message=message)


def validation_error(request: Request, exc: ValidationException) -> Response[ErrorBody]:
    """Litestar's body/query/path validation: name each bad field with its JSON path."""
    fields = [_field_problem(item) for item in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(item, dict)]
    message = f"{fields[0].key}: {fields[0].message}" if fields else "Input has failed validation"
    return _json(ErrorBody.of("validation_error", message, fields), 400)


def http_error(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if status >= 500:
        return internal_error(request, exc)
    message = exc.detail or CODES.get(status, "error")
    return _json(ErrorBody.of(CODES.get(status, "error"), message), status, exc.headers)


# A decoder that gives up on absurd input (nesting thousands deep, bytes that are not UTF-8) raises
# these from inside Litestar's body parsing; they are the client's fault, never a 500.
CLIENT_DECODE_ERRORS = (RecursionError, UnicodeDecodeError)


def internal_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, CLIENT_DECODE_ERRORS):
        return _json(ErrorBody.of("bad_request", "the request body could not be decoded"), 400)
    # Log the kind and where, never the request: headers carry tokens, bodies carry secrets.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return _json(ErrorBody.of("internal_error", "something went wrong on our side"), 500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
