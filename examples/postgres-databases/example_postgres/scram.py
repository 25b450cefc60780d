"""Passwords: made here, hashed here, so the plain password never travels to the server.

`CREATE ROLE ... PASSWORD 'plain'` would put the password in the statement text, where the server's log
(`log_statement`, an error's STATEMENT line) may keep it. PostgreSQL also takes a SCRAM-SHA-256 verifier (what
it stores anyway, RFC 5802/7677) and keeps it as given, as psql's `\\password` does. Clients then log in
with SCRAM, the default since PostgreSQL 14; a server still using `md5` in pg_hba.conf cannot check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def new_password() -> str:
    """32 URL-safe characters (192 random bits): nothing to escape in a URL or an environment variable."""
    return secrets.token_urlsafe(24)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the format of pg_authid.rolpassword.

    PostgreSQL SASLprep-normalises passwords first; ours are ASCII letters, digits, '-' and '_', which it
    leaves unchanged.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
