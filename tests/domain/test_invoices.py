"""domain.invoices: every step of the state machine, every pair that is not a step, and stale events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from marketplace_provider.domain.invoices import TRANSITIONS, Invoice, InvoiceEvent, InvoiceState, apply, unpaid

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
EARLIER = T0 - timedelta(seconds=1)

S, E = InvoiceState, InvoiceEvent

# The order of the lifecycle (billing.md 3.3): a step never goes to an earlier state.
RANK = {
    S.DRAFT: 0,
    S.PENDING: 1,
    S.SCHEDULED: 2,
    S.INVOICED: 3,
    S.NOTPAID: 4,
    S.OVERDUE: 5,
    S.PAID: 6,
    S.REFUND_REQUESTED: 7,
    S.REFUNDED: 8,
}
NOT_STEPS = [pair for pair in product(InvoiceState, InvoiceEvent) if pair not in TRANSITIONS]


def invoice(state: InvoiceState, failed_attempts: int = 0) -> Invoice:
    return Invoice(id="inv_1", installation_id="icfg_1", state=state, updated_at=T0, failed_attempts=failed_attempts)


def name(pair: tuple[InvoiceState, InvoiceEvent]) -> str:
    return f"{pair[0].value}+{pair[1].value}"


def test_rank_covers_every_state() -> None:
    assert set(RANK) == set(InvoiceState)


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=name)
def test_every_step(pair: tuple[InvoiceState, InvoiceEvent]) -> None:
    state, event = pair
    before = invoice(state, failed_attempts=2)
    after = apply(before, event, LATER)
    assert after.state is TRANSITIONS[pair]
    assert after.updated_at == LATER
    assert after.failed_attempts == (3 if event is E.NOT_PAID else 2)
    assert (after.id, after.installation_id) == (before.id, before.installation_id)


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=name)
def test_steps_never_go_backwards(pair: tuple[InvoiceState, InvoiceEvent]) -> None:
    assert RANK[TRANSITIONS[pair]] >= RANK[pair[0]]


@pytest.mark.parametrize("pair", NOT_STEPS, ids=name)
def test_every_pair_that_is_not_a_step_changes_nothing(pair: tuple[InvoiceState, InvoiceEvent]) -> None:
    state, event = pair
    before = invoice(state, failed_attempts=1)
    assert apply(before, event, LATER) == before


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=name)
def test_stale_events_are_ignored(pair: tuple[InvoiceState, InvoiceEvent]) -> None:
    before = invoice(pair[0])
    assert apply(before, pair[1], EARLIER) == before


def test_an_event_at_the_same_instant_still_applies() -> None:
    assert apply(invoice(S.INVOICED), E.PAID, T0).state is S.PAID


def test_refunded_is_final_and_paid_is_never_unpaid_again() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] is S.REFUNDED]
    for event in (E.NOT_PAID, E.OVERDUE, E.INVOICED, E.SCHEDULED):
        assert apply(invoice(S.PAID), event, LATER).state is S.PAID


def test_failed_attempts_are_counted_on_each_notpaid() -> None:
    current = invoice(S.INVOICED)
    for attempt in range(1, 10):  # Vercel retries up to 9 times
        current = apply(current, E.NOT_PAID, T0 + timedelta(days=attempt))
        assert current.state is S.NOTPAID
        assert current.failed_attempts == attempt
    current = apply(current, E.OVERDUE, T0 + timedelta(days=15))
    assert (current.state, current.failed_attempts) == (S.OVERDUE, 9)
    current = apply(current, E.PAID, T0 + timedelta(days=16))
    assert (current.state, current.failed_attempts) == (S.PAID, 9)


def test_notpaid_after_paid_is_not_counted() -> None:
    paid = apply(invoice(S.INVOICED), E.PAID, LATER)
    assert apply(paid, E.NOT_PAID, LATER + timedelta(seconds=1)).failed_attempts == 0


def test_stale_notpaid_is_not_counted() -> None:
    assert apply(invoice(S.NOTPAID, failed_attempts=4), E.NOT_PAID, EARLIER).failed_attempts == 4


def test_the_documented_paths() -> None:
    def run(*events: InvoiceEvent, start: InvoiceState = S.PENDING) -> InvoiceState:
        current = invoice(start)
        for i, event in enumerate(events, 1):
            current = apply(current, event, T0 + timedelta(hours=i))
        return current.state

    assert run(E.INVOICED, E.PAID, E.REFUND_REQUESTED, E.REFUNDED) is S.REFUNDED
    assert run(E.SCHEDULED, E.INVOICED, E.PAID) is S.PAID
    assert run(E.INVOICED, E.NOT_PAID, E.PAID) is S.PAID
    assert run(E.INVOICED, E.NOT_PAID, E.OVERDUE, E.PAID) is S.PAID
    assert run(E.INVOICED, E.NOT_PAID, E.OVERDUE, E.REFUND_REQUESTED, E.REFUNDED) is S.REFUNDED
    assert run(E.PAID, E.INVOICED) is S.PAID  # "paid" overtook "created"


def test_unpaid_states() -> None:
    assert {s for s in InvoiceState if unpaid(s)} == {S.NOTPAID, S.OVERDUE}
