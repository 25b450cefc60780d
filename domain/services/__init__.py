"""Use cases, one module per area; each talks only to ports."""

from __future__ import annotations

import msgspec

from domain.services.installations import Installations
from domain.services.notifications import Notifications
from domain.services.plans import Plans
from domain.services.purchases import Purchases
from domain.services.resources import Resources
from domain.services.transfers import Transfers
from domain.services.webhooks import Webhooks


class Services(msgspec.Struct, frozen=True, kw_only=True):
    """The use cases a process serves, built once by its container."""

    installations: Installations
    resources: Resources
    plans: Plans
    purchases: Purchases
    transfers: Transfers
    notifications: Notifications
    webhooks: Webhooks
