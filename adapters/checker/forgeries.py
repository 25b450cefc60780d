"""Tokens a Partner API server must refuse, made from a genuine one (so they work whoever holds the signing key:
the checker's own stand-ins or a running simulator). They are assembled by hand on purpose: no JWT library will
write `alg: none` or HMAC with a public key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from marketplace_provider.adapters.simulator.tokens import SigningKey, b64url


def _part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _decode(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, payload, _ = token.split(".")
    return _decode(head), _decode(payload)


def alg_none(token: str) -> str:
    """The same claims, `alg: none`, no signature."""
    header, claims = header_and_claims(token)
    return f"{_part({**header, 'alg': 'none'})}.{_part(claims)}."


def hs256_with_public_key(token: str, public_pem: bytes) -> str:
    """The algorithm-confusion attack: HMAC-SHA256 keyed with the server's own RSA public key (PEM)."""
    header, claims = header_and_claims(token)
    signing_input = f"{_part({**header, 'alg': 'HS256'})}.{_part(claims)}"
    return f"{signing_input}.{b64url(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"


def signed_by(token: str, key: SigningKey, kid: str | None = None) -> str:
    """The same claims signed with another key: its own kid (unknown to the JWKS), or `kid` (a served one)."""
    _, claims = header_and_claims(token)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": kid or key.kid})


def tampered(token: str, other: str) -> str:
    """The header and claims of `token` with the signature of `other`."""
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def public_pem(jwks: dict[str, Any], kid: str) -> bytes:
    """The PEM of the served key `kid` (what an attacker reads from the public JWKS)."""
    jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        raise LookupError(f"the JWKS serves no key {kid!r}")
    key = RSAAlgorithm.from_jwk(jwk)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
