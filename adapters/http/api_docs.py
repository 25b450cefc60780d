"""The OpenAPI document (/schema/openapi.json) and its interactive page (/schema), which works offline.

Swagger UI's files come from the swagger-ui-py package and are served by us under /schema/assets: the page
names no other host (Litestar's default pages load their scripts, styles, fonts and icon from CDNs)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from marketplace_provider.adapters.http.partner_api import BEARER_SCHEME
from marketplace_provider.adapters.http.static_files import static_files_router

DOCS_PATH = "/schema"
ASSETS_PATH = DOCS_PATH + "/assets"


def swagger_ui_files() -> Path:
    """Swagger UI 5's distribution files, as the swagger-ui-py package ships them (found without importing it:
    its package imports its framework adapters)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: reinstall marketplace-provider")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


class OfflineSwaggerUI(SwaggerRenderPlugin):
    """Swagger UI at /schema (and /schema/swagger), its scripts, stylesheet and icon served from ASSETS_PATH."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">',
            path=["/", "/swagger"],
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)  # Swagger UI's oauth2-redirect.html
        router.register(static_files_router(ASSETS_PATH.removeprefix(DOCS_PATH), swagger_ui_files()))


VERCEL_OIDC = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="JWT",
    description="The OIDC token Vercel signs for each call (RS256, keys at VERCEL_OIDC_JWKS_URL): issuer, audience "
    "(the integration's client id), expiry and the installation in the path are checked; `X-Vercel-Auth` "
    "(`user` or `system`), when sent, must agree with it.",
)


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="marketplace-provider",
        version=version,
        path=DOCS_PATH,
        render_plugins=[OfflineSwaggerUI()],  # the JSON document is added at /schema/openapi.json by Litestar
        components=Components(security_schemes={BEARER_SCHEME: VERCEL_OIDC}),
    )
