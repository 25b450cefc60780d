from __future__ import annotations

import hashlib
import secrets
from typing import Protocol


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str: ...

    def stable_id(self, prefix: str, *parts: str) -> str:
        """The same id for the same parts: lets a retried request name the same thing again."""
        ...


class RandomIds:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def stable_id(self, prefix: str, *parts: str) -> str:
        digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        return f"{prefix}_{digest[:24]}"
