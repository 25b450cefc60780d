"""Billing calendar: periods, UTC calendar months as billing periods, and the keys that make each job run once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.fields import require_aware


class Period(msgspec.Struct, frozen=True):
    """A billing period; start strictly before end, both with a time zone."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_aware(self.start, "period.start")
        require_aware(self.end, "period.end")
        if not self.start < self.end:
            raise Invalid.field("period", "start must come before end")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def billing_month(moment: datetime) -> Period:
    """The calendar month (UTC) holding `moment`: from its first instant to the first instant of the next."""
    moment = moment.astimezone(UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return Period(start=start, end=following)


def previous_month(moment: datetime) -> Period:
    return billing_month(billing_month(moment).start - timedelta(microseconds=1))


def end_of_day(moment: datetime) -> datetime:
    """The last second of `moment`'s UTC day: the `eod` that interim billing data belongs to."""
    moment = moment.astimezone(UTC)
    return moment.replace(hour=23, minute=59, second=59, microsecond=0)


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def month_key(period: Period) -> str:
    return period.start.astimezone(UTC).strftime("%Y-%m")


def last_instant(period: Period) -> datetime:
    """A moment inside the period at its very end (periods end at the next period's first instant)."""
    return period.end - timedelta(seconds=1)
