"""What the OpenAPI document states beyond what schemathesis checks (test_openapi_conformance.py), and the
interactive docs at /schema working offline: every file they load comes from this server, and Chromium renders
them with every other host blocked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import async_playwright

from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.http import create_app
from tests.support.server import serving

CHROMIUM = "/usr/bin/chromium"
PARTNER_API = "/v1/"
BODY_METHODS = ("put", "post", "patch", "delete")


@pytest.fixture(scope="module")
async def base_url(token_kit: TokenKit, fake_vercel: FakeVercel) -> AsyncIterator[str]:
    settings = load_settings(
        {
            "STORAGE_BACKEND": "memory",
            "INTEGRATION_CLIENT_ID": AUDIENCE,
            "INTEGRATION_CLIENT_SECRET": "docs-client-secret",
            "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
            "VERCEL_API_URL": fake_vercel.url,
            "SERVE_WORKER": "false",
        }
    )
    async with serving(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url) as session:
        yield session


@pytest.fixture(scope="module")
async def document(http: aiohttp.ClientSession) -> dict:
    async with http.get("/schema/openapi.json") as response:
        assert response.status == 200
        return await response.json()


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", *BODY_METHODS)
    ]


# ---------------------------------------------------------------------------------------------------------------
# the document
# ---------------------------------------------------------------------------------------------------------------


def test_the_bearer_scheme_is_declared_and_required_by_every_partner_api_operation(document: dict) -> None:
    scheme = document["components"]["securitySchemes"]["vercelOidc"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in operations(document):
        expected = [{"vercelOidc": []}] if path.startswith(PARTNER_API) else None
        assert operation.get("security") == expected, (method, path)


OPTIONAL_BODIES = {
    ("delete", "/v1/installations/{installationId}"),
    ("post", "/v1/installations/{installationId}/resources/{resourceId}/secrets/rotate"),
    ("post", "/v1/installations/{installationId}/resource-transfer-requests/{providerClaimId}/accept"),
}


def test_only_the_optional_bodies_are_not_required(document: dict) -> None:
    for method, path, operation in operations(document):
        if (body := operation.get("requestBody")) is not None:
            assert body["required"] is ((method, path) not in OPTIONAL_BODIES), (method, path)
    assert all("requestBody" in document["paths"][path][method] for method, path in OPTIONAL_BODIES)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("delete", "/v1/installations/{installationId}", "204"),  # already uninstalled
        ("post", "/v1/installations/{installationId}/resources/{resourceId}/secrets/rotate", "202"),
        ("post", "/webhook", "400"),
        ("post", "/webhook", "403"),  # a wrong signature
        ("put", "/v1/installations/{installationId}", "415"),
        ("get", "/v1/installations/{installationId}/resources", "503"),
    ],
)
def test_these_answers_are_documented(document: dict, method: str, path: str, status: str) -> None:
    assert status in document["paths"][path][method]["responses"]


def test_ids_in_paths_state_the_pattern_the_server_checks(document: dict) -> None:
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}(?!\\n)$", (method, path)


def test_the_constraints_of_items_and_keys_are_stated(document: dict) -> None:
    schemas = document["components"]["schemas"]
    transfer = schemas["CreateTransferIn"]["properties"]["resourceIds"]
    assert transfer["uniqueItems"] is True and transfer["items"]["minLength"] == 1
    assert "pattern" in transfer["items"]
    provision = schemas["ProvisionResourceIn"]["properties"]
    assert provision["name"]["minLength"] == 1 and provision["name"]["maxLength"] == 128
    assert provision["metadata"]["maxProperties"] == 100 and provision["metadata"]["propertyNames"]["maxLength"] == 128
    policies = schemas["UpsertInstallationIn"]["properties"]["acceptedPolicies"]
    assert policies["propertyNames"]["maxLength"] == 128 and policies["additionalProperties"]["maxLength"] == 1024
    statuses = schemas["UpdateResourceIn"]["properties"]["status"]["oneOf"][0]["enum"]
    assert "uninstalled" not in statuses


def test_the_metadata_query_is_a_json_object(document: dict) -> None:
    parameters = document["paths"]["/v1/products/{productSlug}/plans"]["get"]["parameters"]
    metadata = next(p for p in parameters if p["name"] == "metadata")
    assert metadata["content"]["application/json"]["schema"]["type"] == "object"
    assert "schema" not in metadata


async def test_options_lists_every_method_of_a_path(http: aiohttp.ClientSession, document: dict) -> None:
    for path, item in document["paths"].items():
        if not path.startswith(PARTNER_API):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        async with http.options(concrete) as response:
            assert response.status == 204, path
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed == {m.upper() for m in item} | {"OPTIONS"}, path


# ---------------------------------------------------------------------------------------------------------------
# the interactive docs, offline
# ---------------------------------------------------------------------------------------------------------------


class References(HTMLParser):
    """Every URL a page loads or links to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_the_docs_page_loads_only_files_of_this_server(http: aiohttp.ClientSession, page: str) -> None:
    async with http.get(page) as response:
        assert response.status == 200
        html = await response.text()
    found = References()
    found.feed(html)
    assert len(found.urls) >= 4, found.urls  # icon, stylesheet, two scripts
    for url in found.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/schema/assets/"), url
        async with http.get(url) as asset:
            assert asset.status == 200, url
            assert len(await asset.read()) > 0, url
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)


async def test_docs_assets_refuse_odd_names(http: aiohttp.ClientSession) -> None:
    for name in ("a%00b", ".", "..%2Fswagger-ui.css", "missing.js"):
        async with http.get(f"/schema/assets/{name}") as response:
            assert response.status == 404, name


async def test_chromium_renders_the_docs_with_every_other_host_blocked(base_url: str) -> None:
    ours = urlsplit(base_url).netloc
    elsewhere: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = await browser.new_page()

            async def only_ours(route, request) -> None:  # type: ignore[no-untyped-def]
                if urlsplit(request.url).netloc == ours or request.url.startswith("data:"):
                    await route.continue_()
                else:
                    elsewhere.append(request.url)
                    await route.abort()

            await page.route("**/*", only_ours)
            await page.goto(f"{base_url}/schema")
            await page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
            assert "marketplace-provider" in await page.inner_text(".swagger-ui .info .title")
            assert await page.locator(".opblock-summary-path", has_text="/v1/installations/{installationId}").count() > 0
            assert await page.locator("button.authorize").count() == 1  # the bearer scheme, offered for a token
        finally:
            await browser.close()
    assert elsewhere == []


def test_the_sso_callback_documents_its_redirect_and_html_pages(document: dict) -> None:
    """/callback answers browsers: a 303 on sign-in, an HTML page (never the JSON error body) when refused, for
    each status tests/http/test_sso.py sees it give."""
    answers = document["paths"]["/callback"]["get"]["responses"]
    assert set(answers) == {"303", "400", "401", "403", "503"}
    assert "content" not in answers["303"]
    for status in ("400", "401", "403", "503"):
        assert list(answers[status]["content"]) == ["text/html"], status
