"""The auth matrix through HTTP against the real server: every kind of bad credential on a representative set
of Partner API endpoints is refused with the documented error body, and every refusal changes nothing.

Each test gets a small world of its own (`World`): installation `a` owning a resource, installation `b` (the
target of two transfer claims, one verified), an id `c` nobody has installed, and a paid invoice Vercel knows.
The endpoint table says which auth styles each endpoint accepts and whether it is a mutation (permission table
of domain/roles.py, partner-api.md 0.3); the tests are the cross product of that table with tables of
credentials. After a refusal, `World.snapshot()` reads everything visible again with good tokens and compares.
"""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.tokens import OMIT, SigningKey, TokenKit, b64url
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel
from tests.http.conftest import Installation, new_installation_id, provision_body, upsert_body
from tests.http.test_purchases import paid_invoice as invoice_body

USER, SYSTEM = "user", "system"
BOTH = (USER, SYSTEM)


# ---------------------------------------------------------------------------------------------------------------
# the world each test works in
# ---------------------------------------------------------------------------------------------------------------


def paid_invoice(invoice_id: str) -> dict:
    return invoice_body(invoice_id, [{"billingPlanId": "credits", "name": "Credits", "price": "10.00", "quantity": 1, "units": "USD", "total": "10.00"}])


def in_one_hour_ms() -> int:
    return int((time.time() + 3600) * 1000)


@dataclass
class World:
    api: Api
    kit: TokenKit
    fake_vercel: FakeVercel
    a: Installation  # installed, owns `resource`
    b: Installation  # installed, the target of the transfer claims
    c: Installation  # never installed: the target of upserts
    resource: str = ""
    open_claim: str = ""  # created by a, not verified
    verified_claim: str = ""  # created by a, verified by b
    invoice: str = ""  # paid, known to Vercel, never credited
    legacy_claim: str = field(default_factory=lambda: "legacy-" + secrets.token_hex(6))  # for the older PUT form
    dirty: bool = False  # a refusal test failed here: the world may have changed, build another
    last_seen: dict[str, Any] | None = None  # the latest snapshot, while nothing can have changed since
    _tokens: dict[tuple[str, str], tuple[float, str, str]] = field(default_factory=dict)

    def by_name(self, name: str) -> Installation:
        return {"a": self.a, "b": self.b, "c": self.c}[name]

    def token(self, name: str, style: str) -> str:
        """A good (ADMIN for users) token for installation `name`, minted once a minute at most."""
        minted = self._tokens.get((name, style))
        if minted is None or time.time() - minted[0] > 60 or minted[1] != self.kit.key.kid:
            inst = self.by_name(name)
            minted = (time.time(), self.kit.key.kid, inst.system if style == SYSTEM else inst.admin)
            self._tokens[(name, style)] = minted
        return minted[2]

    async def snapshot(self) -> dict[str, Any]:
        """Everything the Partner API shows about the world, read with good tokens."""
        seen: dict[str, Any] = {}
        for name in ("a", "b", "c"):
            inst = self.by_name(name)
            token = self.token(name, SYSTEM)
            got = await self.api.get(inst.path, token=token, style=SYSTEM)
            seen[name] = (got.status, got.json)
            listed = await self.api.get(inst.path + "/resources", token=token, style=SYSTEM)
            seen[name + "/resources"] = (listed.status, listed.json)
        # the example store behind the resource (REPL `set` writes to it), read-only
        keys = await self.api.post(
            f"{self.a.path}/resources/{self.resource}/repl",
            token=self.token("a", USER),
            style=USER,
            body={"input": "keys", "readOnly": True},
        )
        seen["a/resource/keys"] = (keys.status, keys.json)
        self.last_seen = seen
        return seen


