"""SSO intents: the context Vercel passes to our login URL, and the page it should land the user on."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from urllib.parse import urlencode

import msgspec

from marketplace_provider.domain.roles import AuthStyle, Caller, Role


class Area(enum.Enum):
    BILLING = "billing"
    USAGE = "usage"
    ONBOARDING = "onboarding"
    SECRETS = "secrets"
    SUPPORT = "support"


class SsoIntent(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str | None = None
    resource_id: str | None = None
    project_id: str | None = None
    check_id: str | None = None
    invoice_id: str | None = None
    experimentation_item_id: str | None = None
    pull_request: str | None = None
    area: Area | None = None
    url: str | None = None  # only followed when it points at our own origin


class Landing(enum.Enum):
    RESOURCE = "resource"
    CHECK = "check"
    INVOICE = "invoice"
    AREA = "area"
    URL = "url"
    OVERVIEW = "overview"


def landing(intent: SsoIntent, own_url_path: str | None) -> Landing:
    """Which page wins when several context parameters are present.

    `own_url_path` is the intent's `url` already reduced to a path on our own origin (None when it is
    foreign or unsafe); the adapter that knows our origin does that reduction.
    """
    if own_url_path is not None:
        return Landing.URL
    if intent.area is Area.SUPPORT:  # support about whatever else the context names
        return Landing.AREA
    if intent.resource_id:
        return Landing.RESOURCE
    if intent.check_id:
        return Landing.CHECK
    if intent.invoice_id:
        return Landing.INVOICE
    if intent.area is not None:
        return Landing.AREA
    return Landing.OVERVIEW


def sso_link(url: str) -> str:
    """An `sso:` link (auth.md 4): Vercel signs the user in first, then sends them to `url` on our side."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("an sso: link wraps an absolute http(s) URL of ours")
    return "sso:" + url


def page_link(public_url: str, path: str) -> str:
    """An `sso:` link to a page of ours (a path such as /dashboard/resources/res_1), e.g. for a notification."""
    return sso_link(public_url.rstrip("/") + "/" + path.lstrip("/"))


def provider_sso_url(vercel_url: str, slug: str, installation_id: str, **params: str) -> str:
    """Provider-initiated SSO (auth.md 5): Vercel checks the user's access, then runs the usual flow to our
    /callback, echoing `params` back."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{vercel_url.rstrip('/')}/sso/integrations/{slug}/{installation_id}" + (f"?{query}" if query else "")


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A browser signed in through SSO. Only the hash of its id is kept: the id itself lives in the cookie."""

    id_hash: bytes
    installation_id: str
    user_id: str
    role: Role
    created_at: datetime
    expires_at: datetime
    user_name: str | None = None
    revoked_at: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        return self.revoked_at is None and moment < self.expires_at

    @property
    def caller(self) -> Caller:
        """The session as the permission table sees it: the same rules as a user token on the Partner API."""
        return Caller(
            style=AuthStyle.USER,
            account_id=None,
            installation_id=self.installation_id,
            user_id=self.user_id,
            role=self.role,
            name=self.user_name,
        )


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class SsoTokens(msgspec.Struct, frozen=True, kw_only=True):
    """The SSO code exchange's answer. Verify id_token like any user token; never store it."""

    id_token: str
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    refresh_token: str | None = None

    def __repr__(self) -> str:  # no token reaches a log line
        return f"SsoTokens(token_type={self.token_type!r}, expires_in={self.expires_in!r}, tokens=<redacted>)"

    __str__ = __repr__
