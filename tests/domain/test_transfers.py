"""Transfer claims: opened on the source's resources, verified by a target, accepted once by that target; nothing
after completion or expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace_provider.domain.errors import Conflict, Invalid, NotFound
from marketplace_provider.domain.transfers import (
    MAX_RESOURCES_PER_CLAIM,
    ClaimState,
    TransferClaim,
    existing,
    new_claim,
)

NOW = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)
EXPIRES = NOW + timedelta(hours=1)


def a_claim(**changes: object) -> TransferClaim:
    fields: dict[str, object] = {"claim_id": "claim_1", "source_installation_id": "icfg_source",
                                 "resource_ids": ["res_1", "res_2"], "expires_at": EXPIRES, "now": NOW, **changes}
    return new_claim(**fields)  # type: ignore[arg-type]


def test_a_new_claim_is_open_on_the_resources_given() -> None:
    claim = a_claim()
    assert (claim.state, claim.resource_ids, claim.created_at, claim.verified_by) == (ClaimState.OPEN, ("res_1", "res_2"), NOW, ())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"resource_ids": []}, "resourceIds"),
        ({"resource_ids": [f"res_{n}" for n in range(MAX_RESOURCES_PER_CLAIM + 1)]}, "resourceIds"),
        ({"resource_ids": ["res_1", "res_1"]}, "resourceIds"),
        ({"expires_at": NOW}, "expiresAt"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "expiresAt"),
    ],
)
def test_a_claim_that_cannot_be_is_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        a_claim(**changes)
    assert [f.key for f in caught.value.fields] == [field]


def test_verify_then_accept() -> None:
    verified = a_claim().verify_for("icfg_target", NOW)
    assert verified.verified_by == ("icfg_target",)
    assert verified.verify_for("icfg_target", NOW) is verified  # verified again: no change
    done = verified.accept_by("icfg_target", NOW + timedelta(minutes=1))
    assert done is not None
    assert (done.state, done.target_installation_id, done.completed_at) == (ClaimState.COMPLETED, "icfg_target", NOW + timedelta(minutes=1))
    assert done.accept_by("icfg_target", NOW) is None  # the same target again: a retry
    with pytest.raises(Conflict, match="completed for another installation"):
        done.accept_by("icfg_third", NOW)
    with pytest.raises(Conflict, match="already completed"):
        done.verify_for("icfg_third", NOW)


def test_nothing_is_verified_or_accepted_from_the_expiry_on() -> None:
    claim = a_claim().verify_for("icfg_target", NOW)
    for moment in (EXPIRES, EXPIRES + timedelta(days=1)):
        with pytest.raises(Conflict, match="expired"):
            claim.verify_for("icfg_other", moment)
        with pytest.raises(Conflict, match="expired"):
            claim.accept_by("icfg_target", moment)
    assert claim.verify_for("icfg_other", EXPIRES - timedelta(microseconds=1)).verified_by == ("icfg_target", "icfg_other")


def test_a_claim_is_not_verified_by_its_source_nor_accepted_unverified() -> None:
    with pytest.raises(Conflict, match="already belong"):
        a_claim().verify_for("icfg_source", NOW)
    with pytest.raises(Conflict, match="not verified"):
        a_claim().accept_by("icfg_target", NOW)


def test_an_unknown_claim_is_not_found() -> None:
    with pytest.raises(NotFound):
        existing(None)
    claim = a_claim()
    assert existing(claim) is claim