async def build_world(api: Api, kit: TokenKit, fake_vercel: FakeVercel) -> World:
    a, b, c = (Installation(new_installation_id(), api, kit) for _ in range(3))
    world = World(api, kit, fake_vercel, a, b, c)
    for inst in (a, b):
        assert (await inst.upsert()).status == 204
    provisioned = await a.provision(name="precious")
    assert provisioned.status == 200, provisioned.body
    world.resource = provisioned.json["id"]
    claims = []
    for _ in range(2):
        created = await api.post(
            a.path + "/resource-transfer-requests",
            token=a.system,
            style=SYSTEM,
            body={"resourceIds": [world.resource], "expiresAt": in_one_hour_ms()},
        )
        assert created.status == 200, created.body
        claims.append(created.json["providerClaimId"])
    world.open_claim, world.verified_claim = claims
    verified = await api.get(
        f"{b.path}/resource-transfer-requests/{world.verified_claim}/verify", token=b.system, style=SYSTEM
    )
    assert verified.status == 200, verified.body
    world.invoice = "inv_" + secrets.token_hex(8)
    fake_vercel.invoices[world.invoice] = paid_invoice(world.invoice)
    return world


@pytest.fixture(scope="module")
async def fast_api(base_url: str) -> AsyncIterator[Api]:
    """A client that opens a connection per request.

    tests/support/server.py listens on `socket.socket()`, whose proto is 0, so asyncio does not set
    TCP_NODELAY on the accepted connections: on a kept-alive connection every response with a body then waits
    ~40 ms for a delayed ACK (Nagle). A new connection per request answers in ~2 ms; this matrix makes
    thousands of requests.
    """
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield Api(base_url, session)


@pytest.fixture
async def world(fast_api: Api, token_kit: TokenKit, fake_vercel: FakeVercel) -> World:
    """A world of the test's own (for calls that are meant to succeed)."""
    return await build_world(fast_api, token_kit, fake_vercel)


@pytest.fixture(scope="module")
def shared_worlds() -> list[World]:
    return []


@pytest.fixture
async def refusal_world(
    shared_worlds: list[World], fast_api: Api, token_kit: TokenKit, fake_vercel: FakeVercel
) -> World:
    """One world shared by the refusal tests: each compares a snapshot before and after its refused call,
    so sharing is sound while refusals change nothing; after a failure the next test gets a new world."""
    if not shared_worlds or shared_worlds[-1].dirty:
        shared_worlds.append(await build_world(fast_api, token_kit, fake_vercel))
    w = shared_worlds[-1]
    w.legacy_claim = "legacy-" + secrets.token_hex(6)
    return w


# ---------------------------------------------------------------------------------------------------------------
# the endpoints
# ---------------------------------------------------------------------------------------------------------------

NOTHING = object()


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # formatted with the World's attributes: {a}, {b}, {c}, {resource}, {open_claim}, ...
    on: str | None  # the installation named by the path ("a", "b", "c"), None: not installation-bound
    styles: tuple[str, ...]  # accepted X-Vercel-Auth styles
    mutation: bool  # a user token needs ADMIN
    ok: int  # the status of a good call
    body: Callable[[World], Any] | None = None
    # after a refusal and the snapshot comparison: more proof that nothing happened
    unchanged: Callable[[World, Api, str | None], Awaitable[None]] | None = None

    def url(self, w: World) -> str:
        return self.path.format(
            a=w.a.path,
            b=w.b.path,
            c=w.c.path,
            resource=w.resource,
            open_claim=w.open_claim,
            verified_claim=w.verified_claim,
            legacy_claim=w.legacy_claim,
        )

    def installation(self, w: World) -> str | None:
        return None if self.on is None else w.by_name(self.on).id

    @property
    def primary_style(self) -> str:
        return self.styles[0]

    async def call(self, w: World, authorization: str | None, style: str | None, key: str | None = None) -> Reply:
        headers = {} if authorization is None else {"Authorization": authorization}
        body = NOTHING if self.body is None else self.body(w)
        kw: dict[str, Any] = {"headers": headers, "style": style, "key": key}
        if body is not NOTHING:
            kw["body"] = body
        return await w.api.call(self.method, self.url(w), **kw)


