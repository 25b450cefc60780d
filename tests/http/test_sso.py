"""GET /callback (Vercel-initiated SSO) and the /dashboard session through a real server on every backend:
where each context lands, that no `url` leads off our origin, the session cookie, every refusal, sign-out, CSRF
and the member's role as Vercel has it."""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from marketplace_provider.adapters.http.dashboard import Browser, own_path
from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import ACCOUNT_ID, SigningKey, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.http.conftest import Installation, new_installation_id
from tests.http.test_webhooks import event, invoice_payload, post, until

OUR_ORIGIN = "http://127.0.0.1:8000"  # PUBLIC_URL of the test server (the settings' default)
COOKIE = "mp_session"
CSRF_COOKIE = "mp_csrf"
FORM = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def new_user_id() -> str:
    """A member of our own (user ids are hex in Vercel's subjects), so no test sees another's Get Member answer."""
    return secrets.token_hex(6)


def user_token(kit: TokenKit, installation_id: str, role: str = "ADMIN", user_id: str | None = None, **claims: object) -> str:
    user_id = user_id or new_user_id()
    return kit.user_token(installation_id, role=role, user_id=user_id, sub=f"account:{ACCOUNT_ID}:user:{user_id}", **claims)


def query(**params: str) -> str:
    """Our own encoding, every byte escaped, so the server receives exactly these values."""
    return urlencode(params, quote_via=quote, safe="")


async def callback(api: Api, fake_vercel: FakeVercel, id_token: str, **params: str) -> Reply:
    """Vercel hands the browser a fresh code for `id_token`; the browser brings it to /callback."""
    code = "code_" + secrets.token_hex(12)
    fake_vercel.sso_tokens[code] = {"id_token": id_token, "access_token": None, "token_type": None}
    return await api.get("/callback?" + query(mode="sso", code=code, state="xyz", **params))


async def sso(
    installed: Installation,
    fake_vercel: FakeVercel,
    token_kit: TokenKit,
    role: str = "ADMIN",
    *,
    member_role: str | None = None,
    **params: str,
) -> Reply:
    """A member signs in with `role` in the token; Vercel's Get Member says `member_role` (default: the same)."""
    user_id = new_user_id()
    token = user_token(token_kit, installed.id, role=role, user_id=user_id)
    assert token_kit.user_claims(installed.id, user_id=user_id)["user_id"] == user_id
    fake_vercel.members[user_id] = {"id": user_id, "role": member_role or role}
    return await callback(installed.api, fake_vercel, token, **params)


def cookie_attributes(header: str) -> tuple[str, str, dict[str, str]]:
    """("name", "value", {lower-case attribute: value}) of one Set-Cookie header."""
    first, *rest = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attributes = {}
    for part in rest:
        key, _, val = part.partition("=")
        attributes[key.strip().lower()] = val.strip()
    return name, value, attributes


def set_cookie(reply: Reply, name: str) -> tuple[str, dict[str, str]] | None:
    for header in reply.set_cookies:
        got, value, attributes = cookie_attributes(header)
        if got == name:
            return value, attributes
    return None


def session_of(reply: Reply) -> str:
    assert reply.status == 303, (reply.status, reply.body[:300])
    found = set_cookie(reply, COOKIE)
    assert found is not None and found[0], reply.set_cookies
    return found[0]


def cookies(**values: str) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in values.items())}


async def signed_in(installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, role: str = "ADMIN", **kw: str) -> str:
    return session_of(await sso(installed, fake_vercel, token_kit, role, **kw))


async def csrf_for(api: Api, session: str) -> tuple[str, str]:
    """(cookie, form token) as a browser gets them: from a dashboard page."""
    page = await api.get("/dashboard", headers=cookies(mp_session=session))
    assert page.status == 200, page.body[:300]
    found = set_cookie(page, CSRF_COOKIE)
    assert found is not None, page.set_cookies
    field = re.search(rb'name="_csrf_token"\s+value="([^"]+)"', page.body)
    assert field is not None, page.body[:500]  # every page's sign-out form carries it
    return found[0], field.group(1).decode()


async def post_form(api: Api, path: str, session: str, form: dict[str, str], csrf: tuple[str, str] | None) -> Reply:
    jar = {COOKIE: session}
    if csrf is not None:
        jar[CSRF_COOKIE] = csrf[0]
        form = {**form, "_csrf_token": csrf[1]}
    return await api.post(path, raw=urlencode(form).encode(), headers={"Content-Type": FORM, **cookies(**jar)})


