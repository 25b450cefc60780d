"""The dashboard in headless Chromium: SSO from /callback to the landing page, an ADMIN's notification reaching
Vercel, a USER without change controls, and a screenshot of every page."""

from __future__ import annotations

import json
import secrets
import time

from playwright.async_api import BrowserContext, Page

from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.adapters.simulator.webhooks import signed_headers
from marketplace_provider.config.settings import Settings
from tests.browser.conftest import Sso, deliver_outbox, screenshot_path
from tests.http.conftest import Installation


async def signed_in(browser: BrowserContext, sso: Sso, installation: Installation, role: str, query: str = "") -> Page:
    page = await browser.new_page()
    code = sso.code_for(installation.id, role)
    await page.goto(f"/callback?mode=sso&code={code}&state=s1{query}")
    return page


async def post_webhook(installation: Installation, kind: str, invoice_id: str, secret: bytes, offset_ms: int) -> None:
    body = json.dumps({
        "id": f"evt_{secrets.token_hex(6)}", "type": f"marketplace.invoice.{kind}",
        "createdAt": int(time.time() * 1000) + offset_ms,
        "payload": {"configuration": {"id": installation.id}, "invoiceId": invoice_id, "externalInvoiceId": "INV-2026-10",
                    "invoiceDate": "2026-11-01T00:00:00Z", "invoiceTotal": "20.00",
                    "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}},
    }).encode()
    reply = await installation.api.post("/webhook", raw=body, headers=signed_headers(body, secret))
    assert reply.status == 200, reply.body


async def test_sso_lands_on_the_resource_page_signed_in(
    browser: BrowserContext, sso: Sso, installed: Installation
) -> None:
    resource = (await installed.provision(name="orders-cache")).json
    page = await signed_in(browser, sso, installed, "ADMIN", f"&resource_id={resource['id']}&project_id=prj_1")
    assert page.url.endswith(f"/dashboard/resources/{resource['id']}?project=prj_1")
    assert "orders-cache" in await page.locator("h1, h2").first.inner_text()
    assert await page.get_by_text("Ada Lovelace").count() >= 1
    cookies = {c["name"]: c for c in await browser.cookies()}
    assert cookies["mp_session"]["httpOnly"] and cookies["mp_session"]["sameSite"] == "Lax"
    await page.screenshot(path=screenshot_path("resource-admin"), full_page=True)


async def test_an_admin_sets_the_notification_and_vercel_receives_it(
    browser: BrowserContext, sso: Sso, installed: Installation, fake_vercel: FakeVercel, settings: Settings
) -> None:
    page = await signed_in(browser, sso, installed, "ADMIN")
    assert page.url.endswith("/dashboard")
    await page.get_by_label("Level").select_option("warn")
    await page.get_by_label("Title").fill("Maintenance on Sunday")
    await page.get_by_label("Message").fill("Expect 5 minutes of read-only mode.")
    await page.get_by_role("button", name="Set notification").click()
    await page.wait_for_url("**/dashboard?done=notification-set")
    assert await page.get_by_role("status").count() >= 1
    assert await page.get_by_text("Maintenance on Sunday").count() >= 1
    await page.screenshot(path=screenshot_path("overview-admin"), full_page=True)

    fake_vercel.accepted.clear()
    assert await deliver_outbox(settings) >= 1
    sent = [c for c in fake_vercel.accepted if (c.method, c.path) == ("PATCH", f"/v1/installations/{installed.id}")]
    assert sent and sent[-1].json == {"notification": {"level": "warn", "title": "Maintenance on Sunday",
                                                       "message": "Expect 5 minutes of read-only mode."}}
    assert sent[-1].authorization == "Bearer vercel-access-token"

    await page.get_by_role("button", name="Clear notification").click()
    await page.wait_for_url("**/dashboard?done=notification-cleared")
    await deliver_outbox(settings)
    assert fake_vercel.accepted[-1].json == {"notification": None}


async def test_a_user_sees_everything_but_no_change_controls(
    browser: BrowserContext, sso: Sso, installed: Installation
) -> None:
    resource = (await installed.provision(name="read-only-kv")).json
    page = await signed_in(browser, sso, installed, "USER")
    for path, name in (("/dashboard", "overview-user"), (f"/dashboard/resources/{resource['id']}", "resource-user")):
        await page.goto(path)
        forms = await page.locator("form").evaluate_all("fs => fs.map(f => f.getAttribute('action'))")
        assert forms == ["/dashboard/signout"], (path, forms)
        buttons = await page.get_by_role("button").all_inner_texts()
        assert [b.strip() for b in buttons] == ["Sign out"], (path, buttons)
        await page.screenshot(path=screenshot_path(name), full_page=True)
    html = await page.content()
    assert resource["secrets"][0]["value"] not in html  # a USER never receives secret values


async def test_every_page_renders_and_is_captured(
    browser: BrowserContext, sso: Sso, installed: Installation, settings: Settings
) -> None:
    resource = (await installed.provision(name="events-kv", billingPlanId="pro")).json
    invoice_id = "inv_" + secrets.token_hex(6)
    secret = settings.integration_client_secret.encode()
    await post_webhook(installed, "created", invoice_id, secret, 0)
    await post_webhook(installed, "notpaid", invoice_id, secret, 1000)
    page = await signed_in(browser, sso, installed, "ADMIN", f"&invoice_id={invoice_id}")
    assert page.url.endswith(f"/dashboard/invoices/{invoice_id}")
    pages = {
        "invoice": f"/dashboard/invoices/{invoice_id}",
        "overview": "/dashboard",
        "resource": f"/dashboard/resources/{resource['id']}",
        "billing": "/dashboard/billing",
        "usage": "/dashboard/usage",
        "events": "/dashboard/events",
        "support": f"/dashboard/support?resource={resource['id']}&project=prj_1",
        "onboarding": "/dashboard/onboarding",
        "secrets": "/dashboard/secrets",
        "check": "/dashboard/checks/chk_123",
    }
    for name, path in pages.items():
        reply = await page.goto(path)
        assert reply is not None and reply.status == 200, (name, reply.status if reply else None)
        assert await page.locator("main").count() == 1, name
        await page.screenshot(path=screenshot_path(name), full_page=True)
    await page.goto("/dashboard/billing")
    assert await page.get_by_text("INV-2026-10").count() >= 1
    await page.goto("/dashboard/events")
    assert await page.get_by_text("marketplace.invoice.notpaid").count() >= 1

    await page.goto(f"/dashboard/resources/{resource['id']}")
    await page.get_by_role("button", name="Rotate secrets").click()
    await page.wait_for_url("**done=secrets-rotated**")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/dashboard/signed-out")
    await page.screenshot(path=screenshot_path("signed-out"), full_page=True)
    reply = await page.goto("/dashboard")
    assert reply is not None and reply.status == 401
    await page.screenshot(path=screenshot_path("error-signed-out"), full_page=True)


async def test_the_pages_work_under_their_content_security_policy(
    browser: BrowserContext, sso: Sso, installed: Installation, csp_violations: list[str]
) -> None:
    resource = (await installed.provision(name="csp-kv")).json
    page = await signed_in(browser, sso, installed, "ADMIN")
    reply = await page.goto(f"/dashboard/resources/{resource['id']}")
    assert reply is not None and "default-src 'none'" in (await reply.all_headers())["content-security-policy"]
    # the stylesheet applied (a blocked one would leave the browser's default serif font and colours)
    font = await page.evaluate("getComputedStyle(document.body).fontFamily")
    assert font.startswith("system-ui"), font
    # reveal a secret, rotate: what the page does without any script
    await page.locator("details.reveal summary").first.click()
    assert await page.get_by_text(resource["secrets"][0]["value"]).count() >= 1
    await page.get_by_role("button", name="Rotate secrets").click()
    await page.wait_for_url("**done=secrets-rotated**")
    assert csp_violations == []

    # and the browser does enforce it here: an inline script and a foreign image are refused and reported
    await page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.append(script);
        const image = document.createElement("img");
        image.src = "https://images.example.invalid/x.png";
        document.body.append(image);
    }""")
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.injected === undefined")
    assert any(v.startswith("script-src-elem blocked inline") for v in csp_violations), csp_violations
    assert any(v.startswith("img-src blocked https://images.example.invalid") for v in csp_violations), csp_violations
    csp_violations.clear()  # provoked on purpose: the fixture's check is for the pages' own content
