"""The simulator: one aiohttp server on 127.0.0.1 that plays Vercel for a provider.

It serves the JWKS of its signing keys (`/.well-known/jwks`), the Vercel REST API with its recording and fault
injection (every other path, FakeVercel), the SSO token exchange, and its own control endpoints under
`/_simulator` (the recording, key rotation, faults, tokens, SSO codes, invoices, webhooks) so that another process
(`marketplace-provider check`, a test, a person with curl) can drive a running simulator.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from marketplace_provider.adapters.simulator import recording, webhooks
from marketplace_provider.adapters.simulator.tokens import ACCOUNT_ID, OMIT, USER_ID, SigningKey, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import Call, FakeVercel

CONTROL = "/_simulator"
LOGIN_PATH = "/callback"  # the Redirect Login URL of our own server
SSO_CONTEXT = ("product_id", "resource_id", "check_id", "project_id", "experimentation_item_id", "invoice_id", "pr",
               "path", "url")  # auth.md 3.1


class Simulator:
    """`async with Simulator(client_id=..., client_secret=...) as sim:` then point a provider at `sim.provider_settings()`."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        port: int = 0,
        key: SigningKey | None = None,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.port = port
        self.kit = TokenKit(audience=client_id, key=key)
        self.vercel = FakeVercel(client_id=client_id, client_secret=client_secret, on_call=on_call)
        self.vercel.members[USER_ID] = {"id": USER_ID, "role": "ADMIN"}  # the member every user token names
        self.url = ""
        self.on_rotate: Callable[[SigningKey], None] | None = None  # e.g. keep the new key for the next run
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        self.kit.serve_on(app)
        app.router.add_get(CONTROL, self._about)
        app.router.add_get(CONTROL + "/calls", self._calls)
        app.router.add_delete(CONTROL + "/calls", self._forget_calls)
        app.router.add_post(CONTROL + "/keys/rotate", self._rotate)
        app.router.add_post(CONTROL + "/faults", self._faults)
        app.router.add_post(CONTROL + "/tokens", self._token)
        app.router.add_post(CONTROL + "/sso", self._sso)
        app.router.add_put(CONTROL + "/invoices/{invoice_id}", self._invoice)
        app.router.add_post(CONTROL + "/webhooks", self._webhook)
        self.vercel.serve_on(app)  # last: it answers every other path
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.kit.served_at(self.url)
        self.vercel.url = self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ what a provider needs

    def provider_settings(self) -> dict[str, str]:
        """The settings a provider needs to trust this simulator (the issuer is Vercel's own, the default)."""
        return {
            "VERCEL_OIDC_JWKS_URL": self.kit.jwks_url,
            "VERCEL_OIDC_ISSUER": self.kit.issuer,
            "VERCEL_API_URL": self.url,
            "INTEGRATION_CLIENT_ID": self.client_id,
            "INTEGRATION_CLIENT_SECRET": self.client_secret,
        }

    def new_access_token(self, installation_id: str) -> str:
        """The access token an installation's upsert hands over; the fake API then accepts only it for that
        installation."""
        token = "vca_sim_" + secrets.token_urlsafe(24)
        self.vercel.access_tokens[installation_id] = token
        return token

    def remember_resource(self, resource: dict[str, Any]) -> None:
        """Vercel keeps what a provisioning answered: the provider's later updates of it then find it."""
        self.vercel.resources[resource["id"]] = {
            "id": resource["id"], "internalId": "store_" + secrets.token_hex(6),
            **{k: resource[k] for k in ("name", "productId", "status", "metadata") if k in resource},
        }

    def webhook_headers(self, body: bytes) -> dict[str, str]:
        return webhooks.signed_headers(body, self.client_secret)

    def sso_code(self, installation_id: str, *, role: str = "ADMIN", user_id: str = USER_ID) -> str:
        """A single-use code the token exchange trades for an id token of this user (minted then, so it is fresh)."""
        code = "sso_" + secrets.token_urlsafe(18)
        claims = {"user_id": user_id, "sub": f"account:{ACCOUNT_ID}:user:{user_id}"}
        self.vercel.members.setdefault(user_id, {"id": user_id, "role": role})

        def exchange() -> dict[str, Any]:  # once: a used code is refused (403), as Vercel does
            del self.vercel.sso_tokens[code]
            return {"id_token": self.kit.user_token(installation_id, role, type="id_token", **claims),
                    "access_token": None, "token_type": None}

        self.vercel.sso_tokens[code] = exchange
        return code

    def login_url(self, provider_url: str, installation_id: str, *, login_path: str = LOGIN_PATH, role: str = "ADMIN",
                  **context: str) -> str:
        """The provider's Redirect Login URL as Vercel opens it: mode=sso, a fresh code, a state, the context."""
        unknown = set(context) - set(SSO_CONTEXT)
        if unknown:
            raise ValueError(f"not an SSO context parameter: {', '.join(sorted(unknown))}")
        query = {"mode": "sso", "code": self.sso_code(installation_id, role=role), "state": secrets.token_hex(8),
                 **{k: v for k, v in context.items() if v}}
        return f"{provider_url.rstrip('/')}{login_path}?{urlencode(query)}"

    def token(self, spec: dict[str, Any]) -> str:
        """A token as `POST /_simulator/tokens` describes it: {"kind": "user"|"system", "installationId",
        "role", "claims": {overrides}, "omit": [claims], "alg": "RS256"|"none"|"HS256", "foreignKey": bool}."""
        overrides = {**spec.get("claims", {}), **{name: OMIT for name in spec.get("omit", [])}}
        installation_id = spec.get("installationId")
        if spec.get("kind", "user") == "system":
            claims = self.kit.system_claims(installation_id, **overrides)
        else:
            claims = self.kit.user_claims(installation_id or "", spec.get("role", "ADMIN"), **overrides)
        key = SigningKey.generate() if spec.get("foreignKey") else None  # a key the JWKS never served
        return self.kit.mint(claims, key=key, alg=spec.get("alg", "RS256"))

    # ------------------------------------------------------------------ control endpoints

    async def _about(self, request: web.Request) -> web.Response:
        return web.json_response({
            "url": self.url, "jwksUrl": self.kit.jwks_url, "apiUrl": self.url, "issuer": self.kit.issuer,
            "clientId": self.client_id, "calls": len(self.vercel.calls), "keys": [k.kid for k in self.kit.served],
        })

    async def _calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0") or 0)
        return web.Response(text=recording.dumps(self.vercel.calls, since), content_type="application/json")

    async def _forget_calls(self, request: web.Request) -> web.Response:
        self.vercel.calls.clear()
        self.vercel.accepted.clear()
        return web.Response(status=204)

    async def _rotate(self, request: web.Request) -> web.Response:
        spec = await _json(request)
        key = self.kit.rotate(keep_old=bool(spec.get("keepOld")))
        if self.on_rotate is not None:
            self.on_rotate(key)
        return web.json_response({"kid": key.kid, "served": [k.kid for k in self.kit.served]})

    async def _faults(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(set_faults(self.vercel, await _json(request)))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _token(self, request: web.Request) -> web.Response:
        try:
            return web.json_response({"token": self.token(await _json(request))})
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _sso(self, request: web.Request) -> web.Response:
        spec = await _json(request)
        installation_id = spec.get("installationId")
        if not isinstance(installation_id, str):
            return web.json_response({"error": "installationId is required"}, status=400)
        role = spec.get("role", "ADMIN")
        if spec.get("providerUrl"):
            context = {k: str(v) for k, v in (spec.get("context") or {}).items()}
            try:
                url = self.login_url(spec["providerUrl"], installation_id, role=role, **context)
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"url": url})
        return web.json_response({"code": self.sso_code(installation_id, role=role)})

    async def _invoice(self, request: web.Request) -> web.Response:
        invoice_id = request.match_info["invoice_id"]
        self.vercel.invoices[invoice_id] = {"invoiceId": invoice_id, **await _json(request)}
        return web.Response(status=204)

    async def _webhook(self, request: web.Request) -> web.Response:
        """{"url": the provider's webhook URL, "type", "installationId", details...}: signed and delivered."""
        spec = await _json(request)
        url, kind, installation_id = spec.pop("url", None), spec.pop("type", None), spec.pop("installationId", None)
        if not (url and kind and installation_id):
            return web.json_response({"error": "url, type and installationId are required"}, status=400)
        body = webhooks.event_body(kind, installation_id, **_snake(spec))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.post(url, data=body, headers=self.webhook_headers(body)) as reply:
                return web.json_response({"eventId": json.loads(body)["id"], "status": reply.status})


