"""Our server with planted faults, for `marketplace-provider check` to find: these and nothing else.

`BrokenServer(app, key, client_secret)` is a thin ASGI layer over the real app that, like Vercel's example,
- accepts `alg: none` tokens (re-signs them with `key`, the checker's, before the app sees them);
- ignores the path's installation: a valid token of another installation is re-minted for the path's one;
- answers 200 to a forged webhook (missing or wrong signature), without passing it on;
- answers 500 to a body that is not JSON (the example's `request.json()` throwing);
- ignores Idempotency-Key when provisioning, so a retried provision makes a second resource.
Everything else reaches the app untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from marketplace_provider.adapters.checker.forgeries import header_and_claims
from marketplace_provider.adapters.simulator.tokens import SigningKey, TokenKit
from marketplace_provider.adapters.simulator.webhooks import SIGNATURE_HEADER, sign

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

INSTALLATION = re.compile(r"^/v1/installations/([^/]+)")
PROVISION = re.compile(r"^/v1/installations/[^/]+/resources/?$")

# check name -> the planted fault it must find
FAULTS = {
    "auth/alg-none": "accepts alg: none",
    "auth/another-installation": "ignores the path's installation",
    "webhooks/missing-signature": "answers 200 to a forged webhook",
    "webhooks/wrong-secret": "answers 200 to a forged webhook",
    "webhooks/another-body-signature": "answers 200 to a forged webhook",
    "bad-input/provision-malformed-json": "500 on bad JSON",
    "bad-input/upsert-malformed-json": "500 on bad JSON",
    "bad-input/update-resource-malformed-json": "500 on bad JSON",
    "bad-input/transfer-malformed-json": "500 on bad JSON",
    "bad-input/webhook-malformed-json": "500 on bad JSON",
    "idempotency/provision-retried": "duplicates on retried keys",
}


class BrokenServer:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], key: SigningKey, client_secret: str) -> None:
        self.app = app
        self.kit = TokenKit()
        self.kit.key = key
        self.client_secret = client_secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = await _read(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/webhook" and headers.get(SIGNATURE_HEADER) != sign(body, self.client_secret):
            return await _answer(send, 200, b'{"received": true}')
        if body and not _is_json(body):
            return await _answer(send, 500, b"Internal Server Error", b"text/plain")
        kept = []
        for name, value in scope["headers"]:
            if name.lower() == b"idempotency-key" and PROVISION.match(path):
                continue
            if name.lower() == b"authorization":
                value = self._reauthorized(value.decode("latin-1"), path).encode("latin-1")
            kept.append((name, value))
        await self.app({**scope, "headers": kept}, _replay(body, receive), send)

    def _reauthorized(self, header: str, path: str) -> str:
        """alg none re-signed; a valid token naming another installation than the path's re-minted for the path's."""
        scheme, _, token = header.partition(" ")
        try:
            jose, claims = header_and_claims(token)
        except ValueError:
            return header
        if jose.get("alg") == "none":
            return f"{scheme} {self.kit.mint(claims)}"
        target = INSTALLATION.match(path)
        named = claims.get("installation_id")
        if target and isinstance(named, str) and named != target[1] and self._genuine(token):
            return f"{scheme} {self.kit.mint({**claims, 'installation_id': target[1]})}"
        return header

    def _genuine(self, token: str) -> bool:
        try:
            jwt.PyJWS().decode(token, self.kit.key.private_key.public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return True


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


async def _read(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()  # waits for the disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
