"""Prepayment balances: paid invoice items credited in whole cents, rounded down, and reported in a fixed order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace_provider.domain.balances import Balance, PrepaymentBalance, PurchaseResult, cents, credit
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.invoices import InvoiceItem

NOW = datetime(2026, 11, 14, tzinfo=UTC)


@pytest.mark.parametrize(("total", "expected"), [("10.00", 1000), ("10", 1000), ("0.019", 1), ("19.999", 1999), ("0", 0)])
def test_cents_round_down(total: str, expected: int) -> None:
    assert cents(total) == expected


def test_credit_adds_each_item_to_its_resource_or_the_installation() -> None:
    before = {None: 500, "res_1": 100}
    items = (InvoiceItem(total="10.00"), InvoiceItem(total="2.50", resource_id="res_1"), InvoiceItem(total="1", resource_id="res_2"))
    assert credit(before, items) == {None: 1500, "res_1": 350, "res_2": 100}
    assert before == {None: 500, "res_1": 100}  # the balances given are left alone


def test_a_purchase_answers_installation_credit_first_then_by_resource() -> None:
    result = PurchaseResult.of({"res_b": 2, None: 1, "res_a": 3}, NOW)
    assert result.timestamp == NOW
    assert result.balances == (
        Balance(currency_value_in_cents=1),
        Balance(currency_value_in_cents=3, resource_id="res_a"),
        Balance(currency_value_in_cents=2, resource_id="res_b"),
    )


@pytest.mark.parametrize("value", [-1, 1.5, True, "100"])
def test_a_reported_balance_is_whole_non_negative_cents(value: object) -> None:
    with pytest.raises(Invalid):
        PrepaymentBalance(currency_value_in_cents=value)  # type: ignore[arg-type]
