"""adapters.example_usage: prorated plan prices and made-up metrics that only grow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from msgspec.structs import asdict

from marketplace_provider.adapters.example_usage import ExampleUsageSource, monthly_price
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.domain.billing_data import BillingData, BillingItem, Usage, UsageType
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoice_requests import InvoiceRequest
from marketplace_provider.domain.money import usd
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.plans import BillingPlan, Catalog, PlanType, Product
from marketplace_provider.domain.resources import Resource, ResourceStatus
from marketplace_provider.ports.usage import UsageReport, UsageSource

CATALOG = load_catalog(DEFAULT_PRODUCTS_FILE)
START = datetime(2026, 11, 1, tzinfo=UTC)  # November: 30 days
END = datetime(2026, 12, 1, tzinfo=UTC)
PERIOD = Period(START, END)
BEFORE = START - timedelta(days=40)


def day(n: int, hours: float = 0) -> datetime:
    """Midnight UTC of November `n`, plus `hours`."""
    return START + timedelta(days=n - 1, hours=hours)


def resource(
    resource_id: str = "res_1", plan: str = "pro", created: datetime = BEFORE, uninstalled: datetime | None = None
) -> Resource:
    return Resource(
        id=resource_id,
        installation_id="icfg_1",
        product_id="acme-kv",
        name="cache",
        metadata={},
        billing_plan_id=plan,
        status=ResourceStatus.READY if uninstalled is None else ResourceStatus.UNINSTALLED,
        secrets=(),
        created_at=created,
        updated_at=created if uninstalled is None else uninstalled,
    )


def installation(
    plan: str | None = "team-free", created: datetime = BEFORE, deleted: datetime | None = None
) -> Installation:
    return Installation(
        id="icfg_1",
        account=None,
        scopes=(),
        accepted_policies={},
        credentials=None,
        billing_plan_id=plan,
        notification=None,
        lifecycle=Lifecycle.ACTIVE if deleted is None else Lifecycle.PENDING_DELETION,
        created_at=created,
        updated_at=created if deleted is None else deleted,
        deleted_at=deleted,
    )


def plan(plan_id: str, cost: str | None, payment_method_required: bool = True) -> BillingPlan:
    return BillingPlan(
        id=plan_id,
        type=PlanType.SUBSCRIPTION,
        name=plan_id.title(),
        description="d",
        cost=cost,
        payment_method_required=payment_method_required,
    )


def catalog_of(*plans: BillingPlan) -> Catalog:
    return Catalog(products=(Product(id="p", name="P", plan_ids=tuple(p.id for p in plans)),), plans=plans)


async def report(
    *resources: Resource,
    until: datetime = END,
    inst: Installation | None = None,
    catalog: Catalog = CATALOG,
    period: Period = PERIOD,
) -> UsageReport:
    return await ExampleUsageSource(catalog).report(inst or installation(), resources, period, until)


def totals(r: UsageReport) -> dict[str | None, str]:
    return {item.resource_id: str(item.total) for item in r.items}


def requests(r: UsageReport, resource_id: str = "res_1") -> Usage:
    return next(u for u in r.usage if u.resource_id == resource_id and u.name == "Requests")


def test_it_is_a_usage_source() -> None:
    source: UsageSource = ExampleUsageSource(CATALOG)  # checked by type checkers; here: the method exists
    assert callable(source.report)


# ---------------------------------------------------------------- the monthly price


@pytest.mark.parametrize(
    ("cost", "price"),
    [
        ("$20.00/month", "20.00"),
        ("$10/month", "10.00"),
        (" $ 7.5 per month", "7.50"),
        ("$1,000.00/month", "1000.00"),
        ("$0.005/request", "0.00"),  # no sub-cent prices
        ("20 USD/month", "0.00"),
        ("From $10/month", "0.00"),  # only a leading amount
        ("", "0.00"),
        (None, "0.00"),
    ],
)
def test_monthly_price_reads_the_leading_amount_of_cost(cost: str | None, price: str) -> None:
    assert monthly_price(plan("x", cost)) == usd(price)


def test_the_catalogs_paid_plans_have_a_price() -> None:
    prices = {p.id: str(monthly_price(p)) for p in CATALOG.plans}
    assert prices["pro"] == "20.00"
    assert prices["queue-pro"] == "10.00"
    assert prices["legacy"] == "5.00"
    assert prices["team-pro"] == "50.00"
    assert prices["free"] == prices["credits"] == "0.00"


# ---------------------------------------------------------------- proration


async def test_a_full_month_costs_the_monthly_price() -> None:
    r = await report(resource())
    (item,) = r.items
    assert item == BillingItem(
        billing_plan_id="pro",
        name="Pro",
        price=usd("20.00"),
        quantity=1,
        units="month",
        total=usd("20.00"),
        resource_id="res_1",
    )


async def test_half_the_month_so_far_costs_half() -> None:
    r = await report(resource(), until=day(16))
    (item,) = r.items
    assert (item.price, item.total, item.quantity) == (usd("20.00"), usd("10.00"), 1)
    assert item.details == "Prorated: 15 of 30 days"


async def test_a_resource_created_mid_period_pays_from_its_creation() -> None:
    r = await report(resource(created=day(11)))
    assert totals(r) == {"res_1": "13.33"}  # 20 days of 30


async def test_a_resource_uninstalled_mid_period_pays_until_it_went() -> None:
    r = await report(resource(uninstalled=day(7)))
    assert totals(r) == {"res_1": "4.00"}  # 6 days of 30


async def test_created_and_uninstalled_within_the_period() -> None:
    r = await report(resource(created=day(3), uninstalled=day(6, hours=12)))
    assert totals(r) == {"res_1": "2.33"}  # 3.5 days of 30
    assert r.items[0].details == "Prorated: 3.5 of 30 days"


async def test_until_after_the_period_end_charges_no_more_than_the_month() -> None:
    assert totals(await report(resource(), until=END + timedelta(days=3))) == {"res_1": "20.00"}


@pytest.mark.parametrize(
    "gone",
    [
        resource(created=day(20)),  # created after `until`
        resource(created=END + timedelta(days=1)),  # created after the period
        resource(created=BEFORE, uninstalled=START - timedelta(days=1)),  # uninstalled before the period
        resource(created=BEFORE, uninstalled=START),  # uninstalled at its very start
    ],
    ids=["after-until", "after-period", "before-period", "at-start"],
)
async def test_a_resource_not_existing_in_the_period_is_left_out(gone: Resource) -> None:
    assert await report(gone, until=day(16)) == UsageReport()


async def test_prorating_rounds_half_up_to_cents() -> None:
    one_dollar = catalog_of(plan("dollar", "$1.00/month"))
    period = Period(START, day(9))  # 8 days
    r = await report(resource(plan="dollar"), until=day(2), catalog=one_dollar, period=period)
    assert totals(r) == {"res_1": "0.13"}  # 0.125 (half-even would give 0.12)


async def test_an_amount_that_rounds_to_nothing_is_no_item_but_usage_still_counts() -> None:
    r = await report(resource(plan="queue-pro", created=day(5)), until=day(5) + timedelta(minutes=1))
    assert r.items == ()  # $10 for a minute: 0.0002
    assert {u.name for u in r.usage} == {"Requests", "Storage"}


async def test_the_legacy_plan_is_still_billed() -> None:
    assert totals(await report(resource(plan="legacy"))) == {"res_1": "5.00"}


# ---------------------------------------------------------------- plans that owe nothing


@pytest.mark.parametrize("plan_id", ["free", "queue-free", "credits", "unknown-plan"])
async def test_free_prepayment_and_unknown_plans_give_no_items_but_usage(plan_id: str) -> None:
    r = await report(resource(plan=plan_id))
    assert r.items == ()
    assert [(u.name, u.resource_id) for u in r.usage] == [("Requests", "res_1"), ("Storage", "res_1")]


async def test_a_paid_subscription_without_a_price_gives_no_item() -> None:
    r = await report(resource(plan="vague"), catalog=catalog_of(plan("vague", "Contact sales")))
    assert r.items == ()


async def test_a_free_plan_with_a_cost_text_is_still_free() -> None:
    free = plan("gift", "$20.00/month", payment_method_required=False)
    assert (await report(resource(plan="gift"), catalog=catalog_of(free))).items == ()


async def test_each_resource_gets_its_own_item() -> None:
    r = await report(resource("res_a", "pro"), resource("res_b", "free"), resource("res_c", "queue-pro"))
    assert totals(r) == {"res_a": "20.00", "res_c": "10.00"}
    assert {u.resource_id for u in r.usage} == {"res_a", "res_b", "res_c"}


# ---------------------------------------------------------------- installation-level plan


async def test_a_paid_installation_plan_gives_one_installation_wide_item() -> None:
    r = await report(resource(plan="free"), inst=installation("team-pro"))
    (item,) = r.items
    assert (item.resource_id, item.billing_plan_id, item.name) == (None, "team-pro", "Team Pro")
    assert (item.price, item.total, item.units, item.quantity) == (usd("50.00"), usd("50.00"), "month", 1)


async def test_the_installation_plan_is_prorated_too() -> None:
    assert totals(await report(inst=installation("team-pro"), until=day(7))) == {None: "10.00"}
    assert totals(await report(inst=installation("team-pro", created=day(16)))) == {None: "25.00"}
    assert totals(await report(inst=installation("team-pro", deleted=day(4)))) == {None: "5.00"}


@pytest.mark.parametrize("plan_id", ["team-free", None])
async def test_a_free_or_missing_installation_plan_gives_no_item(plan_id: str | None) -> None:
    assert (await report(inst=installation(plan_id))).items == ()


# ---------------------------------------------------------------- usage


async def test_running_totals_never_shrink_as_until_moves_on() -> None:
    resources = (resource("res_a"), resource("res_b", created=day(3, 5.5)), resource("res_c", uninstalled=day(20)))
    seen: dict[tuple[str | None, str], int | Decimal] = {}
    moment = START
    while moment <= END + timedelta(hours=6):
        for u in (await report(*resources, until=moment)).usage:
            key = (u.resource_id, u.name)
            assert u.period_value >= seen.get(key, 0), (key, moment)
            seen[key] = u.period_value
        moment += timedelta(minutes=97)  # crosses hours and days at odd offsets
    assert all(seen[(rid, "Requests")] > 0 for rid in ("res_a", "res_b", "res_c"))


async def test_requests_grow_with_the_hours_and_stop_when_the_resource_goes() -> None:
    live, gone = resource("res_a"), resource("res_b", uninstalled=day(10))
    early = await report(live, gone, until=day(5))
    late = await report(live, gone, until=day(25))
    assert requests(late, "res_a").period_value > requests(early, "res_a").period_value
    assert requests(late, "res_b").period_value == requests(await report(gone, until=day(10)), "res_b").period_value
    assert requests(late, "res_b").day_value == 0


async def test_day_value_is_what_came_since_the_utc_day_began() -> None:
    at_midnight = requests(await report(resource(), until=day(10)))
    later = requests(await report(resource(), until=day(10, hours=13.25)))
    assert at_midnight.day_value == 0
    assert 0 < later.day_value <= later.period_value
    assert later.day_value == later.period_value - at_midnight.period_value


async def test_the_day_is_a_utc_day_whatever_the_zone_of_until() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = requests(await report(resource(), until=datetime(2026, 11, 10, 1, 0, tzinfo=plus_two)))
    utc = requests(await report(resource(), until=day(9, hours=23)))
    assert local == utc


async def test_on_the_first_day_the_day_value_is_the_period_value() -> None:
    u = requests(await report(resource(), until=day(1, hours=9)))
    assert u.day_value == u.period_value > 0


async def test_storage_is_a_stable_total_per_resource() -> None:
    def storage(r: UsageReport, resource_id: str) -> Usage:
        return next(u for u in r.usage if u.resource_id == resource_id and u.name == "Storage")

    first = await report(resource("res_a"), resource("res_b"), until=day(3))
    second = await report(resource("res_a"), resource("res_b"), until=day(28))
    for rid in ("res_a", "res_b"):
        a, b = storage(first, rid), storage(second, rid)
        assert a == b
        assert (a.type, a.units) == (UsageType.TOTAL, "MB")
        assert a.day_value == a.period_value > 0


async def test_the_same_question_gets_the_same_answer() -> None:
    resources = (resource("res_a"), resource("res_b", plan="queue-pro", created=day(4)))
    assert await report(*resources, until=day(12, 3)) == await report(*resources, until=day(12, 3))


async def test_requests_metric_shape() -> None:
    u = requests(await report(resource(), until=day(2)))
    assert (u.type, u.units, u.resource_id) == (UsageType.INTERVAL, "requests", "res_1")
    assert isinstance(u.period_value, int) and isinstance(u.day_value, int)


# ---------------------------------------------------------------- everything is a valid domain value


@pytest.mark.parametrize("until", [START, day(1, 0.5), day(9, 13.7), day(16), END, END + timedelta(days=2)])
async def test_every_result_builds_valid_domain_values(until: datetime) -> None:
    resources = (
        resource("res_a", "pro"),
        resource("res_b", "queue-pro", created=day(2, 7)),
        resource("res_c", "credits"),
        resource("res_d", "free", uninstalled=day(12)),
        resource("res_e", "legacy", created=day(5), uninstalled=day(20, 3)),
    )
    r = await report(*resources, inst=installation("team-pro"), until=until)
    for value in (*r.items, *r.usage):
        assert type(value)(**asdict(value)) == value  # __post_init__ runs again on the same fields
    for u in r.usage:
        assert u.day_value <= u.period_value
    eod = min(datetime.combine(min(until, END).date(), datetime.min.time(), UTC) + timedelta(days=1), END)
    BillingData(timestamp=until, eod=eod, period=PERIOD, items=r.items, usage=r.usage)
    if r.items:
        InvoiceRequest(invoice_date=max(START, min(until, END)), period=PERIOD, items=r.items)
