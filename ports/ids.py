"""Ids for what we create (real: adapters/ids.py; tests count them up)."""

from __future__ import annotations

from typing import Protocol


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str: ...

    def stable_id(self, prefix: str, *parts: str) -> str:
        """The same id for the same parts: lets a retried request name the same thing again."""
        ...

    def secret_token(self) -> str:
        """256 random bits, URL-safe: unguessable ids such as a browser session's."""
        ...
