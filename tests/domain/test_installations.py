"""The installation entity's rules: first upsert, re-install, plan change, uninstall (finalized at once or pending
deletion, by the plans involved) and finalization."""

from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from marketplace_provider.domain.installations import (
    Account,
    Credentials,
    InstallationDetails,
    Lifecycle,
    new_installation,
)
from tests.domain.services.conftest import BEFORE, CATALOG, an_installation

LATER = BEFORE + timedelta(days=1)
DETAILS = InstallationDetails(
    scopes=("read:resource", "write:resource"),
    accepted_policies={"toc": "2026-01-01T00:00:00Z"},
    credentials=Credentials(access_token="new-token", token_type="Bearer"),
)


def test_a_first_upsert_is_active_on_the_plan_given() -> None:
    installation = new_installation("icfg_new", DETAILS, "team-free", BEFORE)
    assert installation.is_active and installation.billing_plan_id == "team-free"
    assert installation.created_at == installation.updated_at == BEFORE
    assert installation.credentials == DETAILS.credentials and installation.notification is None


def test_a_reinstall_takes_the_newest_token_and_scopes_and_is_active_again() -> None:
    account = Account(url="https://vercel.com/acme")
    gone = an_installation(lifecycle=Lifecycle.PENDING_DELETION, deleted_at=BEFORE, account=account, credentials=None)
    back = gone.reinstall(DETAILS, LATER)
    assert back.is_active and back.deleted_at is None and back.updated_at == LATER
    assert (back.credentials, back.scopes, back.account) == (DETAILS.credentials, DETAILS.scopes, account)
    other = Account(url="https://vercel.com/other")
    assert back.reinstall(replace(DETAILS, account=other), LATER).account == other


def test_change_plan() -> None:
    installation = an_installation(billing_plan_id="team-free")
    assert installation.change_plan("team-free", LATER) is installation
    changed = installation.change_plan("team-pro", LATER)
    assert (changed.billing_plan_id, changed.updated_at) == ("team-pro", LATER)


def test_uninstall_with_only_free_plans_is_final_and_forgets_the_token() -> None:
    gone = an_installation().uninstall(LATER, [CATALOG.plan("team-free"), CATALOG.plan("free")])
    assert (gone.lifecycle, gone.credentials, gone.deleted_at, gone.updated_at) == (Lifecycle.FINALIZED, None, LATER, LATER)
    assert gone.is_finalized and not gone.is_active
    assert an_installation().uninstall(LATER, []).is_finalized  # nothing at all to bill


def test_uninstall_with_anything_billable_waits_for_the_final_invoices() -> None:
    for plans in ([CATALOG.plan("free"), CATALOG.plan("pro")], [None]):  # None: a plan gone from the catalog
        pending = an_installation().uninstall(LATER, plans)
        assert pending.lifecycle is Lifecycle.PENDING_DELETION and pending.credentials is not None
        assert pending.deleted_at == LATER and not pending.is_finalized


def test_finalize_only_what_waits_for_it() -> None:
    pending = an_installation().uninstall(BEFORE, [CATALOG.plan("pro")])
    final = pending.finalize(LATER)
    assert (final.lifecycle, final.credentials, final.updated_at) == (Lifecycle.FINALIZED, None, LATER)
    assert final.finalize(LATER + timedelta(days=1)) is final
    active = an_installation()
    assert active.finalize(LATER) is active  # re-installed meanwhile: stays active
