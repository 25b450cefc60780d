"""Real ids: random ones from the operating system's generator, and stable ones derived from what names them."""

from __future__ import annotations

import hashlib
import secrets


class RandomIds:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def secret_token(self) -> str:
        return secrets.token_urlsafe(32)

    def stable_id(self, prefix: str, *parts: str) -> str:
        digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        return f"{prefix}_{digest[:24]}"
