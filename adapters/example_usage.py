"""The example usage source: the second extension point an integrator replaces (`ports.usage.UsageSource`).

What the core cannot know is what *your* product measured and what each plan costs. This class answers it for
the example catalog (`config/products.toml`), deterministically and without I/O:

- A resource on a paid subscription plan owes the plan's monthly price, prorated by the time it existed within
  the period up to `until` (created late, uninstalled early, or an interim report in mid-period), rounded to
  cents. The installation's paid installation-level plan is billed the same way, as an installation-wide item.
- Free plans owe nothing; prepayment plans owe nothing here either (customers buy credits from Vercel).
- The catalog has no machine-readable price, so `monthly_price` reads the leading "$<amount>" of a plan's
  `cost` ("$20.00/month" -> 20.00); a plan without one costs 0. A real source reads its own price list.
- A resource is billed on its current plan for the whole period: this example keeps no plan history.

The metrics are made up but behave like real ones: "Requests" (interval) grows with every hour a resource
exists, at a rate fixed by its id, so a later `until` never gives a smaller running total; "Storage" (total)
is a size fixed by its id. A real source reads its metering here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from marketplace_provider.domain.billing_data import BillingItem, Usage, UsageType
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.money import CENT, Money
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.plans import BillingPlan, Catalog, PlanType
from marketplace_provider.domain.resources import Resource
from marketplace_provider.ports.usage import UsageReport

_PRICE = re.compile(r"\s*\$\s*([0-9][0-9,]*(?:\.[0-9]+)?)")
_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_ZERO = Money(Decimal(0))


def monthly_price(plan: BillingPlan) -> Money:
    """The leading "$<amount>" of the plan's `cost` text ("$1,000.00/month" -> 1000.00), else 0."""
    match = _PRICE.match(plan.cost or "")
    if match is None:
        return _ZERO
    try:
        amount = Decimal(match.group(1).replace(",", ""))
        if amount != amount.quantize(CENT):  # a fraction of a cent is no price we can invoice
            return _ZERO
    except InvalidOperation:  # too many digits to quantize
        return _ZERO
    return Money(amount)


def _existed(created: datetime, gone: datetime | None, period: Period, until: datetime) -> timedelta:
    """How long something created at `created` (and removed at `gone`) existed in the period up to `until`."""
    start = max(created, period.start)
    stop = min(until, period.end) if gone is None else min(until, period.end, gone)
    return max(stop - start, timedelta(0))


def _gone(resource: Resource) -> datetime | None:
    return None if resource.is_live else resource.updated_at  # an uninstalled resource's last update is its end


def _counts(resource: Resource, period: Period, until: datetime) -> bool:
    """Whether the resource existed during the period (up to `until`)."""
    gone = _gone(resource)
    return resource.created_at < min(until, period.end) and (gone is None or gone > period.start)


def _stable(text: str) -> int:
    """A number fixed by the text, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _requests(resource_id: str, existed: timedelta) -> int:
    per_hour = 100 + _stable(f"requests:{resource_id}") % 900
    return existed // _MICROSECOND * per_hour // (_HOUR // _MICROSECOND)


def _storage_mb(resource_id: str) -> int:
    return 1 + _stable(f"storage:{resource_id}") % 1024


def _days(span: timedelta) -> str:
    days = (Decimal(span // _MICROSECOND) / Decimal(_DAY // _MICROSECOND)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{days.normalize():f}"


def _charge(
    plan: BillingPlan | None, existed: timedelta, period: Period, resource_id: str | None
) -> BillingItem | None:
    """The plan's monthly price for the time existed, relative to the whole period; None when nothing is owed."""
    if plan is None or plan.type is not PlanType.SUBSCRIPTION or plan.is_free:
        return None
    price = monthly_price(plan)
    length = period.end - period.start
    share = price.amount * Decimal(existed // _MICROSECOND) / Decimal(length // _MICROSECOND)
    total = Money(share.quantize(CENT, rounding=ROUND_HALF_UP))
    if total == _ZERO:
        return None
    return BillingItem(
        billing_plan_id=plan.id,
        name=plan.name,
        price=price,
        quantity=1,
        units="month",
        total=total,
        resource_id=resource_id,
        details=None if existed >= length else f"Prorated: {_days(existed)} of {_days(length)} days",
    )


class ExampleUsageSource:
    """Prorated plan prices and made-up metrics. Implements ports.usage.UsageSource."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def report(
        self, installation: Installation, resources: Sequence[Resource], period: Period, until: datetime
    ) -> UsageReport:
        items: list[BillingItem] = []
        usage: list[Usage] = []
        if installation.billing_plan_id is not None:
            existed = _existed(installation.created_at, installation.deleted_at, period, until)
            item = _charge(self.catalog.plan(installation.billing_plan_id), existed, period, None)
            if item is not None:
                items.append(item)
        day_start = datetime.combine(until.astimezone(UTC).date(), time(), UTC)
        for resource in resources:
            if not _counts(resource, period, until):
                continue
            existed = _existed(resource.created_at, _gone(resource), period, until)
            item = _charge(self.catalog.plan(resource.billing_plan_id), existed, period, resource.id)
            if item is not None:
                items.append(item)
            requests = _requests(resource.id, existed)
            before_today = _requests(resource.id, _existed(resource.created_at, _gone(resource), period, day_start))
            usage.append(
                Usage(
                    name="Requests",
                    type=UsageType.INTERVAL,
                    units="requests",
                    day_value=requests - before_today,
                    period_value=requests,
                    resource_id=resource.id,
                )
            )
            storage = _storage_mb(resource.id)
            usage.append(
                Usage(
                    name="Storage",
                    type=UsageType.TOTAL,
                    units="MB",
                    day_value=storage,
                    period_value=storage,
                    resource_id=resource.id,
                )
            )
        return UsageReport(items=tuple(items), usage=tuple(usage))
