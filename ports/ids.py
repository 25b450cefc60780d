from __future__ import annotations

import hashlib
import secrets
from typing import Protocol


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str: ...

    def stable_id(self, prefix: str, *parts: str) -> str:
        """The same id for the same parts: lets a retried request name the same thing again."""
        ...

    def secret_token(self) -> str:
        """256 random bits, URL-safe: unguessable ids such as a browser session's."""
        ...


class RandomIds:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def secret_token(self) -> str:
        return secrets.token_urlsafe(32)

    def stable_id(self, prefix: str, *parts: str) -> str:
        digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        return f"{prefix}_{digest[:24]}"
