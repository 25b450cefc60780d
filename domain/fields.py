"""Checks of one field's value, shared by the value types we exchange with Vercel (money, periods, billing data,
updates, experimentation items). Each raises Invalid naming the field, so a wrong value cannot be built."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from marketplace_provider.domain.errors import Invalid


def require_aware(value: object, field: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise Invalid.field(field, "must be a datetime with a time zone")


def require_quantity(value: object, field: str) -> None:
    """A non-negative exact number: int or finite Decimal (never a float, never a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Invalid.field(field, "must be an int or a Decimal")
    if isinstance(value, Decimal) and not value.is_finite():
        raise Invalid.field(field, "must be finite")
    if value < 0:
        raise Invalid.field(field, "must not be negative")


def require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise Invalid.field(field, "is required")


def require_span(start: datetime | None, end: datetime | None, field: str) -> None:
    """An optional start and end, each with a time zone, the start strictly first."""
    for name, moment in (("start", start), ("end", end)):
        if moment is not None:
            require_aware(moment, f"{field}.{name}")
    if start is not None and end is not None and not start < end:
        raise Invalid.field(field, "start must come before end")