async def no_vercel_call_for_the_invoice(w: World, api: Api, key: str | None) -> None:
    # a credit needs Vercel's word on the invoice: a refused purchase must not even have asked
    assert not [c for c in w.fake_vercel.calls if c.path.endswith("/" + w.invoice)]


async def no_claim_was_created(w: World, api: Api, key: str | None) -> None:
    # the refused create carried `key`; had it created a claim, the key would now be taken by that body
    assert key is not None
    other = await api.post(
        w.a.path + "/resource-transfer-requests",
        token=w.a.system,
        style=SYSTEM,
        key=key,
        body={"resourceIds": [w.resource], "expiresAt": in_one_hour_ms() + 1234},
    )
    assert other.status == 200, other.body


async def no_legacy_claim_was_created(w: World, api: Api, key: str | None) -> None:
    created = await api.put(
        f"{w.a.path}/resource-transfer-requests/{w.legacy_claim}",
        token=w.a.system,
        style=SYSTEM,
        body={"resourceIds": [w.resource], "expiration": int(time.time()) + 3600},
    )
    assert created.status == 204, created.body  # 409 would mean the refused call created it


async def open_claim_still_unverified(w: World, api: Api, key: str | None) -> None:
    accept = await api.post(
        f"{w.b.path}/resource-transfer-requests/{w.open_claim}/accept", token=w.b.system, style=SYSTEM
    )
    assert accept.status == 409, accept.body  # accepting needs a verification first


ENDPOINTS = [
    Endpoint("upsert-installation", "PUT", "{c}", "c", (USER,), True, 204, lambda w: upsert_body()),
    Endpoint("get-installation", "GET", "{a}", "a", BOTH, False, 200),
    Endpoint("update-installation", "PATCH", "{a}", "a", BOTH, True, 204, lambda w: {"billingPlanId": "team-pro"}),
    Endpoint("delete-installation", "DELETE", "{a}", "a", BOTH, True, 200, lambda w: {"cascadeResourceDeletion": True}),
    Endpoint("product-plans", "GET", "/v1/products/acme-kv/plans", None, BOTH, False, 200),
    Endpoint("installation-plans", "GET", "{a}/plans", "a", BOTH, False, 200),
    Endpoint(
        "provision-resource",
        "POST",
        "{a}/resources",
        "a",
        (USER,),
        True,
        200,
        lambda w: provision_body(name="intruder"),
    ),
    Endpoint("list-resources", "GET", "{a}/resources", "a", BOTH, False, 200),
    Endpoint("get-resource", "GET", "{a}/resources/{resource}", "a", BOTH, False, 200),
    Endpoint(
        "update-resource",
        "PATCH",
        "{a}/resources/{resource}",
        "a",
        BOTH,
        True,
        200,
        lambda w: {"name": "renamed", "billingPlanId": "pro", "metadata": {"region": "fra1"}},
    ),
    Endpoint("delete-resource", "DELETE", "{a}/resources/{resource}", "a", BOTH, True, 204),
    Endpoint("resource-plans", "GET", "{a}/resources/{resource}/plans", "a", BOTH, False, 200),
    Endpoint(
        "rotate-secrets",
        "POST",
        "{a}/resources/{resource}/secrets/rotate",
        "a",
        BOTH,
        True,
        200,
        lambda w: {"reason": "leak", "delayOldSecretsExpirationHours": 1},
    ),
    Endpoint(
        "repl-write",
        "POST",
        "{a}/resources/{resource}/repl",
        "a",
        (USER,),
        True,
        200,
        lambda w: {"input": "set probe 1"},
    ),
    Endpoint(
        "repl-read",
        "POST",
        "{a}/resources/{resource}/repl",
        "a",
        (USER,),
        False,
        200,
        lambda w: {"input": "info", "readOnly": True},
    ),
    Endpoint(
        "billing-provision",
        "POST",
        "{a}/billing/provision",
        "a",
        BOTH,
        True,
        200,
        lambda w: {"invoiceId": w.invoice},
        no_vercel_call_for_the_invoice,
    ),
    Endpoint(
        "transfer-create",
        "POST",
        "{a}/resource-transfer-requests",
        "a",
        (SYSTEM,),
        True,
        200,
        lambda w: {"resourceIds": [w.resource], "expiresAt": in_one_hour_ms()},
        no_claim_was_created,
    ),
    Endpoint(
        "transfer-create-legacy-put",
        "PUT",
        "{a}/resource-transfer-requests/{legacy_claim}",
        "a",
        (SYSTEM,),
        True,
        204,
        lambda w: {"resourceIds": [w.resource], "expiration": int(time.time()) + 3600},
        no_legacy_claim_was_created,
    ),
    Endpoint(
        "transfer-verify",
        "GET",
        "{b}/resource-transfer-requests/{open_claim}/verify",
        "b",
        (SYSTEM,),
        False,
        200,
        None,
        open_claim_still_unverified,
    ),
    Endpoint(
        "transfer-verify-legacy-post",
        "POST",
        "{b}/resource-transfer-requests/{open_claim}/verify",
        "b",
        (SYSTEM,),
        False,
        200,
        None,
        open_claim_still_unverified,
    ),
    Endpoint(
        "transfer-accept",
        "POST",
        "{b}/resource-transfer-requests/{verified_claim}/accept",
        "b",
        (SYSTEM,),
        True,
        204,
        lambda w: {"targetInstallationId": w.b.id},
    ),
]


