"""What the request being served is, for every log line it produces: a context variable set by the HTTP adapter
(adapters/http/observability.py) and read by the logging set-up (entrypoints/logs.py).

The variable holds one mutable object per request rather than values: parts that learn something later (who the
caller is, once the token is verified) fill it in, and Litestar may resolve dependencies in tasks of their own,
whose context is a copy: a value set there would never reach the access line, an attribute of the shared object
does.
"""

from __future__ import annotations

from contextvars import ContextVar

from marketplace_provider.domain.roles import Caller


class RequestFacts:
    """One request's id (sanitised or generated: safe to log as is) and, once known, its verified caller."""

    __slots__ = ("caller", "id")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.caller: Caller | None = None


current_request: ContextVar[RequestFacts | None] = ContextVar("marketplace_request", default=None)


def current_request_id() -> str | None:
    facts = current_request.get()
    return None if facts is None else facts.id
