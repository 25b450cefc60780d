"""The authentication matrix (auth.md 1.3): each kind of bad credential is tried on a read (Get Resource, system
style) and a change (rename the resource, user style); every refusal must carry the documented error body and
change nothing the Partner API shows. A control call with good tokens comes first, so the refusals are refusals of
these credentials and not of everything."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from marketplace_provider.adapters.checker import forgeries
from marketplace_provider.adapters.checker.partner import Reply
from marketplace_provider.adapters.checker.report import Failed, SetupFailed, expect
from marketplace_provider.adapters.checker.shapes import ErrorBody, conform, expect_status, skip_if_absent
from marketplace_provider.adapters.checker.world import SYSTEM, USER, Installation, VercelSide, World
from marketplace_provider.adapters.simulator.tokens import SigningKey

GROUP = "auth"
INTRUDER = {"name": "check-intruder"}

@dataclass
class Forge:
    """Genuine tokens from Vercel's side, and a key its JWKS never served."""

    side: VercelSide
    stranger: SigningKey

    async def token(self, style: str, installation_id: str | None, **claims: Any) -> str:
        return await self.side.token(style, installation_id, "ADMIN", claims)

    async def public_pem(self, token: str) -> bytes:
        return forgeries.public_pem(await self.side.jwks(), forgeries.header_and_claims(token)[0]["kid"])


# (forge, style, installation id) -> the Authorization header to send (None: no header)
Credential = Callable[[Forge, str, "str | None"], Awaitable["str | None"]]


def with_claims(**changes: Callable[[int], Any] | str) -> Credential:
    """A genuine token with these claims (a callable gets the time now)."""

    async def header(f: Forge, style: str, inst: str | None) -> str:
        now = int(time.time())
        return "Bearer " + await f.token(style, inst, **{k: v(now) if callable(v) else v for k, v in changes.items()})

    return header


def forged(make: Callable[[Forge, str], Awaitable[str]]) -> Credential:
    """`make(forge, a genuine token)`: a forgery of it."""

    async def header(f: Forge, style: str, inst: str | None) -> str:
        return "Bearer " + await make(f, await f.token(style, inst))

    return header


async def _none(f: Forge, token: str) -> str:
    return forgeries.alg_none(token)


async def _hs256(f: Forge, token: str) -> str:
    return forgeries.hs256_with_public_key(token, await f.public_pem(token))


async def _unknown_key(f: Forge, token: str) -> str:
    return forgeries.signed_by(token, f.stranger)


async def _same_kid(f: Forge, token: str) -> str:
    return forgeries.signed_by(token, f.stranger, kid=forgeries.header_and_claims(token)[0]["kid"])


async def _tampered(f: Forge, token: str) -> str:
    _, claims = forgeries.header_and_claims(token)
    other = await f.token("user" if "user_role" in claims else "system", claims.get("installation_id"), sub="account:0")
    return forgeries.tampered(token, other)


async def _missing(f: Forge, style: str, inst: str | None) -> str | None:
    return None


async def _basic(f: Forge, style: str, inst: str | None) -> str | None:
    return "Basic Y2hlY2s6Y2hlY2s="


BAD_CREDENTIALS: dict[str, Credential] = {
    "missing-token": _missing,
    "malformed-header": _basic,
    "expired": with_claims(iat=lambda now: now - 7200, exp=lambda now: now - 3600),
    "not-yet-valid": with_claims(nbf=lambda now: now + 3600),
    "wrong-audience": with_claims(aud="oac_another_integration"),
    "wrong-issuer": with_claims(iss="https://evil.example.com"),
    "unknown-key": forged(_unknown_key),
    "other-key-same-kid": forged(_same_kid),
    "alg-none": forged(_none),
    "hs256-public-key": forged(_hs256),
    "tampered-claims": forged(_tampered),
}
CHECKS = (
    "good-tokens", *BAD_CREDENTIALS, "another-installation", "system-token-without-installation",
    "x-vercel-auth-mismatch", "user-role-on-changes", "user-role-may-read", "system-token-on-provision",
    "user-token-on-transfers",
)


