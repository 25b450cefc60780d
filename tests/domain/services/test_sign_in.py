"""Vercel-initiated SSO, in-process: the code exchanged at the fake gateway, the id token verified by the fake
verifier, the member's role as Vercel has it now, the session kept by its hash, and the page landed on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Forbidden, Unauthenticated, Unavailable
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceState
from marketplace_provider.domain.members import MemberInfo
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.sign_in import SignedIn, SignIn
from marketplace_provider.domain.sso import Area, SsoIntent, SsoTokens, session_hash
from marketplace_provider.ports.storage import Storage
from marketplace_provider.ports.vercel import VercelApiError
from tests.domain.services.conftest import INSTALLATION, NOW, RESOURCE, a_resource, admin, an_installation, system
from tests.domain.services.fakes import FakeGateway, FakeVerifier
from tests.support.clock import ManualClock

NOWHERE = SsoIntent()


@pytest.fixture
def sign_in(ports: Ports, gateway: FakeGateway, verifier: FakeVerifier) -> SignIn:
    verifier.tokens["id-admin"] = admin()
    gateway.sso_codes["code-1"] = SsoTokens(id_token="id-admin")
    gateway.members["usr_admin"] = MemberInfo(id="usr_admin", role=Role.ADMIN)
    return SignIn(ports, gateway, verifier, session_hours=8)  # type: ignore[arg-type]


async def landed(sign_in: SignIn, gateway: FakeGateway, intent: SsoIntent, own_url_path: str | None = None) -> str:
    gateway.sso_codes["code-x"] = SsoTokens(id_token="id-admin")
    return (await sign_in.callback("code-x", "state", intent, own_url_path, None)).landing


async def test_a_member_signs_in_and_the_session_is_kept_by_its_hash(
    sign_in: SignIn, storage: Storage, clock: ManualClock
) -> None:
    signed = await sign_in.callback("code-1", "state", NOWHERE, None, None)
    assert signed == SignedIn(session_id="token_t_1", expires_at=NOW + timedelta(hours=8), landing="/dashboard")
    async with storage.unit_of_work() as uow:
        kept = await uow.sessions.get(session_hash(signed.session_id))
    assert kept is not None and (kept.installation_id, kept.user_id, kept.role) == (INSTALLATION, "usr_admin", Role.ADMIN)
    assert await sign_in.current(signed.session_id) == kept
    clock.advance(hours=8)
    with pytest.raises(Unauthenticated, match="session ended"):
        await sign_in.current(signed.session_id)


async def test_signing_out_ends_the_session(sign_in: SignIn) -> None:
    signed = await sign_in.callback("code-1", None, NOWHERE, None, None)
    await sign_in.sign_out(signed.session_id)
    with pytest.raises(Unauthenticated):
        await sign_in.current(signed.session_id)
    for cookie in (None, "", "x" * 257, "never-issued"):
        with pytest.raises(Unauthenticated):
            await sign_in.current(cookie)


async def test_the_role_is_the_one_vercel_has_now(sign_in: SignIn, storage: Storage, gateway: FakeGateway) -> None:
    gateway.members["usr_admin"] = MemberInfo(id="usr_admin", role=Role.USER)  # demoted since the token was issued
    signed = await sign_in.callback("code-1", None, NOWHERE, None, None)
    assert (await sign_in.current(signed.session_id)).role is Role.USER
    gateway.sso_codes["code-2"] = SsoTokens(id_token="id-admin")
    gateway.failing["get_member"] = Unavailable("Vercel did not answer")
    again = await sign_in.callback("code-2", None, NOWHERE, None, None)
    assert (await sign_in.current(again.session_id)).role is Role.ADMIN  # Vercel cannot say: the token's


async def test_refusals(sign_in: SignIn, storage: Storage, gateway: FakeGateway, verifier: FakeVerifier) -> None:
    with pytest.raises(Unauthenticated, match="did not accept the sign-in code"):
        await sign_in.callback("code-unknown", None, NOWHERE, None, None)
    gateway.failing["exchange_sso_token"] = VercelApiError(503, "unavailable", "down")
    with pytest.raises(VercelApiError):  # Vercel down: try again later, not "you are not signed in"
        await sign_in.callback("code-1", None, NOWHERE, None, None)
    del gateway.failing["exchange_sso_token"]
    for token, caller in (("id-system", system()), ("id-unverified", None)):
        gateway.sso_codes[token] = SsoTokens(id_token=token)
        if caller is not None:
            verifier.tokens[token] = caller
        with pytest.raises(Unauthenticated):
            await sign_in.callback(token, None, NOWHERE, None, None)
    gateway.members.clear()  # no longer a member of the team
    with pytest.raises(Forbidden, match="not a member"):
        await sign_in.callback("code-1", None, NOWHERE, None, None)
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(lifecycle=Lifecycle.FINALIZED))
        await uow.commit()
    gateway.sso_codes["code-3"] = SsoTokens(id_token="id-admin")
    with pytest.raises(Forbidden, match="no longer"):
        await sign_in.callback("code-3", None, NOWHERE, None, None)
    assert sign_in.ports.ids.count == 0  # type: ignore[attr-defined]  # no session id was ever made


async def test_where_each_context_lands(sign_in: SignIn, storage: Storage, gateway: FakeGateway) -> None:
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("res_gone", status=ResourceStatus.UNINSTALLED))
        await uow.invoices.save(Invoice(id="inv_1", installation_id=INSTALLATION, state=InvoiceState.PAID, updated_at=NOW))
        await uow.invoices.save(Invoice(id="inv_theirs", installation_id="icfg_other", state=InvoiceState.PAID, updated_at=NOW))
        await uow.commit()
    cases = [
        (SsoIntent(resource_id=RESOURCE), None, f"/dashboard/resources/{RESOURCE}"),
        (SsoIntent(resource_id=RESOURCE, area=Area.SECRETS), None, f"/dashboard/resources/{RESOURCE}#secrets"),
        (SsoIntent(resource_id=RESOURCE, project_id="prj_1"), None, f"/dashboard/resources/{RESOURCE}?project=prj_1"),
        (SsoIntent(resource_id="res_gone"), None, "/dashboard"),
        (SsoIntent(check_id="chk_1"), None, "/dashboard/checks/chk_1"),
        (SsoIntent(check_id="bad id/"), None, "/dashboard"),
        (SsoIntent(invoice_id="inv_1"), None, "/dashboard/invoices/inv_1"),
        (SsoIntent(invoice_id="inv_theirs"), None, "/dashboard/billing"),
        (SsoIntent(area=Area.USAGE), None, "/dashboard/usage"),
        (SsoIntent(area=Area.SUPPORT, resource_id=RESOURCE, product_id="acme-kv"), None,
         f"/dashboard/support?product=acme-kv&resource={RESOURCE}"),
        (SsoIntent(resource_id=RESOURCE, url="https://p.test/dashboard/usage"), "/dashboard/usage", "/dashboard/usage"),
    ]
    for intent, own_path, page in cases:
        assert await landed(sign_in, gateway, intent, own_path) == page, intent
