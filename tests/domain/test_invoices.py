"""domain.invoices: every step of the state machine, every pair that is not a step, stale events, what a notice
adds to an invoice, and what the installation is shown about unpaid and refunded invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from marketplace_provider.domain.invoices import (
    NEVER,
    TRANSITIONS,
    Invoice,
    InvoiceEvent,
    InvoiceNotice,
    InvoiceState,
    apply,
    refund_notice,
    take_notice,
    unpaid,
    unpaid_notice,
)
from marketplace_provider.domain.notifications import Level

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


NOTICE = InvoiceNotice(invoice_id="inv_1", external_id="ext-1", total="20.00", period_start=T0, period_end=LATER)


def test_an_invoice_first_heard_of_moves_and_keeps_a_transition_from_nothing() -> None:
    invoice, transition = take_notice(None, "icfg_1", NOTICE, E.NOT_PAID, T0, "evt_1")
    assert (invoice.state, invoice.failed_attempts, invoice.notices, invoice.updated_at) == (S.NOTPAID, 1, 1, T0)
    assert (invoice.external_id, invoice.total, invoice.period_start) == ("ext-1", "20.00", T0)
    assert transition is not None
    assert (transition.from_state, transition.to_state, transition.happened_at, transition.webhook_event_id) == (None, S.NOTPAID, T0, "evt_1")


def test_a_stale_or_repeated_notice_keeps_no_transition_but_is_counted() -> None:
    paid = invoice(S.PAID)
    after, transition = take_notice(paid, "icfg_1", NOTICE, E.NOT_PAID, EARLIER)
    assert transition is None and after.state is S.PAID
    assert (after.notices, after.failed_attempts) == (1, 1)  # a late notpaid still counts the failed attempt
    _moved, step = take_notice(paid, "icfg_1", NOTICE, E.REFUNDED, LATER)
    assert step is not None and (step.from_state, step.to_state) == (S.PAID, S.REFUNDED)


def test_details_fill_in_what_was_unknown_and_keep_what_was_known() -> None:
    known = Invoice(id="inv_1", installation_id="icfg_1", state=S.INVOICED, updated_at=T0, total="15.00")
    filled = known.with_details(NOTICE, E.PAID)
    assert (filled.total, filled.external_id, filled.period_end) == ("15.00", "ext-1", LATER)
    refund = InvoiceNotice(invoice_id="inv_1", refund_amount="5.00", refund_reason="goodwill")
    refunded = filled.with_details(refund, E.REFUNDED)
    assert (refunded.refund_total, refunded.refund_reason) == ("5.00", "goodwill")
    assert filled.with_details(refund, E.PAID).refund_total is None  # only the refund event says it


def test_first_heard_of_is_pending_and_older_than_any_event() -> None:
    first = Invoice.first_heard("inv_9", "icfg_1")
    assert (first.state, first.updated_at) == (S.PENDING, NEVER)
    assert apply(first, E.INVOICED, datetime(1970, 1, 1, tzinfo=UTC)).state is S.INVOICED


def test_the_unpaid_notice_names_the_worst_invoice_and_links_to_billing() -> None:
    failing = Invoice(id="inv_a", installation_id="i", state=S.NOTPAID, updated_at=T0, failed_attempts=3, total="20.00")
    overdue = Invoice(id="inv_b", installation_id="i", state=S.OVERDUE, updated_at=T0, failed_attempts=1, external_id="B-1")
    one = unpaid_notice([failing], "sso:https://p.test/dashboard/billing")
    assert (one.level, one.href, one.title) == (Level.ERROR, "sso:https://p.test/dashboard/billing", "Payment failed: resources suspended")
    assert one.message == "Payment attempt 3 for invoice inv_a (20.00 USD) failed. Update the payment method to resume them."
    both = unpaid_notice([failing, overdue], "sso:x")
    assert both.title == "Invoice overdue: resources suspended"
    assert both.message is not None and both.message.startswith("Invoice B-1 is overdue after 1 failed payment attempt(s).")
    assert "1 other invoice(s) are unpaid too." in both.message


def test_the_refund_notice_says_how_much_and_why() -> None:
    refunded = Invoice(id="inv_1", installation_id="i", state=S.REFUNDED, updated_at=T0, refund_total="5.00", refund_reason="goodwill")
    assert refund_notice(refunded).message == "5.00 USD of invoice inv_1 was refunded: goodwill."
    bare = Invoice(id="inv_2", installation_id="i", state=S.REFUNDED, updated_at=T0, external_id="X-2")
    assert (refund_notice(bare).level, refund_notice(bare).message) == (Level.INFO, "A refund of invoice X-2 was refunded.")
