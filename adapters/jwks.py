"""Vercel's OIDC bearer tokens, verified against the JWKS Vercel publishes (auth.md section 1).

The JWKS is fetched with aiohttp, lazily on the first token (the server starts while it is unreachable), and
again when a token names a key we don't know (key rotation) or the keys are older than `keys_max_age_seconds`
(a withdrawn key stops working), at most once per `refetch_interval_seconds`; a failed refetch keeps the keys.
A cached token is served only while the key that verified it is still in the JWKS: a refetch without that key
drops it, and a cache hit on stale keys refetches first, so a withdrawn key stops working for cached tokens too.
Signatures and iss/aud go through pyjwt with RS256 pinned; time claims are checked against the injected
clock, the same clock that ages the cache of verified callers. A raw token is never logged or kept: the
cache is keyed by its SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

from marketplace_provider.adapters.metrics import JWKS_FETCH_FAILED, JWKS_FETCHED, TOKEN_CACHE_HITS, TOKEN_CACHE_MISSES
from marketplace_provider.domain.errors import Unauthenticated, Unavailable
from marketplace_provider.domain.roles import AuthStyle, Caller, Role

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1_000_000
USER_SUBJECT = re.compile(r"account:[0-9a-fA-F]+:user:[0-9a-fA-F]+")
SYSTEM_SUBJECT = re.compile(r"account:[0-9a-fA-F]+")
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat"]  # `sub` too, but it may be null: checked by hand


class JwksTokenVerifier:
    """`ports.tokens.TokenVerifier` for Vercel Marketplace tokens. Owns its HTTP session: call `close()`."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30,
        refetch_interval_seconds: float = 10,
        keys_max_age_seconds: float = 3600,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._refetch_interval = refetch_interval_seconds
        self._keys_max_age = keys_max_age_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._session_factory = session_factory or aiohttp.ClientSession
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last attempt, successful or not
        self._loaded_at = 0.0  # last successful fetch
        self._fetch_lock = asyncio.Lock()
        self._callers: dict[bytes, tuple[str, Caller]] = {}  # sha256(token) -> (kid, caller), oldest first

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, raw_token: str) -> Caller:
        digest = hashlib.sha256(raw_token.encode("utf-8", "surrogatepass")).digest()
        cached = self._callers.get(digest)
        if cached is not None:
            kid, caller = cached
            now = self._clock()
            if now - self._loaded_at > self._keys_max_age and not self._fetch_lock.locked():
                await self._refresh()
            # a refetch drops the tokens of withdrawn keys; checking the kid here keeps that true in any order
            if now < caller.expires_at and kid in self._keys:
                TOKEN_CACHE_HITS.inc()
                return caller
            self._callers.pop(digest, None)
        TOKEN_CACHE_MISSES.inc()
        kid, caller = await self._verify(raw_token)
        self._remember(digest, kid, caller)
        return caller

    # --- verification ---------------------------------------------------------------------------------

    async def _verify(self, raw_token: str) -> tuple[str, Caller]:
        """The caller the token stands for, with the id of the key that verified it."""
        try:
            header = jwt.get_unverified_header(raw_token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"the token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key (kid)")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                raw_token,
                key=key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={
                    "require": REQUIRED_CLAIMS,
                    # time claims are checked below against our clock; sub may be null for system tokens
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_sub": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        self._check_times(claims)
        return kid, self._caller(claims)

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        if not _is_number(exp) or not _is_number(iat) or (nbf is not None and not _is_number(nbf)):
            raise Unauthenticated("the token's exp, iat and nbf must be numbers")
        if exp <= now - self._leeway:
            raise Unauthenticated("the token has expired")
        if nbf is not None and nbf > now + self._leeway:
            raise Unauthenticated("the token is not valid yet (nbf)")
        if iat > now + self._leeway:
            raise Unauthenticated("the token was issued in the future (iat)")

    def _caller(self, claims: dict[str, Any]) -> Caller:
        if "sub" not in claims:
            raise Unauthenticated("the token lacks the sub claim")
        subject = _optional_str(claims, "sub")
        expires_at = int(claims["exp"])
        if "user_role" in claims or "user_id" in claims:
            if subject is None or not USER_SUBJECT.fullmatch(subject):
                raise Unauthenticated("the token's sub is not a user subject")
            user_id = _required_str(claims, "user_id")
            role_value = _required_str(claims, "user_role")
            try:
                role = Role(role_value)
            except ValueError:
                raise Unauthenticated("the token's user_role is not ADMIN or USER") from None
            return Caller(
                style=AuthStyle.USER,
                account_id=_required_str(claims, "account_id"),
                installation_id=_required_str(claims, "installation_id"),
                subject=subject,
                user_id=user_id,
                role=role,
                email=_optional_str(claims, "user_email"),
                name=_optional_str(claims, "user_name"),
                expires_at=expires_at,
            )
        if subject is not None and not SYSTEM_SUBJECT.fullmatch(subject):
            raise Unauthenticated("the token's sub is not an account subject")
        if "installation_id" not in claims:  # the key is required, its value may be null
            raise Unauthenticated("the token lacks the installation_id claim")
        # System token: installation_id is null before install, account_id absent on the "incomplete"
        # token of List Billing Plans For Product (auth.md 1.2); the endpoints decide what they need.
        return Caller(
            style=AuthStyle.SYSTEM,
            account_id=_optional_str(claims, "account_id"),
            installation_id=_optional_str(claims, "installation_id"),
            subject=subject,
            expires_at=expires_at,
        )

    def _remember(self, digest: bytes, kid: str, caller: Caller) -> None:
        if self._cache_size <= 0:
            return
        while len(self._callers) >= self._cache_size:
            del self._callers[next(iter(self._callers))]
        self._callers[digest] = (kid, caller)

    def _forget_tokens_of(self, withdrawn: set[str]) -> None:
        """Drop the cached tokens that keys no longer in the JWKS verified (they would fail verification now)."""
        kept = {digest: entry for digest, entry in self._callers.items() if entry[0] not in withdrawn}
        if len(kept) < len(self._callers):
            dropped = len(self._callers) - len(kept)
            log.info("JWKS withdrew %d key(s): %d cached token(s) dropped", len(withdrawn), dropped)
        self._callers = kept

    # --- keys -----------------------------------------------------------------------------------------

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        stale = self._clock() - self._loaded_at > self._keys_max_age
        if key is None or (stale and not self._fetch_lock.locked()):
            # unknown kid: maybe a rotation. Stale keys: a key Vercel withdrew must stop working, but
            # requests holding a known key don't queue behind a refresh someone else is already doing.
            await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise Unavailable("cannot fetch Vercel's signing keys")
        raise Unauthenticated("the token was signed with an unknown key")

    async def _refresh(self) -> None:
        """Fetch the JWKS unless an attempt was made within the refetch interval.

        Callers queue on the lock, so concurrent requests share one fetch: whoever gets the lock after it
        sees the fresh attempt time and returns at once.
        """
        async with self._fetch_lock:
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self._refetch_interval:
                return
            self._fetched_at = now
            try:
                keys = await self._fetch()
            except Unavailable as exc:
                JWKS_FETCH_FAILED.inc()
                log.warning("JWKS refresh failed (%s); keeping %d known key(s)", exc.message, len(self._keys))
                return
            JWKS_FETCHED.inc()
            withdrawn = self._keys.keys() - keys.keys()
            self._keys, self._loaded_at = keys, now
            if withdrawn:
                self._forget_tokens_of(withdrawn)

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        try:
            async with self._client().get(self._jwks_url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise Unavailable(f"the JWKS answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise Unavailable("the JWKS is too large")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"the JWKS did not answer ({type(exc).__name__})") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise Unavailable("the JWKS is not JSON") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise Unavailable("the JWKS has no 'keys' list")
        keys = {}
        for entry in entries:
            parsed = _usable_key(entry)
            if parsed is not None:
                keys[entry["kid"]] = parsed
        if not keys:
            raise Unavailable("the JWKS holds no usable RS256 key")
        log.info("JWKS loaded: %d usable key(s) of %d", len(keys), len(entries))
        return keys

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session


def _usable_key(entry: object) -> jwt.PyJWK | None:
    """An RS256 signing key from one JWKS entry, or None for anything else (other types, encryption keys)."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if (
        not isinstance(kid, str)
        or not kid
        or entry.get("kty") != "RSA"
        or entry.get("use", "sig") != "sig"
        or entry.get("alg", ALGORITHM) != ALGORITHM
    ):
        return None
    try:
        key = jwt.PyJWK(entry, algorithm=ALGORITHM)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if getattr(key.key, "key_size", 0) < MIN_RSA_BITS or hasattr(key.key, "private_numbers"):
        return None  # too weak, or a private key published by mistake
    return key


def _reason(exc: jwt.PyJWTError) -> str:
    """A short reason for a refused token; pyjwt's own messages are not passed on."""
    match exc:
        case jwt.InvalidSignatureError():
            return "the token's signature is invalid"
        case jwt.InvalidIssuerError():
            return "the token was not issued by Vercel"
        case jwt.InvalidAudienceError():
            return "the token was issued for another integration"
        case jwt.MissingRequiredClaimError():
            return f"the token lacks the {exc.claim} claim"
        case jwt.InvalidAlgorithmError():
            return f"the token must be signed with {ALGORITHM}"
        case jwt.DecodeError():
            return "the bearer token is not a well-formed JWT"
        case _:
            return "the token is invalid"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _required_str(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise Unauthenticated(f"the token lacks the {name} claim")
    return value


def _optional_str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise Unauthenticated(f"the token's {name} claim must be a string")
    return value
