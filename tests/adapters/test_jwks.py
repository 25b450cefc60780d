"""JwksTokenVerifier against a real local JWKS server (TokenKit) and a clock the tests move by hand."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from marketplace_provider.adapters.jwks import JwksTokenVerifier
from marketplace_provider.adapters.simulator.tokens import ACCOUNT_ID, OMIT, USER_ID, SigningKey, TokenKit
from marketplace_provider.domain.errors import Unauthenticated, Unavailable
from marketplace_provider.domain.roles import AuthStyle, Caller, Role

LEEWAY = 30
INTERVAL = 10


class FakeClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def kit(clock: FakeClock) -> AsyncIterator[TokenKit]:
    async with TokenKit(clock=clock) as kit:
        yield kit


def make_verifier(kit: TokenKit, clock: FakeClock, **kw: Any) -> JwksTokenVerifier:
    options: dict[str, Any] = {"leeway_seconds": LEEWAY, "refetch_interval_seconds": INTERVAL, "clock": clock}
    options.update(kw)
    return JwksTokenVerifier(jwks_url=kit.jwks_url, issuer=kit.issuer, audience=kit.audience, **options)


@pytest.fixture
async def verifier(kit: TokenKit, clock: FakeClock) -> AsyncIterator[JwksTokenVerifier]:
    verifier = make_verifier(kit, clock)
    yield verifier
    await verifier.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- accepted tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.USER])
async def test_user_token_maps_to_a_user_caller(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock, role: Role
) -> None:
    caller = await verifier.verify(kit.user_token("icfg_1", role=role.value))

    assert caller == Caller(
        style=AuthStyle.USER,
        account_id=ACCOUNT_ID,
        installation_id="icfg_1",
        subject=f"account:{ACCOUNT_ID}:user:{USER_ID}",
        user_id=USER_ID,
        role=role,
        email="ada@example.com",
        name="Ada Lovelace",
        expires_at=int(clock.now) + 600,
    )


async def test_user_token_without_optional_claims(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    caller = await verifier.verify(kit.user_token("icfg_1", user_email=OMIT, user_name=OMIT, type=OMIT))

    assert (caller.email, caller.name, caller.style) == (None, None, AuthStyle.USER)


async def test_system_token_maps_to_a_system_caller(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    caller = await verifier.verify(kit.system_token("icfg_1"))

    assert caller == Caller(
        style=AuthStyle.SYSTEM,
        account_id=ACCOUNT_ID,
        installation_id="icfg_1",
        subject=f"account:{ACCOUNT_ID}",
        expires_at=int(clock.now) + 600,
    )


async def test_system_token_with_null_installation(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    caller = await verifier.verify(kit.system_token(None))

    assert caller.style is AuthStyle.SYSTEM
    assert caller.installation_id is None
    assert caller.account_id == ACCOUNT_ID


async def test_system_token_without_account_id(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    caller = await verifier.verify(kit.system_token(None, account_id=OMIT))

    assert caller.style is AuthStyle.SYSTEM
    assert caller.account_id is None


async def test_system_token_with_null_sub(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    caller = await verifier.verify(kit.system_token("icfg_1", sub=None))

    assert caller.subject is None


async def test_clock_skew_within_leeway_is_accepted(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    now = int(clock.now)
    late = kit.user_token("icfg_1", iat=now - 700, exp=now - LEEWAY + 5)
    early = kit.user_token("icfg_1", iat=now + LEEWAY - 5, nbf=now + LEEWAY - 5)

    assert (await verifier.verify(late)).installation_id == "icfg_1"
    assert (await verifier.verify(early)).installation_id == "icfg_1"


# --- refused tokens -------------------------------------------------------------------------------------


def _tampered(kit: TokenKit) -> str:
    header, _, signature = kit.user_token("icfg_1").split(".")
    _, other_claims, _ = kit.user_token("icfg_2").split(".")
    return f"{header}.{other_claims}.{signature}"


def _now(kit: TokenKit) -> int:
    return int(kit.clock())


BAD_TOKENS: dict[str, Callable[[TokenKit], str]] = {
    "payload swapped under a signature": _tampered,
    "signed by another key under a served kid": lambda kit: kit.mint(
        kit.user_claims("icfg_1"), key=SigningKey.generate(), kid=kit.key.kid
    ),
    "signed by a key never served": lambda kit: kit.mint(kit.user_claims("icfg_1"), key=SigningKey.generate()),
    "wrong iss": lambda kit: kit.user_token("icfg_1", iss="https://evil.example"),
    "wrong aud": lambda kit: kit.user_token("icfg_1", aud="oac_someone_else"),
    "expired": lambda kit: kit.user_token("icfg_1", iat=_now(kit) - 700, exp=_now(kit) - LEEWAY - 1),
    "nbf in the future": lambda kit: kit.user_token("icfg_1", nbf=_now(kit) + LEEWAY + 60),
    "iat in the future": lambda kit: kit.user_token("icfg_1", iat=_now(kit) + LEEWAY + 60),
    "exp not a number": lambda kit: kit.user_token("icfg_1", exp="tomorrow"),
    "alg none": lambda kit: kit.mint(kit.user_claims("icfg_1"), alg="none"),
    "HS256 keyed with the public key": lambda kit: kit.mint(kit.user_claims("icfg_1"), alg="HS256"),
    "no kid": lambda kit: kit.mint(kit.user_claims("icfg_1"), headers={"kid": OMIT}),
    "missing iss": lambda kit: kit.user_token("icfg_1", iss=OMIT),
    "missing aud": lambda kit: kit.user_token("icfg_1", aud=OMIT),
    "missing exp": lambda kit: kit.user_token("icfg_1", exp=OMIT),
    "missing iat": lambda kit: kit.user_token("icfg_1", iat=OMIT),
    "missing sub": lambda kit: kit.system_token("icfg_1", sub=OMIT),
    "user token missing user_id": lambda kit: kit.user_token("icfg_1", user_id=OMIT),
    "user token missing user_role": lambda kit: kit.user_token("icfg_1", user_role=OMIT),
    "user token missing account_id": lambda kit: kit.user_token("icfg_1", account_id=OMIT),
    "user token with null installation_id": lambda kit: kit.mint({**kit.user_claims("icfg_1"), "installation_id": None}),
    "system token with numeric installation_id": lambda kit: kit.mint({**kit.system_claims("icfg_1"), "installation_id": 7}),
    "unknown user_role": lambda kit: kit.user_token("icfg_1", role="OWNER"),
    "garbage": lambda kit: "not-a-jwt",
    "empty": lambda kit: "",
    "three dots of nothing": lambda kit: "a.b.c",
    "header not json": lambda kit: "eyJub3QganNvbg.e30.c2ln",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_tokens_are_refused(kit: TokenKit, verifier: JwksTokenVerifier, case: str) -> None:
    await verifier.verify(kit.user_token("icfg_1"))  # the JWKS is known: refusals are not Unavailable
    token = BAD_TOKENS[case](kit)

    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)

    message = str(caught.value)
    assert message and len(message) < 100
    for part in token.split("."):
        assert len(part) < 8 or part not in message


async def test_bad_tokens_are_refused_on_a_cold_verifier_too(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(kit.mint(kit.user_claims("icfg_1"), alg="none"))
    assert kit.fetch_count == 0  # refused on the header alone


async def test_unusable_keys_in_the_jwks_are_skipped(kit: TokenKit, verifier: JwksTokenVerifier) -> None:
    weak = SigningKey.generate(kid="weak", bits=1024)
    kit.extra_jwks = [
        "not an object",
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {**SigningKey.generate(kid="enc").public_jwk(), "use": "enc"},
        {**SigningKey.generate(kid="ps").public_jwk(), "alg": "PS256"},
        weak.public_jwk(),
    ]

    assert (await verifier.verify(kit.user_token("icfg_1"))).installation_id == "icfg_1"
    with pytest.raises(Unauthenticated):
        await verifier.verify(kit.mint(kit.user_claims("icfg_1"), key=weak))


# --- keys: lazy fetch, rotation, rate limit, outages ----------------------------------------------------


async def test_keys_are_fetched_lazily_and_once(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock)
    assert kit.fetch_count == 0
    try:
        await asyncio.gather(*(verifier.verify(kit.user_token(f"icfg_{i}")) for i in range(20)))
    finally:
        await verifier.close()

    assert kit.fetch_count == 1


async def test_rotation_is_picked_up_without_a_restart(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    await verifier.verify(kit.user_token("icfg_1"))
    old = kit.key
    kit.rotate()
    clock.advance(INTERVAL + 1)

    caller = await verifier.verify(kit.user_token("icfg_2"))

    assert caller.installation_id == "icfg_2"
    assert kit.fetch_count == 2
    with pytest.raises(Unauthenticated):  # the old key left the JWKS: it no longer signs
        await verifier.verify(kit.mint(kit.user_claims("icfg_3"), key=old))


async def test_rotation_keeping_the_old_key(kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock) -> None:
    await verifier.verify(kit.user_token("icfg_1"))
    old = kit.key
    kit.rotate(keep_old=True)
    clock.advance(INTERVAL + 1)

    await verifier.verify(kit.user_token("icfg_2"))
    caller = await verifier.verify(kit.mint(kit.user_claims("icfg_3"), key=old))

    assert caller.installation_id == "icfg_3"


async def test_unknown_kids_refetch_at_most_once_per_interval(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    await verifier.verify(kit.user_token("icfg_1"))
    clock.advance(INTERVAL + 1)
    strangers = [kit.mint(kit.user_claims("icfg_1"), key=SigningKey.generate()) for _ in range(3)]
    tokens = [strangers[i % 3] + "" for i in range(30)]

    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results)
    assert kit.fetch_count == 2

    clock.advance(INTERVAL - 2)  # still inside the interval since the refetch
    for token in strangers:
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)
    assert kit.fetch_count == 2

    clock.advance(3)
    with pytest.raises(Unauthenticated):
        await verifier.verify(strangers[0])
    assert kit.fetch_count == 3


async def test_failing_jwks_then_recovery(kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock) -> None:
    kit.fail = True
    token = kit.user_token("icfg_1")

    with pytest.raises(Unavailable, match="signing keys"):
        await verifier.verify(token)
    with pytest.raises(Unavailable):  # within the interval: no new request to a failing JWKS
        await verifier.verify(token)
    assert kit.fetch_count == 1

    kit.fail = False
    clock.advance(INTERVAL + 1)
    assert (await verifier.verify(token)).installation_id == "icfg_1"
    assert kit.fetch_count == 2


async def test_unreachable_jwks_is_unavailable(kit: TokenKit, clock: FakeClock) -> None:
    verifier = JwksTokenVerifier(
        jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks",
        issuer=kit.issuer,
        audience=kit.audience,
        clock=clock,
    )
    try:
        with pytest.raises(Unavailable):
            await verifier.verify(kit.user_token("icfg_1"))
    finally:
        await verifier.close()


async def test_a_failed_refetch_keeps_the_known_keys(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    await verifier.verify(kit.user_token("icfg_1"))
    kit.fail = True
    clock.advance(INTERVAL + 1)

    with pytest.raises(Unauthenticated):
        await verifier.verify(kit.mint(kit.user_claims("icfg_1"), key=SigningKey.generate()))
    assert kit.fetch_count == 2
    assert (await verifier.verify(kit.user_token("icfg_2"))).installation_id == "icfg_2"


# --- the cache of verified callers ----------------------------------------------------------------------


async def test_a_verified_token_is_served_from_the_cache(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    token = kit.user_token("icfg_1")
    first = await verifier.verify(token)
    kit.rotate()  # the signing key is gone from the JWKS...
    clock.advance(INTERVAL + 1)

    assert await verifier.verify(token) is first  # ...but the cached caller needs no key
    assert kit.fetch_count == 1


async def test_an_expired_cached_token_is_refused(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    token = kit.user_token("icfg_1")
    await verifier.verify(token)

    clock.advance(600 + 1)  # past exp, inside the leeway: verified afresh, still accepted
    assert (await verifier.verify(token)).installation_id == "icfg_1"
    clock.advance(LEEWAY)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_the_cache_is_bounded(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock, cache_size=2)
    tokens = [kit.user_token(f"icfg_{i}") for i in range(3)]
    try:
        callers = [await verifier.verify(token) for token in tokens]  # the third evicts the first

        assert await verifier.verify(tokens[2]) is callers[2]  # still cached: the same object
        again = await verifier.verify(tokens[0])  # verified afresh: a new, equal object
        assert again is not callers[0] and again == callers[0]
        assert await verifier.verify(tokens[2]) is callers[2]
        assert await verifier.verify(tokens[1]) is not callers[1]  # evicted when tokens[0] came back
    finally:
        await verifier.close()


async def test_cached_tokens_stop_working_once_a_refetch_no_longer_holds_their_key(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    cached = [kit.user_token(f"icfg_{i}") for i in range(3)]
    for token in cached:
        await verifier.verify(token)
    kit.rotate()  # the old key leaves the JWKS
    clock.advance(INTERVAL + 1)
    await verifier.verify(kit.user_token("icfg_new"))  # an unknown kid: the refetch sees the old key gone
    assert kit.fetch_count == 2

    for token in cached:
        with pytest.raises(Unauthenticated, match="unknown key"):
            await verifier.verify(token)


async def test_cached_tokens_survive_a_refetch_that_keeps_their_key(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock
) -> None:
    token = kit.user_token("icfg_1")
    first = await verifier.verify(token)
    kit.rotate(keep_old=True)
    clock.advance(INTERVAL + 1)
    await verifier.verify(kit.user_token("icfg_new"))
    assert kit.fetch_count == 2

    assert await verifier.verify(token) is first


async def test_a_cache_hit_on_stale_keys_refetches_so_a_withdrawn_key_stops_working(
    kit: TokenKit, clock: FakeClock
) -> None:
    verifier = make_verifier(kit, clock, keys_max_age_seconds=60)
    try:
        token = kit.user_token("icfg_1")  # valid for 600 s
        first = await verifier.verify(token)
        assert await verifier.verify(token) is first
        kit.rotate()
        clock.advance(61)  # the keys are stale; the token has not expired

        with pytest.raises(Unauthenticated):
            await verifier.verify(token)
        assert kit.fetch_count == 2
    finally:
        await verifier.close()


async def test_a_cache_hit_on_stale_keys_is_served_while_the_jwks_is_down(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock, keys_max_age_seconds=60)
    try:
        token = kit.user_token("icfg_1")
        first = await verifier.verify(token)
        kit.fail = True
        clock.advance(61)

        assert await verifier.verify(token) is first  # the failed refetch kept the keys
        assert await verifier.verify(token) is first
        assert kit.fetch_count == 2  # one failed refetch, then the rate limit
    finally:
        await verifier.close()


async def test_stale_keys_are_refetched_so_a_withdrawn_key_stops_working(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock, keys_max_age_seconds=3600)
    old = kit.key
    try:
        await verifier.verify(kit.user_token("icfg_1"))
        kit.rotate()
        clock.advance(1800)
        assert (await verifier.verify(kit.mint(kit.user_claims("icfg_2"), key=old))).installation_id == "icfg_2"
        assert kit.fetch_count == 1

        clock.advance(1801)
        with pytest.raises(Unauthenticated):
            await verifier.verify(kit.mint(kit.user_claims("icfg_3"), key=old))
        assert kit.fetch_count == 2
    finally:
        await verifier.close()


async def test_stale_keys_still_verify_while_the_jwks_is_down(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock, keys_max_age_seconds=3600)
    try:
        await verifier.verify(kit.user_token("icfg_1"))
        kit.fail = True
        clock.advance(4000)

        assert (await verifier.verify(kit.user_token("icfg_2"))).installation_id == "icfg_2"
        assert (await verifier.verify(kit.user_token("icfg_3"))).installation_id == "icfg_3"
        assert kit.fetch_count == 2  # one failed refetch, then the rate limit
    finally:
        await verifier.close()


async def test_tokens_never_reach_the_log(
    kit: TokenKit, verifier: JwksTokenVerifier, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = kit.user_token("icfg_1"), kit.user_token("icfg_1", aud="nope")
    kit.fail = True
    with pytest.raises(Unavailable):
        await verifier.verify(good)
    kit.fail = False
    clock.advance(INTERVAL + 1)
    await verifier.verify(good)
    with pytest.raises(Unauthenticated):
        await verifier.verify(bad)

    for token in (good, bad):
        assert token.split(".")[2] not in caplog.text


async def test_close_is_idempotent(kit: TokenKit, clock: FakeClock) -> None:
    verifier = make_verifier(kit, clock)
    await verifier.close()  # never opened
    await verifier.verify(kit.user_token("icfg_1"))
    await verifier.close()
    await verifier.close()
