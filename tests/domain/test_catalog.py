"""domain.plans: the catalog rules (each names the bad entry), metadata resolution and plan choice."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from marketplace_provider.domain.errors import FieldError, Invalid
from marketplace_provider.domain.plans import (
    BillingPlan,
    Catalog,
    FieldType,
    MetadataField,
    PlanScope,
    PlanType,
    Product,
    check_catalog,
    choose_installation_plan,
    choose_resource_plan,
    resolve_metadata,
)

FREE = BillingPlan(
    id="free", type=PlanType.SUBSCRIPTION, name="Hobby", description="Free", payment_method_required=False
)
PRO = BillingPlan(id="pro", type=PlanType.SUBSCRIPTION, name="Pro", description="Paid", cost="$20.00/month")
CREDITS = BillingPlan(
    id="credits",
    type=PlanType.PREPAYMENT,
    name="Credits",
    description="Prepaid",
    minimum_amount="5.00",
    maximum_amount="500.00",
)
LEGACY = BillingPlan(id="legacy", type=PlanType.SUBSCRIPTION, name="Old", description="Gone", disabled=True)
TEAM_FREE = BillingPlan(
    id="team-free",
    type=PlanType.SUBSCRIPTION,
    name="Team",
    description="Free team",
    scope=PlanScope.INSTALLATION,
    payment_method_required=False,
)
TEAM_OLD = replace(TEAM_FREE, id="team-old", disabled=True)

REGION = MetadataField(key="region", options=("iad1", "fra1"), default="iad1")
MEMORY = MetadataField(key="memory", type=FieldType.NUMBER, minimum=25, maximum=1024, default=256)
EVICTION = MetadataField(key="eviction", type=FieldType.BOOLEAN, default=False)
NAME = MetadataField(key="queue_name", required=True, max_length=8, pattern="[a-z]+")
NOTE = MetadataField(key="note")  # optional, no default

KV = Product(id="kv", name="KV", plan_ids=("free", "pro", "credits", "legacy"), metadata=(REGION, MEMORY, EVICTION))
QUEUE = Product(id="queue", name="Queue", plan_ids=("free",), metadata=(NAME, NOTE))

CATALOG = Catalog(products=(KV, QUEUE), plans=(FREE, PRO, CREDITS, LEGACY, TEAM_FREE, TEAM_OLD))


def first_problem(catalog: Catalog) -> FieldError:
    with pytest.raises(Invalid) as caught:
        check_catalog(catalog)
    assert caught.value.fields
    assert caught.value.message.startswith("invalid catalog: ")
    return caught.value.fields[0]


def with_plan(plan: BillingPlan) -> Catalog:
    """CATALOG with `plan` as plans[1] (sold by product kv)."""
    return Catalog(products=(replace(KV, plan_ids=("free", plan.id)),), plans=(FREE, plan))


# check_catalog ------------------------------------------------------------------------------------------------


def test_a_good_catalog_passes() -> None:
    check_catalog(CATALOG)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (replace(PRO, id="bad id"), "id must be"),
        (replace(PRO, id=""), "id must be"),
        (replace(PRO, id="pro\n"), "id must be"),
        (replace(PRO, id="x" * 65), "id must be"),
        (replace(PRO, name=" "), "name and description are required"),
        (replace(PRO, description=""), "name and description are required"),
        (replace(PRO, initial_charge="20"), None),  # whole dollars are fine
        (replace(PRO, initial_charge="20.001"), "initial_charge must be a USD amount"),
        (replace(PRO, initial_charge="-1.00"), "initial_charge must be a USD amount"),
        (replace(PRO, initial_charge="1e2"), "initial_charge must be a USD amount"),
        (replace(PRO, initial_charge="twenty"), "initial_charge must be a USD amount"),
        (replace(CREDITS, minimum_amount="NaN"), "minimum_amount must be a USD amount"),
        (replace(CREDITS, maximum_amount="Infinity"), "maximum_amount must be a USD amount"),
        (
            replace(CREDITS, maximum_amount_auto_purchase_per_period="1,000"),
            "maximum_amount_auto_purchase_per_period must",
        ),
        (replace(PRO, minimum_amount="5.00"), "minimum_amount and maximum_amount are for prepayment plans"),
        (replace(PRO, maximum_amount="5.00"), "minimum_amount and maximum_amount are for prepayment plans"),
        (replace(CREDITS, minimum_amount="600.00"), "minimum_amount exceeds maximum_amount"),
    ],
)
def test_plan_rules_name_the_plan(plan: BillingPlan, message: str | None) -> None:
    catalog = with_plan(plan)
    if message is None:
        check_catalog(catalog)
        return
    problem = first_problem(catalog)
    assert problem.key == f"plans[1] ({plan.id!r})"
    assert problem.message.startswith(message), problem


def test_a_malformed_amount_next_to_a_good_one_is_reported_not_raised() -> None:
    """Regression: Decimal("abc") used to escape check_catalog as decimal.InvalidOperation."""
    problem = first_problem(with_plan(replace(CREDITS, minimum_amount="abc")))
    message = "minimum_amount must be a USD amount with two decimals, like '10.00'"
    assert problem == FieldError("plans[1] ('credits')", message)


def test_duplicate_plan_id() -> None:
    catalog = Catalog(products=(KV,), plans=(FREE, PRO, CREDITS, LEGACY, replace(PRO, name="Pro again")))
    assert first_problem(catalog) == FieldError("plans[4] ('pro')", "duplicate plan id")


def test_a_catalog_without_products() -> None:
    assert first_problem(Catalog(products=(), plans=(FREE,))).key == "products"


@pytest.mark.parametrize(
    ("product", "message"),
    [
        (replace(QUEUE, id="bad/id"), "id must be"),
        (replace(QUEUE, id="kv"), "duplicate product id"),
        (replace(QUEUE, plan_ids=()), "a product needs at least one plan"),
        (replace(QUEUE, plan_ids=("free", "nope")), "unknown plan 'nope'"),
    ],
)
def test_product_rules_name_the_product(product: Product, message: str) -> None:
    problem = first_problem(replace(CATALOG, products=(KV, product)))
    assert problem.key == f"products[1] ({product.id!r})"
    assert problem.message.startswith(message)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((REGION, replace(MEMORY, key="region")), "duplicate metadata key"),
        ((replace(REGION, default="mars"),), "default: must be one of iad1, fra1"),
        ((replace(MEMORY, default=2048),), "default: must be at most 1024"),
        ((replace(MEMORY, default="256"),), "default: must be a number"),
        ((replace(EVICTION, default="no"),), "default: must be true or false"),
        ((replace(NAME, default="Upper"),), "default: has the wrong format"),
        ((replace(NAME, pattern="["),), "pattern is not a valid regular expression"),
        # regression: the default used to be matched against the broken pattern and raise re.error
        ((replace(NAME, pattern="[", default="abc"),), "pattern is not a valid regular expression"),
    ],
)
def test_metadata_rules_name_the_field(fields: tuple[MetadataField, ...], message: str) -> None:
    catalog = replace(CATALOG, products=(replace(KV, metadata=fields), QUEUE))
    problem = first_problem(catalog)
    assert problem.key == f"products[0] ('kv').metadata.{fields[-1].key}"
    assert problem.message == message


def test_every_problem_is_listed_and_the_message_names_the_first() -> None:
    catalog = Catalog(products=(replace(KV, plan_ids=("nope",)),), plans=(replace(PRO, name=""),))
    with pytest.raises(Invalid) as caught:
        check_catalog(catalog)
    assert [f.key for f in caught.value.fields] == ["plans[0] ('pro')", "products[0] ('kv')"]
    assert caught.value.message == "invalid catalog: plans[0] ('pro'): name and description are required"


# resolve_metadata ---------------------------------------------------------------------------------------------


def problems(product: Product, given: dict[str, object]) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        resolve_metadata(product, given)
    return {f.key: f.message for f in caught.value.fields}


def test_defaults_fill_what_was_not_given() -> None:
    assert resolve_metadata(KV, {}) == {"region": "iad1", "memory": 256, "eviction": False}
    given = {"region": "fra1", "eviction": True}
    assert resolve_metadata(KV, given) == {"region": "fra1", "memory": 256, "eviction": True}


def test_null_means_use_the_default() -> None:
    assert resolve_metadata(KV, {"region": None})["region"] == "iad1"


def test_optional_field_without_default_is_left_out() -> None:
    assert resolve_metadata(QUEUE, {"queue_name": "jobs"}) == {"queue_name": "jobs"}


def test_required_field() -> None:
    assert problems(QUEUE, {}) == {"metadata.queue_name": "is required"}
    assert problems(QUEUE, {"queue_name": None}) == {"metadata.queue_name": "is required"}


def test_unknown_key_is_refused() -> None:
    assert problems(KV, {"colour": "red"}) == {"metadata.colour": "is not a field of this product"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"region": 1}, "must be a string"),
        ({"region": "mars"}, "must be one of iad1, fra1"),
        ({"memory": "256"}, "must be a number"),
        ({"memory": True}, "must be a number"),  # bool is an int in Python, never a number here
        ({"memory": float("nan")}, "must be a number"),
        ({"memory": 10}, "must be at least 25"),
        ({"memory": 4096}, "must be at most 1024"),
        ({"eviction": "true"}, "must be true or false"),
        ({"eviction": 1}, "must be true or false"),
    ],
)
def test_wrong_values_name_the_field(given: dict[str, object], message: str) -> None:
    key = next(iter(given))
    assert problems(KV, given) == {f"metadata.{key}": message}


def test_number_bounds_are_inclusive() -> None:
    assert resolve_metadata(KV, {"memory": 25})["memory"] == 25
    assert resolve_metadata(KV, {"memory": 1024.0})["memory"] == 1024.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abcdefghi", "must be at most 8 characters"),
        ("ab\x00c", "must not contain NUL characters"),
        ("ABC", "has the wrong format"),
        ("abc1", "has the wrong format"),  # the pattern must match the whole value
    ],
)
def test_string_limits(value: str, message: str) -> None:
    assert problems(QUEUE, {"queue_name": value}) == {"metadata.queue_name": message}


def test_nul_is_refused_without_a_pattern() -> None:
    found = problems(QUEUE, {"queue_name": "ok", "note": "a\x00b"})
    assert found == {"metadata.note": "must not contain NUL characters"}


def test_all_problems_are_reported_together() -> None:
    found = problems(QUEUE, {"extra": 1, "note": 5})
    assert found == {
        "metadata.extra": "is not a field of this product",
        "metadata.note": "must be a string",
        "metadata.queue_name": "is required",
    }


# choosing plans -----------------------------------------------------------------------------------------------


def test_choose_resource_plan() -> None:
    assert choose_resource_plan(CATALOG, KV, "pro") is PRO


@pytest.mark.parametrize(
    ("plan_id", "message"),
    [
        ("nope", "'nope' is not a plan of product 'kv'"),
        ("team-free", "'team-free' is not a plan of product 'kv'"),  # exists, but kv does not sell it
        ("legacy", "plan 'legacy' is not available"),
    ],
)
def test_choose_resource_plan_refuses(plan_id: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        choose_resource_plan(CATALOG, KV, plan_id)
    assert caught.value.fields == [FieldError("billingPlanId", message)]


def test_choose_resource_plan_refuses_an_installation_plan_a_product_lists() -> None:
    product = replace(KV, plan_ids=("free", "team-free"))
    with pytest.raises(Invalid) as caught:
        choose_resource_plan(CATALOG, product, "team-free")
    assert caught.value.fields == [FieldError("billingPlanId", "plan 'team-free' is an installation-level plan")]


def test_choose_installation_plan() -> None:
    assert choose_installation_plan(CATALOG, "team-free") is TEAM_FREE


@pytest.mark.parametrize(
    ("plan_id", "message"),
    [
        ("nope", "'nope' is not an installation-level plan"),
        ("pro", "'pro' is not an installation-level plan"),
        ("team-old", "plan 'team-old' is not available"),
    ],
)
def test_choose_installation_plan_refuses(plan_id: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        choose_installation_plan(CATALOG, plan_id)
    assert caught.value.fields == [FieldError("billingPlanId", message)]


def test_catalog_lookups() -> None:
    assert CATALOG.product("kv") is KV and CATALOG.product("nope") is None
    assert CATALOG.product_plans(KV) == [FREE, PRO, CREDITS, LEGACY]
    assert CATALOG.installation_plans() == [TEAM_FREE, TEAM_OLD]
    assert CATALOG.default_installation_plan() is TEAM_FREE
    assert FREE.is_free and not PRO.is_free and not CREDITS.is_free