@dataclass
class Target:
    """Installation `a` owning `resource_id`, its neighbour `b`, and the last snapshot while nothing changed."""

    w: World
    a: Installation
    b: Installation
    resource_id: str
    seen: list[tuple[int, Any]] | None = field(default=None)

    async def read(self, authorization: str | None, style: str) -> Reply:
        return await self._send("GET", self.a.resource_path(self.resource_id), authorization, style)

    async def change(self, authorization: str | None, style: str) -> Reply:
        return await self._send("PATCH", self.a.resource_path(self.resource_id), authorization, style, INTRUDER)

    async def _send(self, method: str, path: str, authorization: str | None, style: str, body: Any = None) -> Reply:
        headers = {} if authorization is None else {"Authorization": authorization}
        kw = {} if body is None else {"body": body}
        return await self.w.client.call(method, path, style=style, headers=headers, **kw)

    async def refused(self, calls: list[Callable[[], Any]], statuses: tuple[int, ...]) -> None:
        """Every call answered one of `statuses` with the error body, and the snapshot did not move."""
        before = self.seen or await self.w.snapshot(self.a, self.resource_id)
        problems = [problem(await call(), statuses) for call in calls]
        self.seen = await self.w.snapshot(self.a, self.resource_id)
        expect(not any(problems), "; ".join(p for p in problems if p))
        expect(self.seen == before, "a refused call changed what the Partner API shows")


def problem(reply: Reply, statuses: tuple[int, ...]) -> str:
    if reply.status not in statuses:
        return f"{reply.method} answered {reply.status} (expected {' or '.join(map(str, statuses))})"
    try:
        conform(reply, ErrorBody)
    except Failed as exc:
        return str(exc)
    return ""


async def run(w: World) -> None:
    check = partial(w.report.check, GROUP)
    a, b = await w.installed(), await w.installed()
    t = Target(w, a, b, await w.provisioned(a, "check-auth"))
    with check("good-tokens"):
        read_reply, change_reply = (await t.read("Bearer " + await a.system(), SYSTEM),
                                    await t.change("Bearer " + await a.admin(), USER))
        for reply in (read_reply, change_reply):
            if reply.status != 200:
                raise SetupFailed(f"good tokens refused: {reply.says()}")
    forge = Forge(w.vercel, SigningKey.generate())
    for name, make in BAD_CREDENTIALS.items():
        with check(name):
            read, change = await make(forge, SYSTEM, a.id), await make(forge, USER, a.id)
            await t.refused([partial(t.read, read, SYSTEM), partial(t.change, change, USER)], (401, 403))
    with check("another-installation"):  # a valid token of the neighbour: the path's installation must be compared
        read, change = "Bearer " + await b.system(), "Bearer " + await b.admin()
        await t.refused([partial(t.read, read, SYSTEM), partial(t.change, change, USER)], (403,))
    with check("system-token-without-installation"):
        await t.refused([partial(t.read, "Bearer " + await forge.token(SYSTEM, None), SYSTEM)], (401, 403))
    with check("x-vercel-auth-mismatch"):
        read, change = "Bearer " + await a.system(), "Bearer " + await a.admin()
        await t.refused([partial(t.read, read, USER), partial(t.change, change, SYSTEM)], (401, 403))
    with check("user-role-on-changes"):
        viewer = await a.viewer()
        calls: list[Callable[[], Any]] = [
            partial(w.client.call, method, path, token=viewer, style=USER, **kw) for method, path, kw in changes(t)
        ]
        await t.refused(calls, (403,))
    with check("user-role-may-read"):
        reply = await w.client.call("GET", f"/v1/products/{w.product}/plans", token=await a.viewer(), style=USER)
        expect_status(reply, 200)
    with check("system-token-on-provision"):  # Provision Resource is user-authenticated (partner-api.md 0.3)
        body = w.provision_body("check-intruder")
        await t.refused([partial(w.as_system, a, "POST", a.path + "/resources", body=body)], (401, 403))
    with check("user-token-on-transfers"):  # transfer requests are system-authenticated
        body = {"resourceIds": [t.resource_id], "expiresAt": int((time.time() + 3600) * 1000)}
        reply = await w.as_admin(a, "POST", a.path + "/resource-transfer-requests", body=body)
        skip_if_absent(reply)
        expect(not problem(reply, (401, 403)), problem(reply, (401, 403)))


def changes(t: Target) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, keywords) of every change a read-only member (role USER) must be refused (auth.md 1.3, 6)."""
    a, resource = t.a, t.a.resource_path(t.resource_id)
    return [
        ("PUT", a.path, {"body": t.w.upsert_body(a)}),
        ("PATCH", a.path, {"body": {"billingPlanId": t.w.plan}}),
        ("POST", a.path + "/resources", {"body": t.w.provision_body("check-intruder")}),
        ("PATCH", resource, {"body": INTRUDER}),
        ("POST", resource + "/secrets/rotate", {"body": {"reason": "check"}}),
        ("DELETE", resource, {}),
        ("DELETE", a.path, {}),
    ]
