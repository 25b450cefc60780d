"""Installations: one Vercel team's installation of the integration, from upsert to finalization."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import msgspec
from msgspec.structs import replace

from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.plans import BillingPlan


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

    @property
    def is_finalized(self) -> bool:
        return self.lifecycle is Lifecycle.FINALIZED

    # Each change returns the installation changed at `at`, or the very same object when nothing changes.

    def reinstall(self, details: InstallationDetails, at: datetime) -> Installation:
        """Upserted again (a re-install, or a retry): always the newest token, scopes and account; active again."""
        return replace(
            self,
            account=details.account or self.account,
            scopes=details.scopes,
            accepted_policies=details.accepted_policies,
            credentials=details.credentials,
            lifecycle=Lifecycle.ACTIVE,
            updated_at=at,
            deleted_at=None,
        )

    def change_plan(self, billing_plan_id: str, at: datetime) -> Installation:
        """A plan already chosen from the catalog's installation plans (`plans.choose_installation_plan`)."""
        if billing_plan_id == self.billing_plan_id:
            return self
        return replace(self, billing_plan_id=billing_plan_id, updated_at=at)

    def show(self, notification: Notification | None, at: datetime) -> Installation:
        """Show this notification on the installation in Vercel's dashboard (None: remove it). The same one: no
        change."""
        if notification == self.notification:
            return self
        return replace(self, notification=notification, updated_at=at)

    def uninstall(self, at: datetime, plans: Iterable[BillingPlan | None]) -> Installation:
        """Uninstalled; `plans` are the installation's and its resources' (None: gone from the catalog).

        Finalized at once when every one is free: nothing can be billed any more, so Vercel's access token is
        forgotten too. Otherwise pending deletion, keeping the token for the final invoices (the worker
        finalizes it afterwards)."""
        free = all(plan is not None and plan.is_free for plan in plans)
        return replace(
            self,
            lifecycle=Lifecycle.FINALIZED if free else Lifecycle.PENDING_DELETION,
            credentials=None if free else self.credentials,
            updated_at=at,
            deleted_at=at,
        )

    def finalize(self, at: datetime) -> Installation:
        """Vercel has the finalization of an installation pending deletion: nothing more is billed, and its access
        token no longer works. Any other installation stays as it is."""
        if self.lifecycle is not Lifecycle.PENDING_DELETION:
            return self
        return replace(self, lifecycle=Lifecycle.FINALIZED, credentials=None, updated_at=at)


class InstallationDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What an upsert carries."""

    scopes: tuple[str, ...]
    accepted_policies: dict[str, str]
    credentials: Credentials
    account: Account | None = None


def new_installation(
    installation_id: str, details: InstallationDetails, billing_plan_id: str | None, at: datetime
) -> Installation:
    """An installation upserted for the first time, on the catalog's default installation plan (if any)."""
    return Installation(
        id=installation_id,
        account=details.account,
        scopes=details.scopes,
        accepted_policies=details.accepted_policies,
        credentials=details.credentials,
        billing_plan_id=billing_plan_id,
        notification=None,
        lifecycle=Lifecycle.ACTIVE,
        created_at=at,
        updated_at=at,
    )
