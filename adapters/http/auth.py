"""Who is calling: the Bearer token, verified, and the request facts every handler needs."""

from __future__ import annotations

import hashlib
import re

from litestar import Request
from litestar.di import NamedDependency

from marketplace_provider.domain.errors import Invalid, Unauthenticated
from marketplace_provider.domain.roles import Caller
from marketplace_provider.domain.services.common import RequestKey
from marketplace_provider.ports.tokens import TokenVerifier

PATH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_TOKEN_LENGTH = 16_384


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing Authorization header")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


async def provide_caller(request: Request) -> Caller:
    """Verify the token, check that X-Vercel-Auth (when sent) agrees with it, then check path ids.

    The style is taken from the signed claims, never from the unsigned header alone; a header that
    disagrees with the token is refused.
    """
    verifier: TokenVerifier = request.app.state.token_verifier
    caller = await verifier.verify(bearer_token(request))
    declared = request.headers.get("x-vercel-auth")
    if declared is not None and declared.strip().lower() != caller.style.value:
        raise Unauthenticated(f"X-Vercel-Auth says {declared.strip()[:16]!r} but the token is a {caller.style.value} token")
    if caller.account_id is None and "installationId" in request.path_params:  # only product plans may lack it (auth.md 1.2)
        raise Unauthenticated("the token lacks the account_id claim")
    for name, value in request.path_params.items():
        if isinstance(value, str) and not PATH_ID.fullmatch(value):  # match() lets a trailing newline through
            raise Invalid.field(name, "is not a valid id")
    return caller


async def provide_request_key(request: Request, caller: NamedDependency[Caller]) -> RequestKey | None:
    """The Idempotency-Key with a digest of what it was sent with, so a reused key is told apart.

    Taken after the caller (app.py says why): a bad token is a 401 whatever the key."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise Invalid.field("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(await request.body())
    return RequestKey(value, digest.hexdigest())
