from __future__ import annotations

from typing import Protocol

from marketplace_provider.domain.roles import Caller


class TokenVerifier(Protocol):
    async def verify(self, raw_token: str) -> Caller:
        """The caller a Vercel OIDC token proves; raises Unauthenticated (or Unavailable when keys can't be had)."""
        ...
