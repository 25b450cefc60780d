"""This plug-in's own settings, read from `EXAMPLE_POSTGRES_*` environment variables.

They are read when the kit calls the plug-in's class at start-up, so a missing or bad one stops `serve` (and
`worker`) with one line naming the variable, through the kit's `ConfigError`. No message ever repeats the admin
DSN: it holds a password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

from marketplace_provider.config.settings import ConfigError

ADMIN_URL = "EXAMPLE_POSTGRES_ADMIN_URL"
PUBLIC_HOST = "EXAMPLE_POSTGRES_PUBLIC_HOST"
PUBLIC_PORT = "EXAMPLE_POSTGRES_PUBLIC_PORT"
MAX_DATABASES = "EXAMPLE_POSTGRES_MAX_DATABASES"
PREFIX = "EXAMPLE_POSTGRES_PREFIX"
ASYNC = "EXAMPLE_POSTGRES_ASYNC"

DEFAULT_MAX_DATABASES = 50
DEFAULT_PREFIX = "vmp_"
DEFAULT_PORT = 5432

# Short, so that a prefix plus a resource id or a chosen name fits PostgreSQL's 63-byte identifiers.
PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,15}\Z")
_HOST = re.compile(r"[A-Za-z0-9.:_-]+\Z")  # a DNS name, IPv4 or IPv6 address: nothing that would break a URL


class PostgresSettings(msgspec.Struct, frozen=True, kw_only=True):
    admin_url: str  # postgresql:// DSN of a role with CREATEDB and CREATEROLE
    public_host: str  # put in the URLs handed to Vercel users
    public_port: int
    max_databases: int = DEFAULT_MAX_DATABASES
    prefix: str = DEFAULT_PREFIX  # every database and role this plug-in creates starts with it
    # provision answers `pending` at once and makes the database in the background, finishing through the kit's
    # provider-side actions
    asynchronous: bool = False

    def __repr__(self) -> str:  # the admin DSN carries a password
        return (
            f"PostgresSettings(admin_url=<redacted>, public_host={self.public_host!r}, "
            f"public_port={self.public_port}, max_databases={self.max_databases}, prefix={self.prefix!r}, "
            f"asynchronous={self.asynchronous})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PostgresSettings:
        """The settings from `env` (default: the process environment); ConfigError names a bad variable."""
        env = os.environ if env is None else env
        admin_url = env.get(ADMIN_URL, "").strip()
        if not admin_url:
            raise ConfigError(f"{ADMIN_URL} is required: the postgresql:// DSN of the server that gets the databases")
        admin_host, admin_port = _host_and_port(admin_url)

        host = env.get(PUBLIC_HOST, "").strip() or admin_host
        if not host:
            raise ConfigError(f"{PUBLIC_HOST} is required when {ADMIN_URL} names no host (e.g. a Unix socket)")
        if not _HOST.match(host):
            raise ConfigError(f"{PUBLIC_HOST} must be a host name or an IP address, without scheme or port")

        return cls(
            admin_url=admin_url,
            public_host=host,
            public_port=_integer(env, PUBLIC_PORT, admin_port, 1, 65535),
            max_databases=_integer(env, MAX_DATABASES, DEFAULT_MAX_DATABASES, 0, 1_000_000),
            prefix=_prefix(env.get(PREFIX, "").strip() or DEFAULT_PREFIX),
            asynchronous=_boolean(env, ASYNC, False),
        )


def _host_and_port(url: str) -> tuple[str, int]:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{ADMIN_URL} must be a postgresql:// DSN")
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError:  # the message would quote the DSN, password included
        raise ConfigError(f"{ADMIN_URL} is not a valid DSN (check its host and port)") from None
    return parts.hostname or "", port


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text not in _BOOLEANS:
        raise ConfigError(f"{name} must be true or false, not {text!r}")
    return _BOOLEANS[text]


def _prefix(text: str) -> str:
    if not PREFIX_PATTERN.match(text):
        raise ConfigError(f"{PREFIX} must be 1-16 lower-case letters, digits or '_', starting with a letter")
    if text.startswith("pg_"):
        raise ConfigError(f"{PREFIX} must not start with 'pg_': PostgreSQL reserves those role names")
    return text
