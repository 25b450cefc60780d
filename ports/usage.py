"""Usage source: what each installation used and owes, the second port an integrator implements
(adapters/example_usage.py). The worker asks it hourly for interim billing data and monthly for invoices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from marketplace_provider.domain.billing_data import BillingItem, Discount, Usage
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.resources import Resource


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """Charges and metrics of one installation for a period, up to a moment."""

    items: tuple[BillingItem, ...] = ()
    usage: tuple[Usage, ...] = ()
    discounts: tuple[Discount, ...] = ()


class UsageSource(Protocol):
    async def report(
        self, installation: Installation, resources: Sequence[Resource], period: Period, until: datetime
    ) -> UsageReport:
        """What the installation used and owes within `period` up to `until` (the period's end for an invoice).

        `resources` holds every resource the installation had, uninstalled ones too (with their `updated_at`
        as the moment they went), so that a resource removed mid-period is still billed for its days. Usage
        `period_value`s are running totals for the period. Called again for the same period, it must give
        the same or later totals, never increments.
        """
        ...
