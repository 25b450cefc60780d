"""Mint Vercel-shaped OIDC tokens and serve their JWKS from a real local aiohttp server.

    async with TokenKit() as kit:
        verifier = JwksTokenVerifier(jwks_url=kit.jwks_url, issuer=kit.issuer, audience=kit.audience)
        caller = await verifier.verify(kit.user_token("icfg_1"))

`mint` builds tokens by hand (header, claims, signature) so it can also make the bad ones a verifier must
refuse: `alg: none`, HS256 keyed with the public key PEM, unknown kid, a key the JWKS doesn't serve.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://marketplace.vercel.com"
AUDIENCE = "oac_test_client"
ACCOUNT_ID = "abc123"
USER_ID = "def456"
LIFETIME_SECONDS = 600
JWKS_PATH = "/.well-known/jwks"


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Pass as a claim or header override to leave that field out: `kit.user_token("icfg_1", user_id=OMIT)`."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None, bits: int = 2048) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(kid or f"test-{uuid.uuid4().hex[:12]}", key)

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()

        def encode(n: int) -> str:
            return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": encode(numbers.n), "e": encode(numbers.e)}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_rs256(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


class TokenKit:
    """Test RSA keys, a JWKS server on 127.0.0.1 and token minting. Not thread-safe; one per test is cheap."""

    def __init__(
        self, *, issuer: str = ISSUER, audience: str = AUDIENCE, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.clock = clock  # default iat/exp come from here
        self.key = SigningKey.generate()  # the key tokens are signed with
        self.served: list[SigningKey] = [self.key]  # the keys the JWKS lists
        self.extra_jwks: list[dict[str, Any]] = []  # raw extra entries appended to the JWKS (junk, EC keys...)
        self.fail = False  # True: the JWKS answers 500
        self.fetch_count = 0  # JWKS requests received, failed ones included
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- the JWKS server ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(JWKS_PATH, self._serve_jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}{JWKS_PATH}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TokenKit:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def jwks_url(self) -> str:
        if self._url is None:
            raise RuntimeError("TokenKit.start() first")
        return self._url

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.served] + self.extra_jwks}

    async def _serve_jwks(self, request: web.Request) -> web.Response:
        self.fetch_count += 1
        if self.fail:
            return web.json_response({"error": "unavailable"}, status=500)
        return web.json_response(self.jwks())

    def rotate(self, *, keep_old: bool = False) -> SigningKey:
        """Sign with a fresh key from now on; the JWKS serves it (and the old ones if `keep_old`)."""
        self.key = SigningKey.generate()
        self.served = [self.key, *self.served] if keep_old else [self.key]
        return self.key

    # --- claims and tokens ----------------------------------------------------------------------------

    def user_claims(self, installation_id: str, role: str = "ADMIN", **overrides: Any) -> dict[str, Any]:
        """The user-authentication claim set of auth.md 1.1."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "type": "access_token",
            "sub": f"account:{ACCOUNT_ID}:user:{USER_ID}",
            "account_id": ACCOUNT_ID,
            "installation_id": installation_id,
            "user_id": USER_ID,
            "user_role": role,
            "user_email": "ada@example.com",
            "user_name": "Ada Lovelace",
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
        }
        return _apply(claims, overrides)

    def system_claims(self, installation_id: str | None, **overrides: Any) -> dict[str, Any]:
        """The system-authentication claim set of auth.md 1.2 (installation_id may be None)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "type": "access_token",
            "sub": f"account:{ACCOUNT_ID}",
            "account_id": ACCOUNT_ID,
            "installation_id": installation_id,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
        }
        return _apply(claims, overrides)

    def user_token(self, installation_id: str, role: str = "ADMIN", **overrides: Any) -> str:
        return self.mint(self.user_claims(installation_id, role, **overrides))

    def system_token(self, installation_id: str | None, **overrides: Any) -> str:
        return self.mint(self.system_claims(installation_id, **overrides))

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A compact JWS over `claims`, as is: no defaults added.

        `key` signs (default: the current key); `kid` overrides the header's key id (default: the key's);
        `alg` is "RS256", "none" (empty signature) or "HS256" (HMAC keyed with the key's public PEM: the
        algorithm-confusion attack); `headers` adds or, with OMIT, removes header fields.
        """
        key = key or self.key
        header = _apply({"alg": alg, "typ": "JWT", "kid": kid or key.kid}, headers or {})
        signing_input = f"{_json_part(header)}.{_json_part(claims)}".encode("ascii")
        match alg:
            case "RS256":
                signature = key.sign_rs256(signing_input)
            case "none":
                signature = b""
            case "HS256":
                signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
            case _:
                raise ValueError(f"TokenKit cannot mint alg {alg!r}")
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for name, value in overrides.items():
        if value is OMIT:
            result.pop(name, None)
        else:
            result[name] = value
    return result
