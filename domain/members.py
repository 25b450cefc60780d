"""The team on the other side, as Vercel reports it: its account and a member's role."""

from __future__ import annotations

import msgspec

from marketplace_provider.domain.installations import Account
from marketplace_provider.domain.roles import Role

AccountInfo = Account  # Get Account Information answers the shape the upsert carries: url, name?, contact?


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    role: Role
    global_user_id: str | None = None
    user_email: str | None = None
