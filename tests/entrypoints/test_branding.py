"""BRAND_NAME, SUPPORT_URL and LOGO_URL on the pages a Vercel user sees; neutral when unset (the catalog's
product name, no made-up support address)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp

import marketplace_provider
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import load_settings
from tests.http.conftest import Installation, new_installation_id
from tests.http.test_sso import cookies, session_of, sso
from tests.support.server import serving


async def serve(token_kit: TokenKit, fake_vercel: FakeVercel, **branding: str) -> AsyncIterator[Api]:
    settings = load_settings({
        "STORAGE_BACKEND": "memory", "INTEGRATION_CLIENT_ID": AUDIENCE, "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
        "VERCEL_API_URL": fake_vercel.url, "SERVE_WORKER": "false", **branding,
    })
    async with serving(marketplace_provider.create_app(settings)) as url, aiohttp.ClientSession() as session:
        yield Api(url, session)


def title(body: bytes) -> str:
    found = re.search(rb"<title>(.*?)</title>", body, re.S)
    assert found is not None
    return found.group(1).decode()


async def signed_in_support(api: Api, token_kit: TokenKit, fake_vercel: FakeVercel) -> bytes:
    installed = Installation(new_installation_id(), api, token_kit)
    assert (await installed.upsert()).status == 204
    session = session_of(await sso(installed, fake_vercel, token_kit, "ADMIN"))
    page = await api.get("/dashboard/support", headers=cookies(mp_session=session))
    assert page.status == 200, page.body[:300]
    return page.body


async def test_the_pages_carry_the_configured_brand(token_kit: TokenKit, fake_vercel: FakeVercel) -> None:
    branding = {"BRAND_NAME": "Acme <Databases>", "SUPPORT_URL": "help@acme.example",
                "LOGO_URL": "https://cdn.acme.example/logo.svg"}
    async for api in serve(token_kit, fake_vercel, **branding):
        refused = await api.get("/dashboard")  # no session: the sign-in page, in our colours
        assert title(refused.body).endswith("· Acme &lt;Databases&gt;")  # escaped like every value
        assert b'<img class="logo" src="https://cdn.acme.example/logo.svg" alt="" height="28">' in refused.body
        assert b'<a href="mailto:help@acme.example">help@acme.example</a>' in refused.body

        support = await signed_in_support(api, token_kit, fake_vercel)
        assert b'href="mailto:help@acme.example?subject=Support%20request%20%28installation%20icfg_' in support
        assert b"Acme &lt;Databases&gt;</a>" in support  # the header links home


async def test_a_support_site_is_linked_as_it_is(token_kit: TokenKit, fake_vercel: FakeVercel) -> None:
    async for api in serve(token_kit, fake_vercel, SUPPORT_URL="https://acme.example/help"):
        support = await signed_in_support(api, token_kit, fake_vercel)
        assert b'Open a request at <a href="https://acme.example/help">https://acme.example/help</a>' in support


async def test_unbranded_pages_are_neutral(token_kit: TokenKit, fake_vercel: FakeVercel) -> None:
    async for api in serve(token_kit, fake_vercel):
        refused = await api.get("/dashboard")
        support = await signed_in_support(api, token_kit, fake_vercel)
    for body in (refused.body, support):
        assert b"example.com" not in body and b"Marketplace provider" not in body and b"<img" not in body
    assert title(refused.body).endswith("· ACME KV")  # the catalog's first product
    assert b"support link on this integration's page in your Vercel dashboard" in support
    assert b"Need help?" not in refused.body  # nowhere to send a signed-out visitor
