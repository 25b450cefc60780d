"""config.catalog: the shipped products.toml, and broken files whose messages name the file and the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import ConfigError, Settings
from marketplace_provider.domain.plans import FieldType, PlanScope, PlanType, resolve_metadata

SHIPPED = Settings().products_file

GOOD_PLANS = """
[[plans]]
id = "free"
type = "subscription"
name = "Hobby"
description = "Free"
payment_method_required = false

[[plans]]
id = "pro"
type = "subscription"
name = "Pro"
description = "Paid"
"""

GOOD_PRODUCT = """
[[products]]
id = "kv"
name = "KV"
plan_ids = ["free", "pro"]
"""


def broken(tmp_path: Path, text: str) -> str:
    path = tmp_path / "products.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message[len(f"{path}: ") :]


# the shipped catalog ------------------------------------------------------------------------------------------


def test_shipped_catalog_loads() -> None:
    catalog = load_catalog(SHIPPED)
    assert catalog.products and catalog.plans


def test_shipped_catalog_has_a_no_choice_first_provisioning() -> None:
    """interface.md: a product whose metadata fields all have defaults, with a free resource-scoped plan."""
    catalog = load_catalog(SHIPPED)
    ready = [
        product
        for product in catalog.products
        if all(field.default is not None for field in product.metadata)
        and any(
            plan.is_free and plan.scope is PlanScope.RESOURCE and not plan.disabled
            for plan in catalog.product_plans(product)
        )
    ]
    assert ready
    assert resolve_metadata(ready[0], {}) == {f.key: f.default for f in ready[0].metadata}


def test_shipped_catalog_example_line_up() -> None:
    catalog = load_catalog(SHIPPED)
    kv, queue = catalog.product("acme-kv"), catalog.product("acme-queue")
    assert kv is not None and queue is not None
    assert {f.key: f.type for f in kv.metadata} == {
        "region": FieldType.STRING,
        "max_memory_mb": FieldType.NUMBER,
        "eviction": FieldType.BOOLEAN,
    }
    region = next(f for f in kv.metadata if f.key == "region")
    assert (region.options, region.default) == (("iad1", "fra1", "sfo1"), "iad1")
    assert {p.id for p in catalog.product_plans(kv)} >= {"free", "pro", "credits", "legacy"}

    free, pro, credits, legacy = (catalog.plan(i) for i in ("free", "pro", "credits", "legacy"))
    assert free is not None and free.is_free and free.scope is PlanScope.RESOURCE and free.details and free.quote
    assert pro is not None and pro.type is PlanType.SUBSCRIPTION and pro.payment_method_required
    assert pro.cost == "$20.00/month" and pro.highlighted_details
    assert [p.id for p in pro.required_policies] == ["toc"] and pro.required_policies[0].url.startswith("https://")
    assert credits is not None and credits.type is PlanType.PREPAYMENT
    assert (credits.minimum_amount, credits.maximum_amount) == ("5.00", "500.00")
    assert legacy is not None and legacy.disabled

    # a required field without a default, so validation can be seen failing
    assert any(f.required and f.default is None for f in queue.metadata)

    team_free, team_pro = catalog.plan("team-free"), catalog.plan("team-pro")
    assert team_free is not None and team_free.scope is PlanScope.INSTALLATION and team_free.is_free
    assert team_pro is not None and team_pro.scope is PlanScope.INSTALLATION and not team_pro.is_free
    assert catalog.default_installation_plan() is team_free


def test_path_objects_and_strings_both_work() -> None:
    assert load_catalog(Path(SHIPPED)) == load_catalog(str(SHIPPED))


# broken files -------------------------------------------------------------------------------------------------


def test_a_good_minimal_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "products.toml"
    path.write_text(GOOD_PLANS + GOOD_PRODUCT)
    assert [p.id for p in load_catalog(path).plans] == ["free", "pro"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"{path}: cannot read the product catalog")


def test_not_toml(tmp_path: Path) -> None:
    assert broken(tmp_path, "[[plans]\nid = 1\n").startswith("not valid TOML")


def test_wrong_type_names_the_entry_and_the_path(tmp_path: Path) -> None:
    text = GOOD_PLANS.replace('type = "subscription"\nname = "Pro"', 'type = "monthly"\nname = "Pro"') + GOOD_PRODUCT
    message = broken(tmp_path, text)
    assert message.startswith("plans[1] ('pro'): ")
    assert "$.plans[1].type" in message


def test_missing_required_key(tmp_path: Path) -> None:
    text = GOOD_PLANS.replace('description = "Paid"\n', "") + GOOD_PRODUCT
    message = broken(tmp_path, text)
    assert message.startswith("plans[1] ('pro'): ") and "description" in message


def test_wrong_type_in_a_product_field(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "size"\ntype = "number"\nminimum = "small"\n'
    message = broken(tmp_path, text)
    assert message.startswith("products[0] ('kv'): ") and "$.products[0].metadata[0].minimum" in message


def test_entry_without_an_id_is_named_by_index(tmp_path: Path) -> None:
    text = GOOD_PLANS + '\n[[plans]]\ntype = "subscription"\nname = "X"\ndescription = "X"\n' + GOOD_PRODUCT
    message = broken(tmp_path, text)
    assert message.startswith("plans[2]: ") and "id" in message


def test_unknown_key_is_a_typo_not_a_silent_default(tmp_path: Path) -> None:
    text = GOOD_PLANS.replace("payment_method_required = false", "paymet_method_required = false") + GOOD_PRODUCT
    message = broken(tmp_path, text)
    assert message == "plans[0] ('free'): unknown key 'paymet_method_required' at `$.plans[0].paymet_method_required`"


def test_unknown_key_deep_inside(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "size"\ndefualt = "s"\n'
    assert broken(tmp_path, text) == "products[0] ('kv'): unknown key 'defualt' at `$.products[0].metadata[0].defualt`"


def test_unknown_top_level_table(tmp_path: Path) -> None:
    assert broken(tmp_path, GOOD_PLANS + GOOD_PRODUCT + "\n[[plan]]\nid = 'x'\n") == "unknown key 'plan' at `$.plan`"


def test_failed_domain_check_names_the_entry(tmp_path: Path) -> None:
    text = GOOD_PLANS.replace('description = "Paid"', 'description = "Paid"\nminimum_amount = "5.00"') + GOOD_PRODUCT
    assert broken(tmp_path, text) == "plans[1] ('pro'): minimum_amount and maximum_amount are for prepayment plans"


def test_several_problems_say_how_many_more(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT.replace('["free", "pro"]', '["free", "pro", "gold", "silver"]')
    assert broken(tmp_path, text) == "products[0] ('kv'): unknown plan 'gold' (and 1 more)"


def test_bad_metadata_default_names_the_field(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "region"\noptions = ["iad1"]\ndefault = "mars"\n'
    assert broken(tmp_path, text) == "products[0] ('kv').metadata.region: default: must be one of iad1"


def test_empty_file(tmp_path: Path) -> None:
    assert "products" in broken(tmp_path, "")


def test_an_unknown_field_type_names_the_valid_types(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "size"\ntype = "integer"\n'
    assert broken(tmp_path, text) == (
        "products[0] ('kv'): 'integer' at `$.products[0].metadata[0].type` is not one of: string, number, boolean"
    )


def test_an_unknown_plan_type_names_the_valid_types(tmp_path: Path) -> None:
    text = GOOD_PLANS.replace('type = "subscription"\nname = "Pro"', 'type = "monthly"\nname = "Pro"') + GOOD_PRODUCT
    message = broken(tmp_path, text)
    assert message == "plans[1] ('pro'): 'monthly' at `$.plans[1].type` is not one of: prepayment, subscription"


def test_a_minimum_above_the_maximum_is_refused(tmp_path: Path) -> None:
    """No value could ever satisfy the field: Vercel's form would be impossible to fill in (no default needed)."""
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "size"\ntype = "number"\nminimum = 10\nmaximum = 1\n'
    assert broken(tmp_path, text) == "products[0] ('kv').metadata.size: minimum 10 is greater than maximum 1"


def test_bounds_on_a_field_that_is_not_a_number_are_refused(tmp_path: Path) -> None:
    text = GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "name"\nminimum = 3\n'
    assert broken(tmp_path, text) == (
        "products[0] ('kv').metadata.name: minimum and maximum are for number fields, not string ones"
    )


def test_equal_bounds_are_a_fixed_value_and_load(tmp_path: Path) -> None:
    path = tmp_path / "products.toml"
    path.write_text(GOOD_PLANS + GOOD_PRODUCT + '\n[[products.metadata]]\nkey = "n"\ntype = "number"\nminimum = 2\nmaximum = 2\n')
    assert load_catalog(path).products[0].metadata[0].minimum == 2