def endpoint_styles(predicate: Callable[[Endpoint, str], bool] = lambda e, s: True) -> list[Any]:
    return [pytest.param(e, s, id=f"{e.name}-{s}") for e in ENDPOINTS for s in e.styles if predicate(e, s)]


# ---------------------------------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------------------------------


def claims_for(kit: TokenKit, style: str, installation_id: str | None, role: str = "ADMIN", **overrides: Any) -> dict:
    if style == USER:
        return kit.user_claims(installation_id or new_installation_id(), role, **overrides)
    return kit.system_claims(installation_id, **overrides)


def good_token(kit: TokenKit, style: str, installation_id: str | None, role: str = "ADMIN") -> str:
    return kit.mint(claims_for(kit, style, installation_id, role))


def without(claims: dict, *names: str) -> dict:
    return {k: v for k, v in claims.items() if k not in names}


def tampered(kit: TokenKit, style: str, inst: str | None) -> str:
    """A real signature over other claims: the header and payload of one token, the signature of another."""
    signed = kit.mint(claims_for(kit, style, inst, role="USER"))
    wanted = kit.mint(claims_for(kit, style, inst, role="ADMIN", account_id="ffff"))
    head, payload, _ = wanted.split(".")
    return f"{head}.{payload}.{signed.split('.')[2]}"


def truncated_signature(kit: TokenKit, style: str, inst: str | None) -> str:
    head, payload, signature = kit.mint(claims_for(kit, style, inst)).split(".")
    return f"{head}.{payload}.{signature[: len(signature) // 2]}"


@functools.cache
def stranger() -> SigningKey:
    """A key the JWKS never serves (made once: generating RSA keys is slow)."""
    return SigningKey.generate(kid="stranger-" + uuid.uuid4().hex[:8])


def now() -> int:
    return int(time.time())


# A token (or a whole Authorization header) the server must refuse with 401.
# Each maker: (kit, style, installation id) -> the value after "Bearer ".
TokenMaker = Callable[[TokenKit, str, "str | None"], str]

