"""Notifications shown on an installation or resource in Vercel's dashboard."""

from __future__ import annotations

import enum

import msgspec

from marketplace_provider.domain.errors import Invalid

TITLE_MAX = 100
MESSAGE_MAX = 2000
HREF_MAX = 2048
HREF_SCHEMES = ("http://", "https://", "sso:")


class Level(enum.Enum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    level: Level
    title: str
    message: str | None = None
    href: str | None = None


def new_notification(
    level: Level, title: str, message: str | None = None, href: str | None = None, *, field: str = "notification"
) -> Notification:
    """Build a notification Vercel will accept, or raise Invalid naming the bad part."""
    if not title.strip():
        raise Invalid.field(f"{field}.title", "is required")
    if len(title) > TITLE_MAX:
        raise Invalid.field(f"{field}.title", f"must be at most {TITLE_MAX} characters")
    if message is not None and len(message) > MESSAGE_MAX:
        raise Invalid.field(f"{field}.message", f"must be at most {MESSAGE_MAX} characters")
    if href is not None:
        if len(href) > HREF_MAX or not href.startswith(HREF_SCHEMES) or any(c.isspace() for c in href):
            raise Invalid.field(f"{field}.href", "must be an http(s):// or sso: link")
    return Notification(level=level, title=title, message=message, href=href)


def checked(notification: Notification | None, *, field: str = "notification") -> Notification | None:
    """A notification built elsewhere (a Struct does not check itself), checked as `new_notification` would."""
    if notification is None:
        return None
    if not isinstance(notification, Notification) or not isinstance(notification.level, Level):
        raise Invalid.field(f"{field}.level", "must be info, warn or error")
    n = notification
    for name, value, required in (("title", n.title, True), ("message", n.message, False), ("href", n.href, False)):
        if not isinstance(value, str) and (required or value is not None):
            raise Invalid.field(f"{field}.{name}", "must be a string")
    return new_notification(n.level, n.title, n.message, n.href, field=field)
