"""Mint Vercel-shaped OIDC tokens and serve their JWKS from a real aiohttp server on 127.0.0.1.

    async with TokenKit() as kit:
        verifier = JwksTokenVerifier(jwks_url=kit.jwks_url, issuer=kit.issuer, audience=kit.audience)
        caller = await verifier.verify(kit.user_token("icfg_1"))

Valid tokens are signed by pyjwt. `mint` also makes the forged ones a verifier must refuse (`alg: none`, HS256
keyed with the public key PEM, a header without `alg`): those are assembled by hand, on purpose, because no
JWT library will produce them. The simulator serves the same JWKS from its own app (`serve_on`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

ISSUER = "https://marketplace.vercel.com"
AUDIENCE = "oac_test_client"
ACCOUNT_ID = "abc123"
USER_ID = "def456"
LIFETIME_SECONDS = 600
JWKS_PATH = "/.well-known/jwks"

__all__ = [
    "ACCOUNT_ID", "AUDIENCE", "ISSUER", "JWKS_PATH", "LIFETIME_SECONDS", "OMIT", "USER_ID", "SigningKey", "TokenKit",
    "b64url",
]


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Pass as a claim or header override to leave that field out: `kit.user_token("icfg_1", user_id=OMIT)`."""


def b64url(data: bytes) -> str:
    """Unpadded base64url, for tests and forgeries that assemble token parts themselves."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None, bits: int = 2048) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(kid or f"test-{uuid.uuid4().hex[:12]}", key)

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """A key kept as PKCS#8 PEM (`private_pem`); its kid comes from the public key, so it is stable too."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls("sim-" + hashlib.sha256(public).hexdigest()[:16], key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_jwk(self) -> dict[str, str]:
        jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": jwk["n"], "e": jwk["e"]}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


class TokenKit:
    """RSA keys, their JWKS and token minting. Not thread-safe; one per test is cheap."""

    def __init__(
        self,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        clock: Callable[[], float] = time.time,
        key: SigningKey | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.clock = clock  # default iat/exp come from here
        self.key = key or SigningKey.generate()  # the key tokens are signed with
        self.served: list[SigningKey] = [self.key]  # the keys the JWKS lists
        self.extra_jwks: list[dict[str, Any]] = []  # raw extra entries appended to the JWKS (junk, EC keys...)
        self.fail = False  # True: the JWKS answers 500
        self.fetch_count = 0  # JWKS requests received, failed ones included
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- the JWKS server ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the JWKS from a server of its own."""
        app = web.Application()
        self.serve_on(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.served_at(f"http://{host}:{port}")

    def serve_on(self, app: web.Application) -> None:
        """Add the JWKS route to another app; call `served_at(base_url)` once that app listens."""
        app.router.add_get(JWKS_PATH, self._serve_jwks)

    def served_at(self, base_url: str) -> None:
        self._url = base_url.rstrip("/") + JWKS_PATH

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
        """A compact JWS over `claims`, as is: no defaults added, bad claims kept (that is what tests need).

        `key` signs (default: the current key); `kid` overrides the header's key id (default: the key's);
        `alg` is "RS256", "none" (empty signature) or "HS256" (HMAC keyed with the key's public PEM: the
        algorithm-confusion attack); `headers` adds or, with OMIT, removes header fields.
        """
        key = key or self.key
        header = _apply({"alg": alg, "typ": "JWT", "kid": kid or key.kid}, headers or {})
        payload = json.dumps(claims, separators=(",", ":")).encode()
        if alg == "RS256" and header.get("alg") == "RS256":
            # pyjwt signs the raw claim bytes (the JWS layer: no claim checks, so expired or odd claims pass through)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # short keys are minted on purpose
                return jwt.api_jws.encode(payload, key.private_key, algorithm="RS256", headers={"typ": None, **header})
        return _forge(header, payload, key, alg)


def _forge(header: dict[str, Any], payload: bytes, key: SigningKey, alg: str) -> str:
    """Hand-assembled on purpose: the forgeries a verifier must refuse, which no JWT library will produce."""
    signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(payload)}".encode()
    match alg:
        case "none":
            signature = b""
        case "HS256":  # algorithm confusion: HMAC keyed with the public key PEM
            signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
        case "RS256":  # a header pyjwt would not write (no alg, another alg named): still signed by pyjwt's RS256
            signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, key.private_key)
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