BAD_TOKENS: dict[str, TokenMaker] = {
    "not-a-jwt": lambda kit, s, i: "not-a-jwt",
    "two-parts": lambda kit, s, i: ".".join(good_token(kit, s, i).split(".")[:2]),
    "bad-signature-other-key-same-kid": lambda kit, s, i: kit.mint(
        claims_for(kit, s, i), key=stranger(), kid=kit.key.kid
    ),
    "tampered-payload": tampered,
    "truncated-signature": truncated_signature,
    "empty-signature": lambda kit, s, i: good_token(kit, s, i).rsplit(".", 1)[0] + ".",
    "unknown-kid": lambda kit, s, i: kit.mint(claims_for(kit, s, i), key=stranger()),
    "no-kid": lambda kit, s, i: kit.mint(claims_for(kit, s, i), headers={"kid": OMIT}),
    "wrong-iss": lambda kit, s, i: kit.mint(claims_for(kit, s, i, iss="https://evil.example.com")),
    "iss-with-trailing-slash": lambda kit, s, i: kit.mint(claims_for(kit, s, i, iss=kit.issuer + "/")),
    "wrong-aud": lambda kit, s, i: kit.mint(claims_for(kit, s, i, aud="oac_another_integration")),
    "aud-list-without-us": lambda kit, s, i: kit.mint(claims_for(kit, s, i, aud=["oac_another_integration"])),
    "expired": lambda kit, s, i: kit.mint(claims_for(kit, s, i, iat=now() - 7200, exp=now() - 3600)),
    "nbf-in-future": lambda kit, s, i: kit.mint(claims_for(kit, s, i, nbf=now() + 3600)),
    "iat-in-future": lambda kit, s, i: kit.mint(claims_for(kit, s, i, iat=now() + 3600, exp=now() + 7200)),
    "exp-not-a-number": lambda kit, s, i: kit.mint(claims_for(kit, s, i, exp="tomorrow")),
    "alg-none": lambda kit, s, i: kit.mint(claims_for(kit, s, i), alg="none"),
    "alg-none-with-signature": lambda kit, s, i: good_token(kit, s, i).replace(
        good_token(kit, s, i).split(".")[0], b64url(b'{"alg":"none","typ":"JWT","kid":"' + kit.key.kid.encode() + b'"}')
    ),
    "hs256-keyed-with-public-key": lambda kit, s, i: kit.mint(claims_for(kit, s, i), alg="HS256"),
    "missing-iss": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "iss")),
    "missing-aud": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "aud")),
    "missing-exp": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "exp")),
    "missing-iat": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "iat")),
    "missing-sub": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "sub")),
    "missing-installation_id": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "installation_id")),
}
# user tokens only (auth.md 1.1): the person's claims and a role from the enum
BAD_USER_TOKENS: dict[str, TokenMaker] = {
    "missing-account_id": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "account_id")),
    "missing-user_id": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "user_id")),
    "missing-user_role": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "user_role")),
    "unknown-user_role": lambda kit, s, i: kit.mint(claims_for(kit, s, i, role="OWNER")),
    "system-shaped-sub": lambda kit, s, i: kit.mint(claims_for(kit, s, i, sub="account:abc123")),
}
# system tokens only (auth.md 1.2): account_id is required except on product plans
BAD_SYSTEM_TOKENS: dict[str, TokenMaker] = {
    "user-shaped-sub": lambda kit, s, i: kit.mint(claims_for(kit, s, i, sub="account:abc123:user:def456")),
}
ACCOUNT_ID_REQUIRED: dict[str, TokenMaker] = {
    "missing-account_id": lambda kit, s, i: kit.mint(without(claims_for(kit, s, i), "account_id")),
}

# Whole Authorization headers (None: no header at all); `good` is a valid token for the call.
BAD_HEADERS: dict[str, Callable[[str], str | None]] = {
    "no-header": lambda good: None,
    "empty-header": lambda good: "",
    "basic-scheme": lambda good: "Basic dXNlcjpwYXNzd29yZA==",
    "basic-scheme-with-token": lambda good: "Basic " + good,
    "token-without-scheme": lambda good: good,
    "bearer-alone": lambda good: "Bearer",
    "bearer-and-spaces": lambda good: "Bearer    ",
    "bearer-two-words": lambda good: "Bearer a b",
    "bearer-token-and-junk": lambda good: f"Bearer {good} {good}",
    "bearer-comma-list": lambda good: f"Bearer {good}, Bearer {good}",
    "huge-garbage": lambda good: "Bearer " + "a" * 12_000,
    "huge-over-token-limit": lambda good: "Bearer " + "a" * 20_000,
    "huge-jwt-shaped": lambda good: "Bearer " + good + "A" * 15_000,
}