def assert_html(reply: Reply) -> None:
    assert reply.headers.get("Content-Type", "").startswith("text/html"), reply.headers


def assert_no_session(reply: Reply) -> None:
    assert set_cookie(reply, COOKIE) is None, reply.set_cookies


def location(reply: Reply) -> str:
    assert reply.status == 303, (reply.status, reply.body[:300])
    return reply.headers["Location"]


# ---------------------------------------------------------------------------------------------------------------
# 1. where each context lands
# ---------------------------------------------------------------------------------------------------------------

PR = "https://github.com/acme/app/pull/7"

LANDINGS = [
    ("nothing", {}, "/dashboard"),
    ("url on our origin, with a query", {"url": OUR_ORIGIN + "/dashboard/usage?month=2026-10&x=1"}, "/dashboard/usage?month=2026-10&x=1"),
    ("url as a path of ours", {"url": "/dashboard/billing?tab=invoices"}, "/dashboard/billing?tab=invoices"),
    ("url on our origin wins over a resource", {"url": OUR_ORIGIN + "/dashboard/events", "resource_id": "{resource}"}, "/dashboard/events"),
    ("support", {"path": "support"}, "/dashboard/support"),
    (
        "support with context",
        {"path": "support", "product_id": "acme-kv", "project_id": "prj_1", "check_id": "chk_1",
         "experimentation_item_id": "item_1", "pr": PR, "resource_id": "{resource}"},
        "/dashboard/support?product=acme-kv&project=prj_1&check=chk_1&item=item_1&pr=" + quote(PR, safe="") + "&resource={resource}",
    ),
    ("support drops ids of a shape we don't show", {"path": "support", "project_id": "<script>", "pr": "javascript:x"}, "/dashboard/support"),
    ("resource", {"resource_id": "{resource}"}, "/dashboard/resources/{resource}"),
    ("resource and project", {"resource_id": "{resource}", "project_id": "prj_42"}, "/dashboard/resources/{resource}?project=prj_42"),
    ("resource and secrets", {"resource_id": "{resource}", "path": "secrets"}, "/dashboard/resources/{resource}#secrets"),
    ("resource of another installation", {"resource_id": "{foreign}"}, "/dashboard"),
    ("unknown resource", {"resource_id": "res_unknown"}, "/dashboard"),
    ("check", {"check_id": "chk_1"}, "/dashboard/checks/chk_1"),
    ("check id of a shape we don't accept", {"check_id": "../../evil"}, "/dashboard"),
    ("invoice of this installation", {"invoice_id": "{invoice}"}, "/dashboard/invoices/{invoice}"),
    ("unknown invoice", {"invoice_id": "inv_unknown"}, "/dashboard/billing"),
    ("invoice of another installation", {"invoice_id": "{foreign_invoice}"}, "/dashboard/billing"),
    ("billing", {"path": "billing"}, "/dashboard/billing"),
    ("usage", {"path": "usage"}, "/dashboard/usage"),
    ("onboarding", {"path": "onboarding"}, "/dashboard/onboarding"),
    ("secrets", {"path": "secrets"}, "/dashboard/secrets"),
    ("unknown area", {"path": "elsewhere"}, "/dashboard"),
]


async def an_invoice(installation: Installation, fake_vercel: FakeVercel, token_kit: TokenKit) -> str:
    """An invoice we know of (marketplace.invoice.created), once the event is applied."""
    invoice_id = "inv_" + secrets.token_hex(6)
    assert (await post(installation.api, event("marketplace.invoice.created", installation.id,
                                                **invoice_payload(invoice_id)))).status == 200
    session = await signed_in(installation, fake_vercel, token_kit)

    async def stored() -> bool:
        reply = await installation.api.get(f"/dashboard/invoices/{invoice_id}", headers=cookies(mp_session=session))
        return reply.status == 200

    assert await until(stored)
    return invoice_id


def same_landing(got: str, expected: str) -> bool:
    a, b = urlsplit(got), urlsplit(expected)
    return (a.scheme, a.netloc, a.path, a.fragment) == ("", "", b.path, b.fragment) and parse_qs(a.query) == parse_qs(b.query)


