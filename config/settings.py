"""Process settings: environment variables, optionally backed by a TOML file (interface.md, "Configuration").

`load_settings()` is the only reader of the environment. The file named by `MARKETPLACE_CONFIG` is read first
and the environment wins, key by key. Every problem raises `ConfigError` with one line naming the variable, so
the console script can print it and exit non-zero.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

# Development credentials: enough to start the server and the simulator, never accepted by Vercel.
DEVELOPMENT_CLIENT_ID = "oac_development"
DEVELOPMENT_CLIENT_SECRET = "development-client-secret-do-not-use-in-production"

DEFAULT_PRODUCTS_FILE = str(Path(__file__).parent / "products.toml")
CONFIG_FILE_VARIABLE = "MARKETPLACE_CONFIG"

StorageBackend = Literal["memory", "sqlite", "postgres"]
STORAGE_BACKENDS: tuple[str, ...] = ("memory", "sqlite", "postgres")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_URL_FIELDS = ("vercel_oidc_issuer", "vercel_oidc_jwks_url", "vercel_api_url", "vercel_url", "public_url")
_SECRET_FIELDS = frozenset({"integration_client_secret", "secrets_key", "metrics_token"})
LOG_FORMATS = ("text", "json")
MIN_METRICS_TOKEN_LENGTH = 16
_HOST = re.compile(r"^[A-Za-z0-9.:-]+\Z")  # a name, IPv4 or IPv6 address
_METRICS_TOKEN = re.compile(r"^[\x21-\x7e]+\Z")  # visible ASCII: it travels in an Authorization header
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
_EMAIL = re.compile(r"^[^@\s:/]+@[^@\s:/]+\.[^@\s:/]+\Z")


class _Redacted:
    def __repr__(self) -> str:
        return "<redacted>"


_REDACTED = _Redacted()


class ConfigError(Exception):
    """Bad configuration: the message is one line naming the variable (or file) at fault, never a secret."""


def _variable(field: str) -> str:
    return field.upper()


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    integration_client_id: str = DEVELOPMENT_CLIENT_ID
    integration_client_secret: str = DEVELOPMENT_CLIENT_SECRET
    integration_slug: str | None = None
    vercel_oidc_issuer: str = "https://marketplace.vercel.com"
    vercel_oidc_jwks_url: str = "https://marketplace.vercel.com/.well-known/jwks"
    vercel_api_url: str = "https://api.vercel.com"
    vercel_url: str = "https://vercel.com"
    storage_backend: StorageBackend = "sqlite"
    database_url: str = "./marketplace.db"  # the SQLite file; postgres needs an explicit postgresql:// DSN
    secrets_key: str | None = None  # None: the embedded default generates one beside the SQLite file
    products_file: str = DEFAULT_PRODUCTS_FILE
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object a line (entrypoints/logs.py)
    log_level_third_party: str | None = None  # None: INFO, or LOG_LEVEL when that is quieter
    metrics_token: str | None = None  # None: /metrics is open; else it needs "Authorization: Bearer <it>"
    worker_metrics_address: str | None = None  # HOST:PORT where the `worker` command serves /metrics; None: nowhere
    jwks_refetch_seconds: float = 10.0
    token_leeway_seconds: float = 30.0
    # Vercel's docs say .../experimentation/edge-config, its SDK .../global-config
    experimentation_config_segment: Literal["edge-config", "global-config"] = "edge-config"
    session_hours: float = 8.0  # how long a dashboard sign-in lasts
    outbox_max_attempts: int = 10  # failed deliveries before a message is dead-lettered
    outbox_lease_seconds: float = 120.0  # how long a worker holds messages it took for delivery
    worker_poll_seconds: float = 1.0  # idle pause between outbox rounds
    jobs_interval_seconds: float = 60.0  # how often the worker looks for due scheduled jobs
    serve_worker: bool = True  # `serve` also delivers the outbox and runs the jobs in-process
    # The integrator's parts, as package.module:name (entrypoints/plugins.py); None: the shipped examples
    provisioner: str | None = None
    usage_source: str | None = None
    # What a Vercel user sees on our pages; None: the catalog's first product name, no support link, no logo
    brand_name: str | None = None
    support_url: str | None = None  # https://..., mailto:... or a bare e-mail address
    logo_url: str | None = None

    def __post_init__(self) -> None:
        # Raised as ConfigError (not ValueError) so msgspec lets it through unchanged.
        if self.storage_backend not in STORAGE_BACKENDS:
            raise ConfigError(f"STORAGE_BACKEND must be one of {', '.join(STORAGE_BACKENDS)}")
        for name in ("integration_client_id", "integration_client_secret"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{_variable(name)} must not be empty")
        for name in _URL_FIELDS:
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ConfigError(f"{_variable(name)} must be an http:// or https:// URL")
        is_postgres_dsn = self.database_url.startswith(_POSTGRES_SCHEMES)
        if self.storage_backend == "postgres" and not is_postgres_dsn:
            raise ConfigError("DATABASE_URL must be a postgresql:// DSN when STORAGE_BACKEND is postgres")
        if self.storage_backend == "sqlite" and (is_postgres_dsn or not self.database_url.strip()):
            raise ConfigError("DATABASE_URL must be a file path when STORAGE_BACKEND is sqlite")
        if not self.products_file.strip():
            raise ConfigError("PRODUCTS_FILE must not be empty")
        if self.max_body_bytes <= 0:
            raise ConfigError("MAX_BODY_BYTES must be greater than 0")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.log_level_third_party is not None and self.log_level_third_party.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL_THIRD_PARTY must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format.lower() not in LOG_FORMATS:
            raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.metrics_token is not None and (
            len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH or not _METRICS_TOKEN.match(self.metrics_token)
        ):
            raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} visible ASCII characters")
        if self.worker_metrics_address is not None and self.worker_metrics_bind is None:
            raise ConfigError("WORKER_METRICS_ADDRESS must be HOST:PORT, e.g. 0.0.0.0:9100 (port 1 to 65535)")
        for name in ("jwks_refetch_seconds", "token_leeway_seconds"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):  # also refuses NaN
                raise ConfigError(f"{_variable(name)} must be a number of seconds, 0 or more")
        if not 0 < self.session_hours <= 24 * 30:
            raise ConfigError("SESSION_HOURS must be a number of hours above 0, at most 720")
        for name in ("outbox_lease_seconds", "worker_poll_seconds", "jobs_interval_seconds"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ConfigError(f"{_variable(name)} must be a number of seconds above 0")
        if not 1 <= self.outbox_max_attempts <= 1000:
            raise ConfigError("OUTBOX_MAX_ATTEMPTS must be a whole number from 1 to 1000")
        for name in ("provisioner", "usage_source"):
            value = getattr(self, name)
            if value is not None and not _IMPORT_PATH.match(value):
                raise ConfigError(f"{_variable(name)} must look like package.module:name")
        if self.brand_name is not None and not 0 < len(self.brand_name.strip()) <= 80:
            raise ConfigError("BRAND_NAME must be 1 to 80 characters")
        if self.support_url is not None and not (
            self.support_url.startswith(("http://", "https://", "mailto:")) or _EMAIL.match(self.support_url)
        ):
            raise ConfigError("SUPPORT_URL must be an http(s):// or mailto: URL, or an e-mail address")
        if self.logo_url is not None and not self.logo_url.startswith(("https://", "http://", "/")):
            raise ConfigError("LOGO_URL must be an http(s):// URL or a path on this server")
        for name in ("brand_name", "support_url", "logo_url"):
            value = getattr(self, name)
            if value is not None and any(ord(c) < 32 for c in value):
                raise ConfigError(f"{_variable(name)} must not contain control characters")

    @property
    def support_link(self) -> str | None:
        """SUPPORT_URL as a link: a bare e-mail address becomes mailto:."""
        if self.support_url is None or "://" in self.support_url or self.support_url.startswith("mailto:"):
            return self.support_url
        return "mailto:" + self.support_url

    @property
    def worker_metrics_bind(self) -> tuple[str, int] | None:
        """WORKER_METRICS_ADDRESS as (host, port); `[::1]:9100` for IPv6. None when unset or malformed."""
        host, colon, port = (self.worker_metrics_address or "").rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 or not _HOST.match(host):
            return None
        return host, int(port)

    @property
    def uses_development_credentials(self) -> bool:
        """True while the client id or secret is the built-in development value (warn at start-up)."""
        return (
            self.integration_client_id == DEVELOPMENT_CLIENT_ID
            or self.integration_client_secret == DEVELOPMENT_CLIENT_SECRET
        )

    def _shown(self) -> Iterator[tuple[str, object]]:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _SECRET_FIELDS and value is not None:
                value = _REDACTED
            elif name == "database_url":
                value = _without_password(value)
            yield name, value

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"Settings({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:  # the signature msgspec.Struct declares
        return list(self._shown())


def _without_password(dsn: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db (for repr and logs)."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return dsn
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


_FIELDS = frozenset(Settings.__struct_fields__)

# What a variable must look like, for msgspec's type errors (its own wording names Python types).
_EXPECTED = {
    "storage_backend": f"must be one of {', '.join(STORAGE_BACKENDS)}",
    "max_body_bytes": "must be a whole number of bytes",
    "jwks_refetch_seconds": "must be a number of seconds, 0 or more",
    "token_leeway_seconds": "must be a number of seconds, 0 or more",
    "experimentation_config_segment": "must be edge-config or global-config",
    "session_hours": "must be a number of hours above 0, at most 720",
    "outbox_max_attempts": "must be a whole number from 1 to 1000",
    "outbox_lease_seconds": "must be a number of seconds above 0",
    "worker_poll_seconds": "must be a number of seconds above 0",
    "jobs_interval_seconds": "must be a number of seconds above 0",
    "serve_worker": "must be true or false",
}


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE_VARIABLE}: cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE_VARIABLE}: {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.lower()
        if name not in _FIELDS:
            raise ConfigError(f"{CONFIG_FILE_VARIABLE}: {path}: unknown setting {key!r}")
        values[name] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: os.environ), over the TOML file it names in MARKETPLACE_CONFIG.

    An empty environment variable counts as unset, so `DATABASE_URL=` falls back to the default.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = env.get(CONFIG_FILE_VARIABLE)
    if config_file:
        values.update(_read_file(config_file))
    for name in _FIELDS:
        raw = env.get(_variable(name))
        if raw:
            values[name] = raw
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: msgspec.ValidationError) -> str:
    """One line naming the variable: msgspec says "Expected `int`, got `str` - at `$.max_body_bytes`"."""
    detail, _, where = str(exc).partition(" - at `$.")
    name = where.rstrip("`").split(".")[0].split("[")[0]
    if name not in _FIELDS:
        return f"invalid configuration: {detail}"
    expected = _EXPECTED.get(name)
    if expected is None:
        return f"{_variable(name)} is invalid: {detail[:1].lower()}{detail[1:]}"
    return f"{_variable(name)} {expected}"