def bad_token_cases() -> list[Any]:
    cases = []
    for e in ENDPOINTS:
        for style in e.styles:
            makers = dict(BAD_TOKENS)
            makers |= BAD_USER_TOKENS if style == USER else BAD_SYSTEM_TOKENS
            if style == SYSTEM and e.on is not None:
                makers |= ACCOUNT_ID_REQUIRED
            for name, maker in makers.items():
                if e.on is None and name == "missing-installation_id":
                    continue  # product plans: no installation to name
                cases.append(pytest.param(e, style, maker, id=f"{e.name}-{style}-{name}"))
    return cases


# ---------------------------------------------------------------------------------------------------------------
# assertions
# ---------------------------------------------------------------------------------------------------------------


def assert_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
    body = reply.json
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if status == 401:
        assert reply.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), reply.headers


async def assert_refused_and_unchanged(
    w: World, e: Endpoint, authorization: str | None, style: str | None, status: int, code: str
) -> Reply:
    before = w.last_seen or await w.snapshot()
    key = "probe-" + uuid.uuid4().hex if e.method != "GET" else None
    w.dirty = True  # until proven otherwise
    reply = await e.call(w, authorization, style, key=key)
    assert_error(reply, status, code)
    assert await w.snapshot() == before
    if e.unchanged is not None:
        w.last_seen = None  # these checks call the API with good tokens
        await e.unchanged(w, w.api, key)
    w.dirty = False
    return reply


# ---------------------------------------------------------------------------------------------------------------
# 401: no usable credentials
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
@pytest.mark.parametrize("e", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
async def test_missing_or_malformed_authorization_is_401(refusal_world: World, e: Endpoint, header: Callable) -> None:
    world = refusal_world
    good = good_token(world.kit, e.primary_style, e.installation(world))
    await assert_refused_and_unchanged(world, e, header(good), e.primary_style, 401, "unauthenticated")


@pytest.mark.parametrize(("e", "style", "maker"), bad_token_cases())
async def test_invalid_token_is_401(refusal_world: World, e: Endpoint, style: str, maker: TokenMaker) -> None:
    world = refusal_world
    token = maker(world.kit, style, e.installation(world))
    await assert_refused_and_unchanged(world, e, f"Bearer {token}", style, 401, "unauthenticated")


@pytest.mark.parametrize(("e", "style"), endpoint_styles())
@pytest.mark.parametrize("declared", ["other-style", "bogus", "user,system"])
async def test_x_vercel_auth_disagreeing_with_the_token_is_401(
    refusal_world: World, e: Endpoint, style: str, declared: str
) -> None:
    world = refusal_world
    header = {"other-style": SYSTEM if style == USER else USER}.get(declared, declared)
    token = good_token(world.kit, style, e.installation(world))
    await assert_refused_and_unchanged(world, e, f"Bearer {token}", header, 401, "unauthenticated")


# ---------------------------------------------------------------------------------------------------------------
# 403: a valid token that may not do this
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("e", "style"), endpoint_styles(lambda e, s: e.on is not None))
async def test_token_for_another_installation_is_403(refusal_world: World, e: Endpoint, style: str) -> None:
    world = refusal_world
    # a real, installed neighbour: the most likely confusion (Vercel's example never compares the two)
    other = world.b.id if e.on != "b" else world.a.id
    token = good_token(world.kit, style, other)
    await assert_refused_and_unchanged(world, e, f"Bearer {token}", style, 403, "forbidden")


