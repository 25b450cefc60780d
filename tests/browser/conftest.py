"""A real server (SQLite) with Vercel's keys and API faked on 127.0.0.1, and Debian's Chromium driven by
Playwright (`executable_path`, headless; never Playwright's own browser download). Screenshots of every page
go to test-artifacts/screenshots/ (or SCREENSHOT_DIR)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, USER_ID, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.entrypoints.containers import container_for, resolved
from marketplace_provider.entrypoints.http import create_app
from tests.http.conftest import Installation
from tests.support.server import serving

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).parents[2] / "test-artifacts" / "screenshots"))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, token_kit: TokenKit, fake_vercel: FakeVercel) -> Settings:
    return load_settings(
        {
            "STORAGE_BACKEND": "sqlite",
            "DATABASE_URL": str(tmp_path_factory.mktemp("browser") / "marketplace.db"),
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": "browser-client-secret",
            "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
            "VERCEL_API_URL": fake_vercel.url,
            "INTEGRATION_SLUG": "acme-kv",
            "SERVE_WORKER": "false",  # the tests deliver the outbox themselves, when they mean to
        }
    )


@pytest.fixture(scope="session")
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
async def api(base_url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(base_url, session)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        await browser.close()


# Runs in every page before its own content; Playwright's bindings and init scripts are not subject to the page's CSP.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} on ${document.location.pathname}`));
"""


@pytest.fixture
def csp_violations() -> list[str]:
    """What the pages' Content-Security-Policy blocked during a test (events and Chromium's console errors)."""
    return []


@pytest.fixture
async def browser(chromium: Browser, base_url: str, csp_violations: list[str]) -> AsyncIterator[BrowserContext]:
    """A fresh context; at the end, no page may have had anything blocked by the CSP (a test that provokes a
    violation on purpose empties `csp_violations` itself)."""
    context = await chromium.new_context(base_url=base_url, viewport={"width": 1200, "height": 900})
    await context.expose_binding("reportCspViolation", lambda _source, text: csp_violations.append(text))
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    context.on(
        "console",
        lambda message: csp_violations.append(message.text)
        if message.type == "error" and "Content Security Policy" in message.text else None,
    )
    yield context
    await context.close()
    assert csp_violations == [], csp_violations


@pytest.fixture
async def installed(api: Api, token_kit: TokenKit) -> Installation:
    installation = Installation("icfg_" + secrets.token_hex(12), api, token_kit)
    assert (await installation.upsert()).status == 204
    return installation


@dataclass
class Sso:
    fake: FakeVercel
    kit: TokenKit

    def code_for(self, installation_id: str, role: str) -> str:
        """A code the FakeVercel exchanges for an id token of that role (and reports that role as current)."""
        code = "code_" + secrets.token_hex(8)
        self.fake.sso_tokens[code] = {
            "id_token": self.kit.user_token(installation_id, role=role), "access_token": None, "token_type": None
        }
        self.fake.members[USER_ID] = {"id": USER_ID, "role": role}
        return code


@pytest.fixture
def sso(fake_vercel: FakeVercel, token_kit: TokenKit) -> Sso:
    return Sso(fake_vercel, token_kit)


async def deliver_outbox(settings: Settings) -> int:
    """What a `worker` process would do (the server's own is off here): deliver what the pages recorded."""
    container = container_for(settings)
    try:
        delivery = await resolved(container.delivery())
        total = 0
        while delivered := await delivery.deliver_due():
            total += delivered
        return total
    finally:
        await resolved(container.shutdown_resources())


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