@pytest.mark.parametrize(("name", "params", "expected"), LANDINGS, ids=[case[0] for case in LANDINGS])
async def test_each_context_lands_on_its_page(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, name: str, params: dict[str, str], expected: str
) -> None:
    wanted = " ".join([*params.values(), expected])
    ids: dict[str, str] = {}
    if "{resource}" in wanted:
        ids["resource"] = (await installed.provision()).json["id"]
    if "{foreign" in wanted:
        other = Installation(new_installation_id(), installed.api, token_kit)
        assert (await other.upsert()).status == 204
        ids["foreign"] = (await other.provision()).json["id"]
        if "{foreign_invoice}" in wanted:
            ids["foreign_invoice"] = await an_invoice(other, fake_vercel, token_kit)
    if "{invoice}" in wanted:
        ids["invoice"] = await an_invoice(installed, fake_vercel, token_kit)
    sent = {k: v.format(**ids) for k, v in params.items()}
    reply = await sso(installed, fake_vercel, token_kit, **sent)
    landed = location(reply)
    assert same_landing(landed, expected.format(**ids)), (name, landed)
    page = await installed.api.get(landed.split("#")[0], headers=cookies(mp_session=session_of(reply)))
    assert page.status == 200, (name, landed, page.status, page.body[:300])
    assert_html(page)


# ---------------------------------------------------------------------------------------------------------------
# 2. no `url` leads off our origin
# ---------------------------------------------------------------------------------------------------------------

FOREIGN_URLS = [
    "https://evil.example/x",
    "//evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil.example",
    "%2F%2Fevil.example",
    "///evil.example",
    " //evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "http://127.0.0.1:8001/dashboard",
    "http://127.0.0.1/dashboard",
    "http://localhost:8000/dashboard",
    "HTTP://EVIL.example",
    "https://127.0.0.1:8000/x",
    "http://127.0.0.1:8000@evil.example/x",
    "http://127.0.0.1:8000//evil.example/x",
    "http://127.0.0.1:8000/%2F%2Fevil.example",
    "http://evil.example#@127.0.0.1:8000/",
    "/dashboard\r\nSet-Cookie: x=y",
    "/dashboard\nLocation: https://evil.example",
    "/dashboard/" + "a" * 3000,
    OUR_ORIGIN + "/dashboard/" + "a" * 3000,
    "https://evil.example/" + "a" * 3000,
]


@pytest.mark.parametrize("url", FOREIGN_URLS, ids=[repr(u[:40]) + (f"+{len(u)}" if len(u) > 40 else "") for u in FOREIGN_URLS])
async def test_a_url_off_our_origin_lands_on_the_overview(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, url: str
) -> None:
    reply = await sso(installed, fake_vercel, token_kit, url=url)
    assert location(reply) == "/dashboard"
    assert "evil" not in reply.headers["Location"].lower()
    assert [cookie_attributes(h)[0] for h in reply.set_cookies] == [COOKIE]  # no cookie smuggled in