@pytest.mark.parametrize(("e", "style"), endpoint_styles(lambda e, s: e.on is not None and s == SYSTEM))
async def test_system_token_without_installation_on_an_installation_is_403(
    refusal_world: World, e: Endpoint, style: str
) -> None:
    world = refusal_world
    token = good_token(world.kit, SYSTEM, None)
    await assert_refused_and_unchanged(world, e, f"Bearer {token}", SYSTEM, 403, "forbidden")


@pytest.mark.parametrize(("e", "style"), endpoint_styles(lambda e, s: e.mutation and s == USER))
async def test_user_role_on_a_mutation_is_403(refusal_world: World, e: Endpoint, style: str) -> None:
    world = refusal_world
    token = good_token(world.kit, USER, e.installation(world), role="USER")
    reply = await assert_refused_and_unchanged(world, e, f"Bearer {token}", USER, 403, "forbidden")
    assert reply.json["error"]["user"]["message"]  # something to show the person


def refused_styles() -> list[Any]:
    cases = []
    for e in ENDPOINTS:
        for style in sorted({USER, SYSTEM} - set(e.styles)):
            roles = ["ADMIN", "USER"] if style == USER else [None]
            for role in roles:
                label = f"{style}-{role}" if role else style
                cases.append(pytest.param(e, style, role, id=f"{e.name}-{label}"))
    return cases


@pytest.mark.parametrize(("e", "style", "role"), refused_styles())
async def test_auth_style_the_endpoint_refuses_is_403(
    refusal_world: World, e: Endpoint, style: str, role: str | None
) -> None:
    world = refusal_world
    token = good_token(world.kit, style, e.installation(world), role=role or "ADMIN")
    await assert_refused_and_unchanged(world, e, f"Bearer {token}", style, 403, "forbidden")


def test_the_refused_styles_table_is_not_empty() -> None:
    # system on user-only endpoints (upsert, provision, REPL), user on system-only ones (transfers)
    refused = {(p.values[0].name, p.values[1]) for p in refused_styles()}
    assert {
        ("upsert-installation", SYSTEM),
        ("provision-resource", SYSTEM),
        ("repl-write", SYSTEM),
        ("transfer-create", USER),
        ("transfer-verify", USER),
        ("transfer-accept", USER),
    } <= refused


# ---------------------------------------------------------------------------------------------------------------
# accepted: the control group (so the refusals above are refusals of *these* credentials)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("send_style", [True, False], ids=["x-vercel-auth-sent", "x-vercel-auth-absent"])
@pytest.mark.parametrize(("e", "style"), endpoint_styles())
async def test_good_token_is_accepted(world: World, e: Endpoint, style: str, send_style: bool) -> None:
    """Absent X-Vercel-Auth: the style comes from the signed claims."""
    token = good_token(world.kit, style, e.installation(world))
    reply = await e.call(world, f"Bearer {token}", style if send_style else None)
    assert reply.status == e.ok, (reply.status, reply.body[:300])


@pytest.mark.parametrize(("e", "style"), endpoint_styles(lambda e, s: not e.mutation and s == USER))
async def test_user_role_may_read(world: World, e: Endpoint, style: str) -> None:
    token = good_token(world.kit, USER, e.installation(world), role="USER")
    reply = await e.call(world, f"Bearer {token}", USER)
    assert reply.status == e.ok, (reply.status, reply.body[:300])


@pytest.mark.parametrize(
    "header",
    ["bearer {t}", "BEARER {t}", "Bearer  {t}", "Bearer {t} "],
    ids=["lower-case-scheme", "upper-case-scheme", "two-spaces", "trailing-space"],
)
async def test_bearer_scheme_is_case_insensitive(world: World, header: str) -> None:
    reply = await world.api.get(world.a.path, headers={"Authorization": header.format(t=world.a.system)}, style=SYSTEM)
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("declared", ["USER", "User", " user "])
async def test_x_vercel_auth_is_read_case_insensitively(world: World, declared: str) -> None:
    reply = await world.api.get(world.a.path, token=world.a.admin, style=declared)
    assert reply.status == 200, reply.body


