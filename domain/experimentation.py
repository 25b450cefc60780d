"""Experimentation (flags) products: the flags and experiments of a resource as Vercel lists them, and the
flag configuration of its synced config store. What the provider does with them: domain/services/experimentation.py."""

from __future__ import annotations

import enum

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.fields import require_text


class ItemCategory(enum.Enum):
    EXPERIMENT = "experiment"
    FLAG = "flag"


class ExperimentationItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    slug: str
    origin: str  # where the item is managed: a URL into our dashboard
    category: ItemCategory | None = None
    name: str | None = None
    description: str | None = None
    is_archived: bool | None = None
    created_at: int | None = None  # epoch milliseconds
    updated_at: int | None = None

    def __post_init__(self) -> None:
        require_text(self.id, "item.id")
        require_text(self.slug, "item.slug")
        require_text(self.origin, "item.origin")
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise Invalid.field(f"item.{name}", "must be epoch milliseconds")


class ExperimentationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The synced config store's content (Edge Config / Global Config)."""

    items: dict[str, object]
    updated_at: int
    digest: str
    purpose: str | None = None


def check_item(item: ExperimentationItem, field: str = "item") -> ExperimentationItem:
    if not isinstance(item, ExperimentationItem):
        raise Invalid.field(field, "must be an ExperimentationItem")
    if not item.origin.startswith(("https://", "http://")):
        raise Invalid.field(f"{field}.origin", "must be the http(s) URL where the item is managed")
    return item