async def test_a_foreign_url_also_loses_to_nothing_else(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    """A foreign url is ignored as if absent: the other context still decides."""
    resource = (await installed.provision()).json["id"]
    reply = await sso(installed, fake_vercel, token_kit, url="https://evil.example/x", resource_id=resource)
    assert location(reply) == f"/dashboard/resources/{resource}"


# ---------------------------------------------------------------------------------------------------------------
# 3. the session cookie
# ---------------------------------------------------------------------------------------------------------------


async def test_the_session_cookie_is_http_only_lax_and_opaque(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    user_id = new_user_id()
    token = user_token(token_kit, installed.id, role="ADMIN", user_id=user_id)
    fake_vercel.members[user_id] = {"id": user_id, "role": "ADMIN"}
    reply = await callback(installed.api, fake_vercel, token, path="billing")
    assert location(reply) == "/dashboard/billing"
    found = set_cookie(reply, COOKIE)
    assert found is not None, reply.set_cookies
    value, attributes = found
    assert "httponly" in attributes
    assert attributes.get("samesite", "").lower() == "lax"
    assert attributes.get("path") == "/"
    assert 0 < int(attributes["max-age"]) <= 24 * 3600
    assert "secure" not in attributes  # PUBLIC_URL is http: a Secure cookie would never come back
    assert "domain" not in attributes
    assert len(value) >= 32 and value != token and value not in token and token not in value
    assert value not in reply.headers["Location"] and "." not in value  # not a JWT, not in the URL
    page = await installed.api.get("/dashboard/billing", headers=cookies(mp_session=value))
    assert page.status == 200, page.body[:300]
    assert_html(page)
    assert token.encode() not in page.body and value.encode() not in page.body


async def test_every_sign_in_opens_a_session_of_its_own(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    first = await signed_in(installed, fake_vercel, token_kit)
    second = await signed_in(installed, fake_vercel, token_kit)
    assert first != second
    for session in (first, second):
        assert (await installed.api.get("/dashboard", headers=cookies(mp_session=session))).status == 200


async def test_a_code_is_exchanged_with_our_client_credentials(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    before = len(fake_vercel.calls)
    reply = await sso(installed, fake_vercel, token_kit)
    assert reply.status == 303
    exchange = [c for c in fake_vercel.calls[before:] if c.path == "/v1/integrations/sso/token"]
    assert len(exchange) == 1
    body = exchange[0].json
    assert body["client_id"] == token_kit.audience and body["client_secret"] == "test-client-secret"
    assert body["code"].startswith("code_") and body["state"] == "xyz"
    assert exchange[0].authorization is None


# ---------------------------------------------------------------------------------------------------------------
# 4. refusals: an HTML page with the status, never a session
# ---------------------------------------------------------------------------------------------------------------

FAILURES = [
    "missing code",
    "empty code",
    "mode missing",
    "mode=login",
    "unknown code",
    "wrong audience",
    "wrong issuer",
    "expired",
    "signed by an unknown key",
    "unsigned",
    "system token",
    "garbage",
    "installation never installed",
    "installation uninstalled",
    "member unknown to Vercel",
]
STATUSES = {"missing code": 400, "empty code": 400, "mode missing": 400, "mode=login": 400,
            "installation never installed": 403, "installation uninstalled": 403, "member unknown to Vercel": 403}


@pytest.mark.parametrize("name", FAILURES)
async def test_a_refused_sign_in_is_an_html_page_and_no_session(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, name: str
) -> None:
    api = installed.api
    user_id = new_user_id()
    fake_vercel.members[user_id] = {"id": user_id, "role": "ADMIN"}
    now = int(time.time())

    def token(installation_id: str = installed.id, **claims: object) -> str:
        return user_token(token_kit, installation_id, user_id=user_id, **claims)

    def with_code(id_token: str) -> str:
        code = "code_" + secrets.token_hex(12)
        fake_vercel.sso_tokens[code] = {"id_token": id_token, "access_token": None, "token_type": None}
        return code

    match name:
        case "missing code":
            reply = await api.get("/callback?" + query(mode="sso", state="xyz"))
        case "empty code":
            reply = await api.get("/callback?" + query(mode="sso", code="", state="xyz"))
        case "mode missing":
            reply = await api.get("/callback?" + query(code=with_code(token()), state="xyz"))
        case "mode=login":
            reply = await api.get("/callback?" + query(mode="login", code=with_code(token()), state="xyz"))
        case "unknown code":
            reply = await api.get("/callback?" + query(mode="sso", code="code_nobody_issued", state="xyz"))
        case "wrong audience":
            reply = await callback(api, fake_vercel, token(aud="oac_someone_else"))
        case "wrong issuer":
            reply = await callback(api, fake_vercel, token(iss="https://evil.example"))
        case "expired":
            reply = await callback(api, fake_vercel, token(iat=now - 7200, exp=now - 3600))
        case "signed by an unknown key":
            claims = token_kit.user_claims(installed.id, user_id=user_id, sub=f"account:{ACCOUNT_ID}:user:{user_id}")
            reply = await callback(api, fake_vercel, token_kit.mint(claims, key=SigningKey.generate()))
        case "unsigned":
            claims = token_kit.user_claims(installed.id, user_id=user_id, sub=f"account:{ACCOUNT_ID}:user:{user_id}")
            reply = await callback(api, fake_vercel, token_kit.mint(claims, alg="none"))
        case "system token":
            reply = await callback(api, fake_vercel, token_kit.system_token(installed.id))
        case "garbage":
            reply = await callback(api, fake_vercel, "a.b.c")
        case "installation never installed":
            reply = await callback(api, fake_vercel, token(new_installation_id()))
        case "installation uninstalled":
            assert (await api.delete(installed.path, token=installed.admin, style="user")).status in (200, 204)
            reply = await callback(api, fake_vercel, token())
        case "member unknown to Vercel":
            del fake_vercel.members[user_id]
            reply = await callback(api, fake_vercel, token())
        case _:
            raise AssertionError(name)
    assert reply.status == STATUSES.get(name, 401), (name, reply.status, reply.body[:300])
    assert_html(reply)
    assert_no_session(reply)
    assert "Location" not in reply.headers
    assert b"Traceback" not in reply.body


async def test_a_code_works_once_when_vercel_says_so(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    """Vercel refuses a used code: replaying the callback URL opens no second session."""
    user_id = new_user_id()
    fake_vercel.members[user_id] = {"id": user_id, "role": "ADMIN"}
    code = "code_" + secrets.token_hex(12)
    fake_vercel.sso_tokens[code] = {"id_token": user_token(token_kit, installed.id, user_id=user_id),
                                    "access_token": None, "token_type": None}
    first = await installed.api.get("/callback?" + query(mode="sso", code=code, state="xyz"))
    assert first.status == 303
    del fake_vercel.sso_tokens[code]  # what Vercel does with a used code
    again = await installed.api.get("/callback?" + query(mode="sso", code=code, state="xyz"))
    assert again.status == 401
    assert_no_session(again)


# ---------------------------------------------------------------------------------------------------------------
# 5. the session: required, revocable, CSRF on forms
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/dashboard", "/dashboard/billing", "/dashboard/usage", "/dashboard/events",
                                  "/dashboard/support", "/dashboard/checks/chk_1"])
async def test_dashboard_pages_need_a_session(api: Api, page: str) -> None:
    for headers in ({}, cookies(mp_session="made-up-" + secrets.token_hex(16)), cookies(mp_session="")):
        reply = await api.get(page, headers=headers)
        assert reply.status == 401, (page, headers, reply.status)
        assert_html(reply)


async def test_sign_out_ends_the_session(installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit) -> None:
    api = installed.api
    session = await signed_in(installed, fake_vercel, token_kit)
    kept = await signed_in(installed, fake_vercel, token_kit)  # another browser of the same member
    assert (await api.get("/dashboard", headers=cookies(mp_session=session))).status == 200
    csrf = await csrf_for(api, session)
    out = await post_form(api, "/dashboard/signout", session, {}, csrf)
    assert location(out) == "/dashboard/signed-out"
    cleared = set_cookie(out, COOKIE)
    assert cleared is not None and cleared[0] in ("", '""') and cleared[1].get("max-age") == "0", out.set_cookies
    gone = await api.get("/dashboard", headers=cookies(mp_session=session))
    assert gone.status == 401
    assert_html(gone)
    assert (await api.get("/dashboard/signed-out")).status == 200
    assert (await api.get("/dashboard", headers=cookies(mp_session=kept))).status == 200


async def test_the_csrf_header_is_accepted_too(installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit) -> None:
    api = installed.api
    session = await signed_in(installed, fake_vercel, token_kit)
    csrf_cookie, _ = await csrf_for(api, session)
    out = await api.post("/dashboard/signout", raw=b"", headers={
        "Content-Type": FORM, "x-csrftoken": csrf_cookie, **cookies(mp_session=session, mp_csrf=csrf_cookie)})
    assert out.status == 303
    assert (await api.get("/dashboard", headers=cookies(mp_session=session))).status == 401


@pytest.mark.parametrize("case", ["no token", "no cookie", "token of another browser", "forged token"])
async def test_a_form_without_a_good_csrf_token_is_403_and_changes_nothing(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, case: str
) -> None:
    api = installed.api
    session = await signed_in(installed, fake_vercel, token_kit)
    csrf = await csrf_for(api, session)
    form = {"level": "warn", "title": "Maintenance", "message": "tonight"}
    jar = {COOKIE: session}
    match case:
        case "no token":
            jar[CSRF_COOKIE] = csrf[0]
        case "no cookie":
            form["_csrf_token"] = csrf[1]
        case "token of another browser":
            other = await csrf_for(api, await signed_in(installed, fake_vercel, token_kit))
            jar[CSRF_COOKIE] = csrf[0]
            form["_csrf_token"] = other[1]
        case "forged token":
            jar[CSRF_COOKIE] = "0" * len(csrf[0])
            form["_csrf_token"] = "0" * len(csrf[0])
    for path in ("/dashboard/notification", "/dashboard/signout"):
        reply = await api.post(path, raw=urlencode(form).encode(), headers={"Content-Type": FORM, **cookies(**jar)})
        assert reply.status == 403, (case, path, reply.status)
    shown = (await api.get(installed.path, token=installed.system, style="system")).json
    assert shown.get("notification") is None
    assert (await api.get("/dashboard", headers=cookies(mp_session=session))).status == 200  # not signed out


# ---------------------------------------------------------------------------------------------------------------
# 6. the role: Vercel's word, and the Partner API's permission table
# ---------------------------------------------------------------------------------------------------------------

NOTICE = {"level": "warn", "title": "Maintenance tonight", "message": "Writes pause for a minute at 02:00 UTC."}


async def notification_of(installed: Installation) -> dict | None:
    reply = await installed.api.get(installed.path, token=installed.system, style="system")
    assert reply.status == 200, reply.body
    return reply.json.get("notification")


@pytest.mark.parametrize(
    ("token_role", "member_role", "allowed"),
    [("ADMIN", "ADMIN", True), ("USER", "USER", False), ("ADMIN", "USER", False), ("USER", "ADMIN", True)],
    ids=["admin", "user", "demoted by Vercel", "promoted by Vercel"],
)
async def test_only_an_admin_sets_the_notification(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit, token_role: str, member_role: str, allowed: bool
) -> None:
    api = installed.api
    session = session_of(await sso(installed, fake_vercel, token_kit, token_role, member_role=member_role))
    csrf = await csrf_for(api, session)
    reply = await post_form(api, "/dashboard/notification", session, NOTICE, csrf)
    if allowed:
        assert location(reply) == "/dashboard?done=notification-set"
        shown = await notification_of(installed)
        assert shown is not None and shown["title"] == NOTICE["title"] and shown["level"] == "warn"
    else:
        assert reply.status == 403, (reply.status, reply.body[:300])
        assert_html(reply)
        assert await notification_of(installed) is None
        clear = await post_form(api, "/dashboard/notification/clear", session, {}, csrf)
        assert clear.status == 403
    assert (await api.get("/dashboard", headers=cookies(mp_session=session))).status == 200  # reading is for all


async def test_the_token_role_stands_when_vercel_cannot_say(
    installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    """Get Member failing for a reason other than 404 falls back on the verified token's role."""
    user_id = new_user_id()  # no Get Member answer configured...
    token = user_token(token_kit, installed.id, role="USER", user_id=user_id)
    fake_vercel.broken[installed.id] = 400  # ...and Vercel refuses every call about this installation
    try:
        reply = await callback(installed.api, fake_vercel, token)
    finally:
        fake_vercel.broken.pop(installed.id, None)
    session = session_of(reply)
    csrf = await csrf_for(installed.api, session)
    assert (await post_form(installed.api, "/dashboard/notification", session, NOTICE, csrf)).status == 403


# ---------------------------------------------------------------------------------------------------------------
# 7. own_path and Browser, for an https origin
# ---------------------------------------------------------------------------------------------------------------

HTTPS = Browser(public_url="https://kv.acme.example", vercel_url="https://vercel.com", integration_slug="acme-kv")
HTTP = Browser(public_url=OUR_ORIGIN, vercel_url="https://vercel.com", integration_slug=None)


def test_browser_secure_follows_the_public_url() -> None:
    assert HTTPS.secure is True
    assert HTTP.secure is False
    assert HTTPS.origin == ("https", "kv.acme.example")
    assert HTTPS.sign_in_again("icfg_1") == "https://vercel.com/sso/integrations/acme-kv/icfg_1"
    assert HTTP.sign_in_again("icfg_1") is None and HTTPS.sign_in_again(None) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://kv.acme.example/dashboard/usage?month=2026-10", "/dashboard/usage?month=2026-10"),
        ("https://KV.Acme.Example/dashboard", "/dashboard"),
        ("HTTPS://kv.acme.example/x", "/x"),
        ("https://kv.acme.example", "/"),
        ("https://kv.acme.example/dashboard#secrets", "/dashboard"),
        ("/dashboard/billing?tab=1", "/dashboard/billing?tab=1"),
        ("http://kv.acme.example/dashboard", None),  # our host, but not our scheme
        ("https://kv.acme.example:8443/dashboard", None),
        ("https://kv.acme.example.evil.example/dashboard", None),
        ("https://evil.example/dashboard", None),
        ("//kv.acme.example/dashboard", None),  # scheme-relative: the origin is not quite ours
        ("//evil.example", None),
        ("///evil.example", None),  # urlsplit drops the empty authority; a browser reads host evil.example
        ("http:///evil.example", None),
        ("https://kv.acme.example//evil.example", None),
        ("/%2F%2Fevil.example", None),
        ("/%5Cevil.example", None),
        ("/\\evil.example", None),
        ("dashboard", None),
        ("javascript:alert(1)", None),
        ("/dashboard\r\nSet-Cookie: x=y", None),
        ("/" + "a" * 3000, None),
        ("", None),
        (None, None),
    ],
)
def test_own_path_keeps_only_paths_of_our_origin(url: str | None, expected: str | None) -> None:
    assert own_path(url, HTTPS) == expected
