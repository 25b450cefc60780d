"""domain.sso: where a sign-in lands, and the links that send a user through Vercel's SSO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace_provider.domain.roles import Action, Role, may
from marketplace_provider.domain.sso import (
    Area,
    Landing,
    Session,
    SsoIntent,
    landing,
    provider_sso_url,
    session_hash,
    sso_link,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("intent", "own", "expected"),
    [
        (SsoIntent(), None, Landing.OVERVIEW),
        (SsoIntent(url="https://evil.example"), None, Landing.OVERVIEW),  # the adapter found it foreign
        (SsoIntent(url="/x", resource_id="res_1"), "/x", Landing.URL),
        (SsoIntent(resource_id="res_1", invoice_id="inv_1"), None, Landing.RESOURCE),
        (SsoIntent(check_id="chk_1", invoice_id="inv_1"), None, Landing.CHECK),
        (SsoIntent(invoice_id="inv_1", area=Area.BILLING), None, Landing.INVOICE),
        (SsoIntent(area=Area.USAGE), None, Landing.AREA),
        (SsoIntent(area=Area.SUPPORT, resource_id="res_1"), None, Landing.AREA),  # support about that resource
    ],
)
def test_landing_precedence(intent: SsoIntent, own: str | None, expected: Landing) -> None:
    assert landing(intent, own) is expected


def test_provider_initiated_sso_url() -> None:
    assert provider_sso_url("https://vercel.com/", "acme-kv", "icfg_1") == "https://vercel.com/sso/integrations/acme-kv/icfg_1"
    assert (
        provider_sso_url("https://vercel.com", "acme-kv", "icfg_1", resource_id="res 1", path="", invoice_id="inv_2")
        == "https://vercel.com/sso/integrations/acme-kv/icfg_1?resource_id=res+1&invoice_id=inv_2"
    )


def test_sso_links_wrap_absolute_urls_only() -> None:
    assert sso_link("https://provider.test/dashboard/billing") == "sso:https://provider.test/dashboard/billing"
    for bad in ("/dashboard", "javascript:alert(1)", "sso:https://x"):
        with pytest.raises(ValueError):
            sso_link(bad)


def test_a_session_is_valid_until_it_expires_or_is_revoked_and_acts_with_its_role() -> None:
    session = Session(id_hash=session_hash("abc"), installation_id="icfg_1", user_id="u1", role=Role.USER,
                      created_at=NOW, expires_at=NOW + timedelta(hours=8))
    assert session.valid_at(NOW + timedelta(hours=7)) and not session.valid_at(NOW + timedelta(hours=8))
    revoked = Session(**{**{f: getattr(session, f) for f in session.__struct_fields__}, "revoked_at": NOW})
    assert not revoked.valid_at(NOW)
    assert may(session.caller, Action.READ_RESOURCE) and not may(session.caller, Action.SET_NOTIFICATION)
    assert session_hash("abc") != session_hash("abd") and len(session_hash("abc")) == 32
