"""Use cases, one module per area; each talks only to ports."""

from __future__ import annotations

import msgspec

from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.notifications import Notifications
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.domain.services.transfers import Transfers
from marketplace_provider.domain.services.webhooks import Webhooks


class Services(msgspec.Struct, frozen=True, kw_only=True):
    """The use cases a process serves, built once by its container."""

    installations: Installations
    resources: Resources
    plans: Plans
    purchases: Purchases
    transfers: Transfers
    notifications: Notifications
    webhooks: Webhooks
