"""Through a real server on every backend: the browser-facing answers (/dashboard, /callback, /static) carry
no-store, a script-free Content-Security-Policy and the framing, referrer and sniffing headers, whatever their
status; and /static answers every path oddity with a 404 JSON error that names no folder of the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar import Litestar

from marketplace_provider.adapters.http.app import PAGES
from marketplace_provider.adapters.http.errors import EXCEPTION_HANDLERS
from marketplace_provider.adapters.http.page_headers import content_security_policy
from marketplace_provider.adapters.http.static_files import servable_files, static_files_router
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.http.conftest import Installation
from tests.http.test_sso import FORM, cookies, csrf_for, signed_in, sso
from tests.support.server import serving

# --------------------------------------------------------------------------------------------------- helpers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_get(base_url: str, target: bytes, method: bytes = b"GET") -> Answer:
    """One request with `target` exactly as given (no client normalises it), read until the server closes."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(method + b" " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read(-1)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines)
    return Answer(int(status_line.split(" ")[1]), {name.lower(): value for name, value in pairs}, body)


def directives(policy: str) -> dict[str, str]:
    return {part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2] for part in policy.split(";") if part.strip()}


def assert_browser_headers(received: dict[str, str], cache: str = "no-store") -> None:
    headers = {name.lower(): value for name, value in received.items()}
    assert headers["cache-control"] == cache
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    policy = directives(headers["content-security-policy"])
    assert policy["default-src"] == "'none'"  # hence no script of any kind: there is no script-src
    assert "script-src" not in policy and "'unsafe-inline'" not in headers["content-security-policy"]
    assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["base-uri"] == "'none'"


# --------------------------------------------------------------------------------------------------- headers


