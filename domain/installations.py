"""Installations: one Vercel team's installation of the integration, from upsert to finalization."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from marketplace_provider.domain.notifications import Notification


class Lifecycle(enum.Enum):
    ACTIVE = "active"
    PENDING_DELETION = "pending_deletion"  # uninstalled; final invoices may still be sent
    FINALIZED = "finalized"  # nothing more to bill; Vercel's access token no longer works


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    name: str | None = None


class Account(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    contact: Contact | None = None
    name: str | None = None


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """The installation's access token for Vercel's API. It does not expire; every upsert replaces it."""

    access_token: str
    token_type: str

    def __repr__(self) -> str:  # never let a token reach a log line
        return f"Credentials(token_type={self.token_type!r}, access_token=<redacted>)"

    __str__ = __repr__


class Installation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account: Account | None
    scopes: tuple[str, ...]
    accepted_policies: dict[str, str]
    credentials: Credentials | None  # erased once the installation is finalized
    billing_plan_id: str | None
    notification: Notification | None
    lifecycle: Lifecycle
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.lifecycle is Lifecycle.ACTIVE

    def show(self, notification: Notification | None, at: datetime) -> Installation:
        """Show this notification on the installation in Vercel's dashboard (None: remove it). The same one: no
        change."""
        if notification == self.notification:
            return self
        return msgspec.structs.replace(self, notification=notification, updated_at=at)


class InstallationDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What an upsert carries."""

    scopes: tuple[str, ...]
    accepted_policies: dict[str, str]
    credentials: Credentials
    account: Account | None = None
