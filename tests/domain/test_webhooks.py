"""domain.webhooks: the envelope the HTTP adapter hands over as typed values, which installation an event
concerns, and what an invoice or member event says (malformed fields left out, never fatal)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.webhooks import ID_MAX, changed_member, installation_of, invoice_notice, new_event

RECEIVED = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)


def event(**changes: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {"event_id": "evt_1", "event_type": "marketplace.invoice.paid", "created_at_ms": 1764400000000,
                                 "payload": {"installationId": "icfg_1"}, "body": b"{raw}", "received_at": RECEIVED, **changes}
    return new_event(**fields)  # type: ignore[arg-type]


def test_a_new_event_keeps_the_raw_body_and_when_it_happened() -> None:
    stored = event()
    assert (stored.id, stored.type, stored.installation_id, stored.body) == ("evt_1", "marketplace.invoice.paid", "icfg_1", b"{raw}")
    assert stored.created_at == datetime(2025, 11, 29, 7, 6, 40, tzinfo=UTC)
    assert (stored.received_at, stored.delivery_count, stored.applied_at) == (RECEIVED, 1, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": " "}, "id"),
        ({"event_id": "e" * (ID_MAX + 1)}, "id"),
        ({"event_type": ""}, "type"),
        ({"created_at_ms": 1e300}, "createdAt"),
        ({"created_at_ms": float("nan")}, "createdAt"),
    ],
)
def test_an_envelope_that_is_not_vercels_is_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        event(**changes)
    assert [f.key for f in caught.value.fields] == [field]


@pytest.mark.parametrize(
    ("payload", "found"),
    [
        ({"configuration": {"id": "icfg_conf"}, "installationId": "oac_x"}, "icfg_conf"),
        ({"installationId": "icfg_direct"}, "icfg_direct"),
        ({"integrations": [{"installationId": "icfg_listed"}]}, "icfg_listed"),
        ({"installationIds": ["icfg_old"]}, "icfg_old"),
        ({"configuration": {"id": ""}, "installationId": "  "}, None),
        ({"installationIds": [42]}, None),
        ({}, None),
    ],
)
def test_which_installation_an_event_concerns(payload: dict, found: str | None) -> None:
    assert installation_of(payload) == found


def test_an_invoice_notice_keeps_what_is_well_formed() -> None:
    notice = invoice_notice({
        "invoiceId": "inv_1", "externalInvoiceId": "ext", "invoiceTotal": 20.5, "amount": "-1", "reason": "ok",
        "period": {"start": "2026-10-01T00:00:00Z", "end": "not a date"}, "invoiceDate": "2026-11-01T00:00:00", "test": True,
    })
    assert (notice.invoice_id, notice.external_id, notice.total, notice.refund_amount, notice.refund_reason) == ("inv_1", "ext", "20.5", None, "ok")
    assert notice.period_start == datetime(2026, 10, 1, tzinfo=UTC) and notice.period_end is None
    assert notice.invoice_date == datetime(2026, 11, 1, tzinfo=UTC) and notice.test is True
    with pytest.raises(Invalid, match="invoiceId"):
        invoice_notice({"invoiceTotal": "1.00"})


def test_the_member_a_member_event_names() -> None:
    assert changed_member({"memberId": "usr_1"}) == "usr_1"
    for payload in ({}, {"memberId": ""}, {"memberId": 7}):
        assert changed_member(payload) is None