@pytest.mark.parametrize(
    "claims",
    [
        {"account_id": OMIT, "installation_id": None},
        {"account_id": OMIT, "installation_id": None, "sub": None},
        {"installation_id": None},
    ],
    ids=["no-account-null-installation", "also-null-sub", "null-installation"],
)
async def test_product_plans_before_installation(world: World, claims: dict) -> None:
    """List Billing Plans For Product may come with the incomplete token of a team that has not installed."""
    omitted = [name for name, value in claims.items() if value is OMIT]
    kept = {name: value for name, value in claims.items() if value is not OMIT}
    token = world.kit.mint(without(world.kit.system_claims(None), *omitted) | kept)
    for style in (SYSTEM, None):
        reply = await world.api.get("/v1/products/acme-kv/plans", token=token, style=style)
        assert reply.status == 200, reply.body
        assert {p["id"] for p in reply.json["plans"]} >= {"free", "pro"}


async def test_product_plans_by_a_user_of_any_installation(world: World) -> None:
    token = world.kit.user_token(new_installation_id(), role="USER")
    reply = await world.api.get("/v1/products/acme-kv/plans", token=token, style=USER)
    assert reply.status == 200, reply.body


# ---------------------------------------------------------------------------------------------------------------
# key rotation: a new key is fetched without a restart; a withdrawn key stops working
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_keys(token_kit: TokenKit):
    """The session server shares the kit: put its signing key and JWKS back afterwards."""
    key, served = token_kit.key, list(token_kit.served)
    yield token_kit
    token_kit.key, token_kit.served = key, served


def fresh_claims(kit: TokenKit, style: str, installation_id: str) -> dict:
    # a jti makes every token distinct, so no verified-token cache can answer for it
    return {**claims_for(kit, style, installation_id), "jti": uuid.uuid4().hex}


async def test_rotation_keeping_the_old_key(world: World, restore_keys: TokenKit) -> None:
    kit = restore_keys
    old = kit.key
    new = kit.rotate(keep_old=True)
    assert new.kid != old.kid
    for key in (new, old):
        token = kit.mint(fresh_claims(kit, SYSTEM, world.a.id), key=key)
        reply = await world.api.get(world.a.path, token=token, style=SYSTEM)
        assert reply.status == 200, (key.kid, reply.body)
    # a mutation with the new key works too
    token = kit.mint(fresh_claims(kit, USER, world.a.id), key=new)
    reply = await world.api.patch(
        f"{world.a.path}/resources/{world.resource}", token=token, style=USER, body={"name": "rotated"}
    )
    assert reply.status == 200, reply.body
    assert reply.json["name"] == "rotated"


async def test_rotation_withdrawing_the_old_key(world: World, restore_keys: TokenKit) -> None:
    kit = restore_keys
    old = kit.key
    new = kit.rotate(keep_old=False)
    token = kit.mint(fresh_claims(kit, SYSTEM, world.a.id), key=new)
    assert (await world.api.get(world.a.path, token=token, style=SYSTEM)).status == 200
    # the JWKS no longer lists the old key, and the server has seen that list: a new token signed with it fails
    stale = kit.mint(fresh_claims(kit, USER, world.a.id), key=old)
    before = await world.snapshot()
    reply = await world.api.patch(
        f"{world.a.path}/resources/{world.resource}", token=stale, style=USER, body={"name": "stale"}
    )
    assert_error(reply, 401, "unauthenticated")
    assert await world.snapshot() == before


async def test_keys_come_back_after_a_rotation_test(world: World) -> None:
    """Runs after the rotation tests (file order): the restored key signs accepted tokens again."""
    reply = await world.api.get(world.a.path, token=world.a.system, style=SYSTEM)
    assert reply.status == 200, reply.body