def set_faults(fake: FakeVercel, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply a fault plan: {"reset", "failRate", "seed", "failNext", "status", "rateLimitNext", "retryAfter",
    "delayNext", "seconds", "dropNext", "failStatus"}; returns what is pending."""
    if spec.get("reset"):
        fake.reset()
    if "failRate" in spec:
        rate = float(spec["failRate"])
        if not 0 <= rate <= 1:
            raise ValueError("failRate must lie between 0 and 1")
        fake.flaky(rate, int(spec.get("seed", 0)))
    fake.fail_next(int(spec.get("failNext", 0)), int(spec.get("status", 500)))
    fake.rate_limit_next(int(spec.get("rateLimitNext", 0)), spec.get("retryAfter", 1))
    fake.delay_next(int(spec.get("delayNext", 0)), float(spec.get("seconds", 30)))
    fake.drop_next(int(spec.get("dropNext", 0)))
    if "failStatus" in spec:
        fake.fail_status = None if spec["failStatus"] is None else int(spec["failStatus"])
    return {"pending": fake.pending_faults(), "failRate": fake.flaky_rate, "failStatus": fake.fail_status}


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "send a JSON object"}', content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "send a JSON object"}', content_type="application/json")
    return data


_DETAILS = {"resourceId": "resource_id", "invoiceId": "invoice_id", "externalInvoiceId": "external_invoice_id",
            "memberId": "member_id", "role": "role", "total": "total"}  # what a webhook request may set


def _snake(spec: dict[str, Any]) -> dict[str, Any]:
    return {_DETAILS[k]: v for k, v in spec.items() if k in _DETAILS}