async def test_an_admins_resource_page_with_secret_values_is_never_cached(
    api: Api, installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    resource = (await installed.provision(name="cached-kv")).json
    secret = resource["secrets"][0]["value"]
    session = await signed_in(installed, fake_vercel, token_kit, "ADMIN")

    page = await api.get(f"/dashboard/resources/{resource['id']}", headers=cookies(mp_session=session))

    assert page.status == 200 and secret.encode() in page.body
    assert_browser_headers(page.headers)


async def test_every_kind_of_browser_answer_carries_the_headers(
    api: Api, installed: Installation, fake_vercel: FakeVercel, token_kit: TokenKit
) -> None:
    session = await signed_in(installed, fake_vercel, token_kit, "ADMIN")
    csrf_cookie, _ = await csrf_for(api, session)
    with_session = cookies(mp_session=session)
    answers = {
        "overview": await api.get("/dashboard", headers=with_session),
        "signed out (401 page)": await api.get("/dashboard"),
        "callback without a code (400 page)": await api.get("/callback?mode=sso"),
        "callback redirect (303)": await sso(installed, fake_vercel, token_kit, "ADMIN"),
        "form without its CSRF token (403)": await api.post(
            "/dashboard/notification/clear", raw=b"", headers={**cookies(mp_session=session, mp_csrf=csrf_cookie), "Content-Type": FORM}
        ),
        "unknown dashboard path (404)": await api.get("/dashboard/no/such/page", headers=with_session),
        "wrong method (405)": await api.post("/dashboard/billing", raw=b"", headers={**with_session, "Content-Type": FORM}),
    }
    expected = {"overview": 200, "signed out (401 page)": 401, "callback without a code (400 page)": 400,
                "callback redirect (303)": 303, "form without its CSRF token (403)": 403,
                "unknown dashboard path (404)": 404, "wrong method (405)": 405}
    assert {name: reply.status for name, reply in answers.items()} == expected
    for reply in answers.values():
        assert_browser_headers(reply.headers)


async def test_the_stylesheet_is_revalidated_and_never_sniffed(base_url: str) -> None:
    css = await raw_get(base_url, b"/static/style.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert css.body == (PAGES / "static" / "style.css").read_bytes()
    assert_browser_headers(css.headers, cache="no-cache")

    head = await raw_get(base_url, b"/static/style.css", method=b"HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(css.body))


async def test_the_partner_api_is_left_alone(base_url: str) -> None:
    answer = await raw_get(base_url, b"/healthz")
    assert answer.status == 200
    assert "content-security-policy" not in answer.headers and "x-frame-options" not in answer.headers


def test_the_logo_origin_is_the_only_other_image_source() -> None:
    assert directives(content_security_policy(None))["img-src"] == "'self'"
    assert directives(content_security_policy("/static/logo.png"))["img-src"] == "'self'"
    assert directives(content_security_policy("https://CDN.example.com:8443/a/logo.png?v=1"))["img-src"] == (
        "'self' https://cdn.example.com:8443"
    )
    for hostile in ("https://x.example;script-src *", "https://x.example 'unsafe-inline'", "https://user@x.example/l.png"):
        policy = content_security_policy(hostile)
        assert directives(policy)["img-src"] == "'self'", hostile
        assert "script-src" not in policy and "unsafe" not in policy


# --------------------------------------------------------------------------------------------------- static files

ODDITIES = [
    b"/static/a%00b", b"/static/%00", b"/static/style.css%00", b"/static/style.css%00.png",
    b"/static/.", b"/static/..", b"/static/%2e", b"/static/%2e%2e", b"/static/%2E%2E%2Fapp.py",
    b"/static/../app.py", b"/static/../templates/base.html.j2", b"/static/..%2f..%2fpyproject.toml",
    b"/static/%2fetc%2fpasswd", b"/static//etc/passwd", b"/static/%5c..%5capp.py", b"/static/..\\app.py",
    b"/static/style.css/.", b"/static/./style.css", b"/static/style.css%2f.",
    b"/static/" + b"a" * 300, b"/static/" + b"a" * 5000, b"/static/" + b"a/" * 300, b"/static/" + b"%2e%2e%2f" * 100,
    b"/static/.hidden", b"/static/STYLE.CSS", b"/static/style.css%20", b"/static/%ff%fe", b"/static/%c0%ae%c0%ae",
    b"/static/~", b"/static/*", b"/static/%", b"/static/%zz", b"/static/", b"/static",
]


@pytest.mark.parametrize("target", ODDITIES, ids=lambda t: t.decode()[:40])
async def test_every_static_path_oddity_is_a_404_json_error(base_url: str, target: bytes) -> None:
    answer = await raw_get(base_url, target)

    assert answer.status == 404, (target, answer.status, answer.body[:200])
    assert answer.headers["content-type"] == "application/json"
    assert b'"code":"not_found"' in answer.body
    for folder in (str(PAGES), str(PAGES.parent), str(Path.cwd())):
        assert folder.encode() not in answer.body


@pytest.fixture(scope="module")
async def folder_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The static router alone over a folder with what must never be served: a subfolder, a dotfile, a link out."""
    folder = tmp_path_factory.mktemp("static")
    (folder / "site.css").write_text("body { color: black; }")
    (folder / ".env").write_text("SECRET=1")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.css").write_text("p {}")
    (folder / "sub.css").mkdir()  # a folder named like a file
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("secret")
    (folder / "link.txt").symlink_to(outside.parent)  # a link to a folder
    app = Litestar(route_handlers=[static_files_router("/static", folder)], exception_handlers=EXCEPTION_HANDLERS)
    async with serving(app) as url:
        yield url


def test_only_regular_files_with_plain_names_are_servable(tmp_path: Path) -> None:
    (tmp_path / "a.css").write_text("")
    (tmp_path / ".b.css").write_text("")
    (tmp_path / "dir").mkdir()
    (tmp_path / "c d.css").write_text("")
    assert list(servable_files(tmp_path)) == ["a.css"]


@pytest.mark.parametrize(
    "target",
    [b"/static/sub", b"/static/sub/", b"/static/sub/inner.css", b"/static/sub%2finner.css", b"/static/sub.css",
     b"/static/.env", b"/static/%2eenv", b"/static/link.txt", b"/static/link.txt/secret.txt"],
)
async def test_folders_dotfiles_and_links_to_folders_are_404(folder_server: str, target: bytes) -> None:
    answer = await raw_get(folder_server, target)
    assert answer.status == 404 and answer.headers["content-type"] == "application/json", (target, answer)


async def test_the_folder_servers_own_file_is_served(folder_server: str) -> None:
    answer = await raw_get(folder_server, b"/static/site.css")
    assert answer.status == 200 and answer.body == b"body { color: black; }"
