"""Vercel-initiated SSO: exchange the code, verify the id token like any Vercel token, open a session of ours,
and choose the page to land on. Who the user is comes from the verified token, never from the query."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import msgspec

from marketplace_provider.domain.errors import Forbidden, NotFound, Unauthenticated, Unavailable
from marketplace_provider.domain.roles import AuthStyle
from marketplace_provider.domain.services.common import Ports, active_installation
from marketplace_provider.domain.sso import Area, Landing, Session, SsoIntent, landing, session_hash
from marketplace_provider.ports.storage import UnitOfWork
from marketplace_provider.ports.tokens import TokenVerifier
from marketplace_provider.ports.vercel import VercelApiError, VercelGateway

log = logging.getLogger("marketplace.sso")

# What a context id from the query may look like before it appears in one of our paths.
CONTEXT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
AREA_PAGES = {
    Area.BILLING: "/dashboard/billing",
    Area.USAGE: "/dashboard/usage",
    Area.ONBOARDING: "/dashboard/onboarding",
    Area.SECRETS: "/dashboard/secrets",
    Area.SUPPORT: "/dashboard/support",
}


class SignedIn(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str  # goes in the cookie only; storage keeps its hash
    expires_at: datetime
    landing: str  # a path on our own origin


class SignIn:
    def __init__(
        self, ports: Ports, vercel: VercelGateway, verifier: TokenVerifier, *, session_hours: float = 8.0
    ) -> None:
        self.ports = ports
        self.vercel = vercel
        self.verifier = verifier
        self.session_length = timedelta(hours=session_hours)

    async def callback(
        self, code: str, state: str | None, intent: SsoIntent, own_url_path: str | None, redirect_uri: str | None
    ) -> SignedIn:
        try:
            tokens = await self.vercel.exchange_sso_token(code, state, redirect_uri)
        except VercelApiError as exc:
            if exc.retryable:
                raise
            raise Unauthenticated("Vercel did not accept the sign-in code (used, expired or not ours)") from None
        caller = await self.verifier.verify(tokens.id_token)  # signature, iss, aud, expiry: Unauthenticated if not
        if caller.style is not AuthStyle.USER or not caller.installation_id or not caller.user_id or not caller.role:
            raise Unauthenticated("the id token does not name a user of an installation")
        async with self.ports.storage.unit_of_work() as uow:
            try:
                installation = await active_installation(uow, caller.installation_id)
            except NotFound:
                raise Forbidden("this installation is not (or no longer) installed here") from None
        role = caller.role
        try:  # the role as Vercel has it now; the token's if Vercel cannot say
            role = (await self.vercel.get_member(installation, caller.user_id)).role
        except VercelApiError as exc:
            if exc.status == 404:
                raise Forbidden("you are not a member of this installation's team") from None
            log.warning("SSO: could not read the member's role (%s); using the token's", exc.status)
        except Unavailable:
            log.warning("SSO: could not read the member's role; using the token's")
        now = self.ports.clock.now()
        session_id = self.ports.ids.secret_token()
        session = Session(
            id_hash=session_hash(session_id),
            installation_id=installation.id,
            user_id=caller.user_id,
            role=role,
            created_at=now,
            expires_at=now + self.session_length,
            user_name=caller.name or caller.email,
        )
        async with self.ports.storage.unit_of_work() as uow:
            await uow.sessions.add(session)
            page = await self._landing(uow, installation.id, intent, own_url_path)
            await uow.commit()
        log.info("SSO: %s signed in to %s as %s", caller.user_id, installation.id, role.value)
        return SignedIn(session_id=session_id, expires_at=session.expires_at, landing=page)

    async def current(self, session_id: str | None) -> Session:
        """The live session the cookie names; Unauthenticated when there is none (or it expired, or was revoked)."""
        if not session_id or len(session_id) > 256:
            raise Unauthenticated("sign in through Vercel first")
        async with self.ports.storage.unit_of_work() as uow:
            session = await uow.sessions.get(session_hash(session_id))
        if session is None or not session.valid_at(self.ports.clock.now()):
            raise Unauthenticated("your session ended: open the integration from Vercel again")
        return session

    async def sign_out(self, session_id: str) -> None:
        async with self.ports.storage.unit_of_work() as uow:
            await uow.sessions.revoke(session_hash(session_id), self.ports.clock.now())
            await uow.commit()

    async def _landing(self, uow: UnitOfWork, installation_id: str, intent: SsoIntent, own_url_path: str | None) -> str:
        """The page for the context, once the object it names is known to be this installation's."""
        match landing(intent, own_url_path):
            case Landing.URL:
                return own_url_path or "/dashboard"
            case Landing.RESOURCE:
                resource = await uow.resources.get(installation_id, intent.resource_id or "")
                if resource is None or not resource.is_live:
                    return "/dashboard"
                page = f"/dashboard/resources/{quote(resource.id, safe='')}"
                if intent.area is Area.SECRETS:
                    page += "#secrets"
                elif intent.project_id and CONTEXT_ID.match(intent.project_id):
                    page += "?" + urlencode({"project": intent.project_id})
                return page
            case Landing.CHECK:
                if not CONTEXT_ID.match(intent.check_id or ""):
                    return "/dashboard"
                return f"/dashboard/checks/{quote(intent.check_id or '', safe='')}"
            case Landing.INVOICE:
                invoice = await uow.invoices.get(intent.invoice_id or "")
                if invoice is None or invoice.installation_id != installation_id:
                    return "/dashboard/billing"
                return f"/dashboard/invoices/{quote(invoice.id, safe='')}"
            case Landing.AREA:
                page = AREA_PAGES[intent.area] if intent.area else "/dashboard"
                if intent.area is Area.SUPPORT:
                    context = _support_context(intent)
                    resource = await uow.resources.get(installation_id, intent.resource_id or "")
                    if resource is not None:
                        context["resource"] = resource.id
                    page += ("?" + urlencode(context)) if context else ""
                return page
            case _:
                return "/dashboard"


def _support_context(intent: SsoIntent) -> dict[str, str]:
    """What the support page shows about where the user came from (ids only in the shape we accept)."""
    fields = {
        "product": intent.product_id,
        "project": intent.project_id,
        "check": intent.check_id,
        "item": intent.experimentation_item_id,
    }
    shown = {k: v for k, v in fields.items() if v and CONTEXT_ID.match(v)}
    if intent.pull_request and intent.pull_request.startswith("https://") and len(intent.pull_request) <= 512:
        shown["pr"] = intent.pull_request
    return shown
