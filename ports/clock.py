"""The time, for every rule that depends on it (real: adapters/clock.py; tests set it)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, with a time zone."""
        ...
