"""Errors the business can raise. Messages may be read by a Vercel user: never put a secret in one."""

from __future__ import annotations


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, user_message: str | None = None, user_url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.user_message = user_message
        self.user_url = user_url


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Unprocessable(DomainError):
    """Well-formed but cannot be executed (Vercel's 422), e.g. a purchase whose invoice is not paid."""

    code = "unprocessable"


class Unavailable(DomainError):
    """Something we depend on (Vercel, the JWKS, the database) did not answer; retrying later may work."""

    code = "unavailable"


class FieldError:
    __slots__ = ("key", "message")

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message

    def __repr__(self) -> str:
        return f"FieldError({self.key!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldError) and (self.key, self.message) == (other.key, other.message)


class Invalid(DomainError):
    """Input failed validation; `fields` names each bad field."""

    code = "validation_error"

    def __init__(self, message: str, fields: list[FieldError] | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.fields = fields or []

    @classmethod
    def field(cls, key: str, message: str) -> Invalid:
        return cls(f"{key}: {message}", [FieldError(key, message)])
