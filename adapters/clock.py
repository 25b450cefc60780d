"""The real clock: the time of the machine, in UTC (tests use a fixed or hand-moved clock instead)."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
