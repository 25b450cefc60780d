"""SSO intents: the context Vercel passes to our login URL, and the page it should land the user on."""

from __future__ import annotations

import enum

import msgspec


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
