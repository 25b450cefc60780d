"""config.settings: defaults, the environment, the TOML file under it, and one-line errors naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import marketplace_provider.config.settings as settings_module
from marketplace_provider.config.settings import (
    DEVELOPMENT_CLIENT_ID,
    DEVELOPMENT_CLIENT_SECRET,
    ConfigError,
    Settings,
    load_settings,
)

PRODUCTION = {"INTEGRATION_CLIENT_ID": "oac_real", "INTEGRATION_CLIENT_SECRET": "s3cr3t-client"}


def error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    s = load_settings({})
    assert s == Settings()
    assert s.integration_client_id == DEVELOPMENT_CLIENT_ID
    assert s.integration_client_secret == DEVELOPMENT_CLIENT_SECRET
    assert s.uses_development_credentials
    assert s.integration_slug is None
    assert s.vercel_oidc_issuer == "https://marketplace.vercel.com"
    assert s.vercel_oidc_jwks_url == "https://marketplace.vercel.com/.well-known/jwks"
    assert s.vercel_api_url == "https://api.vercel.com"
    assert s.vercel_url == "https://vercel.com"
    assert s.storage_backend == "sqlite"
    assert s.database_url == "./marketplace.db"
    assert s.secrets_key is None
    assert s.public_url == "http://127.0.0.1:8000"
    assert (s.max_body_bytes, s.log_level) == (1_048_576, "INFO")
    assert (s.log_format, s.log_level_third_party, s.metrics_token) == ("text", None, None)
    assert (s.jwks_refetch_seconds, s.token_leeway_seconds) == (10, 30)


def test_reads_os_environ_and_finds_the_catalog_from_any_cwd(tmp_path: Path) -> None:
    """A fresh process in another directory: the default products_file is absolute, beside the module."""
    root = Path(settings_module.__file__).parent.parent
    program = "import config.settings as c; s = c.load_settings(); print(s.products_file); print(s.integration_slug)"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "INTEGRATION_SLUG": "from-the-environment"}
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    products_file, slug = done.stdout.splitlines()
    assert Path(products_file) == root / "config" / "products.toml"
    assert Path(products_file).is_file()
    assert slug == "from-the-environment"


def test_environment_is_parsed() -> None:
    s = load_settings(
        {
            **PRODUCTION,
            "INTEGRATION_SLUG": "acme",
            "VERCEL_OIDC_ISSUER": "http://127.0.0.1:9000",
            "VERCEL_OIDC_JWKS_URL": "http://127.0.0.1:9000/jwks",
            "VERCEL_API_URL": "http://127.0.0.1:9001",
            "VERCEL_URL": "http://127.0.0.1:9002",
            "STORAGE_BACKEND": "postgres",
            "DATABASE_URL": "postgresql://app:pw@db:5432/marketplace",
            "SECRETS_KEY": "k" * 44,
            "PRODUCTS_FILE": "/etc/acme/products.toml",
            "PUBLIC_URL": "https://acme.example.com",
            "MAX_BODY_BYTES": "2048",
            "LOG_LEVEL": "debug",
            "JWKS_REFETCH_SECONDS": "0",
            "TOKEN_LEEWAY_SECONDS": "2.5",
            "PATH": "/usr/bin",  # unrelated variables are ignored
        }
    )
    assert s.integration_client_id == "oac_real" and s.integration_client_secret == "s3cr3t-client"
    assert not s.uses_development_credentials
    assert s.integration_slug == "acme"
    assert s.vercel_oidc_jwks_url == "http://127.0.0.1:9000/jwks"
    assert (s.storage_backend, s.database_url) == ("postgres", "postgresql://app:pw@db:5432/marketplace")
    assert s.secrets_key == "k" * 44
    assert s.products_file == "/etc/acme/products.toml"
    assert s.max_body_bytes == 2048 and isinstance(s.max_body_bytes, int)
    assert s.log_level == "debug"
    assert s.jwks_refetch_seconds == 0
    assert s.token_leeway_seconds == 2.5


def test_postgres_scheme_alias_and_memory_backend() -> None:
    aliased = load_settings({"STORAGE_BACKEND": "postgres", "DATABASE_URL": "postgres://h/db"})
    assert aliased.database_url == "postgres://h/db"
    assert load_settings({"STORAGE_BACKEND": "memory"}).storage_backend == "memory"


def test_development_flag_needs_both_real_values() -> None:
    assert load_settings({"INTEGRATION_CLIENT_ID": "oac_real"}).uses_development_credentials
    assert load_settings({"INTEGRATION_CLIENT_SECRET": "real"}).uses_development_credentials


def test_empty_variables_count_as_unset() -> None:
    assert load_settings({"DATABASE_URL": "", "STORAGE_BACKEND": ""}) == Settings()


def test_toml_file_under_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "marketplace.toml"
    path.write_text(
        "\n".join(
            [
                'INTEGRATION_CLIENT_ID = "oac_from_file"',  # upper-case names work
                'integration_slug = "file-slug"',  # and lower-case ones
                'storage_backend = "memory"',
                "max_body_bytes = 4096",  # native TOML types
                "token_leeway_seconds = 5",
                'public_url = "https://file.example.com"',
            ]
        )
    )
    s = load_settings({"MARKETPLACE_CONFIG": str(path), "INTEGRATION_SLUG": "env-slug", "MAX_BODY_BYTES": "8192"})
    assert s.integration_client_id == "oac_from_file"
    assert s.integration_slug == "env-slug"  # the environment wins
    assert s.storage_backend == "memory"
    assert s.max_body_bytes == 8192
    assert s.token_leeway_seconds == 5
    assert s.public_url == "https://file.example.com"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"STORAGE_BACKEND": "mysql"}, "STORAGE_BACKEND must be one of memory, sqlite, postgres"),
        ({"STORAGE_BACKEND": "postgres"}, "DATABASE_URL must be a postgresql:// DSN when STORAGE_BACKEND is postgres"),
        ({"STORAGE_BACKEND": "postgres", "DATABASE_URL": "./x.db"}, "DATABASE_URL must be a postgresql://"),
        ({"DATABASE_URL": "postgresql://h/db"}, "DATABASE_URL must be a file path when STORAGE_BACKEND is sqlite"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES must be a whole number of bytes"),
        ({"MAX_BODY_BYTES": "1.5"}, "MAX_BODY_BYTES must be a whole number of bytes"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be greater than 0"),
        ({"MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES must be greater than 0"),
        ({"JWKS_REFETCH_SECONDS": "soon"}, "JWKS_REFETCH_SECONDS must be a number of seconds"),
        ({"OUTBOX_MAX_ATTEMPTS": "0"}, "OUTBOX_MAX_ATTEMPTS must be a whole number from 1 to 1000"),
        ({"OUTBOX_MAX_ATTEMPTS": "many"}, "OUTBOX_MAX_ATTEMPTS must be a whole number from 1 to 1000"),
        ({"OUTBOX_LEASE_SECONDS": "0"}, "OUTBOX_LEASE_SECONDS must be a number of seconds above 0"),
        ({"WORKER_POLL_SECONDS": "nan"}, "WORKER_POLL_SECONDS must be a number of seconds above 0"),
        ({"JOBS_INTERVAL_SECONDS": "-5"}, "JOBS_INTERVAL_SECONDS must be a number of seconds above 0"),
        ({"EXPERIMENTATION_CONFIG_SEGMENT": "flags"}, "EXPERIMENTATION_CONFIG_SEGMENT must be edge-config or global-config"),
        ({"JWKS_REFETCH_SECONDS": "-1"}, "JWKS_REFETCH_SECONDS must be a number of seconds"),
        ({"TOKEN_LEEWAY_SECONDS": "nan"}, "TOKEN_LEEWAY_SECONDS must be a number of seconds"),
        ({"TOKEN_LEEWAY_SECONDS": "inf"}, "TOKEN_LEEWAY_SECONDS must be a number of seconds"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        ({"LOG_LEVEL_THIRD_PARTY": "chatty"}, "LOG_LEVEL_THIRD_PARTY must be one of"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 visible ASCII characters"),
        ({"METRICS_TOKEN": "a token with spaces inside"}, "METRICS_TOKEN must be at least 16 visible ASCII"),
        ({"WORKER_METRICS_ADDRESS": "9100"}, "WORKER_METRICS_ADDRESS must be HOST:PORT"),
        ({"WORKER_METRICS_ADDRESS": "0.0.0.0:70000"}, "WORKER_METRICS_ADDRESS must be HOST:PORT"),
        ({"WORKER_METRICS_ADDRESS": "bad host:9100"}, "WORKER_METRICS_ADDRESS must be HOST:PORT"),
        ({"VERCEL_OIDC_ISSUER": "marketplace.vercel.com"}, "VERCEL_OIDC_ISSUER must be an http:// or https:// URL"),
        ({"VERCEL_OIDC_JWKS_URL": "file:///jwks"}, "VERCEL_OIDC_JWKS_URL must be an http"),
        ({"VERCEL_API_URL": "api.vercel.com"}, "VERCEL_API_URL must be an http"),
        ({"VERCEL_URL": "ftp://vercel.com"}, "VERCEL_URL must be an http"),
        ({"PUBLIC_URL": "localhost:8000"}, "PUBLIC_URL must be an http"),
        ({"INTEGRATION_CLIENT_ID": "   "}, "INTEGRATION_CLIENT_ID must not be empty"),
        ({"SERVE_WORKER": "sometimes"}, "SERVE_WORKER must be true or false"),
        ({"PROVISIONER": "my_provisioner.py"}, "PROVISIONER must look like package.module:name"),
        ({"USAGE_SOURCE": "pkg.mod:"}, "USAGE_SOURCE must look like package.module:name"),
        ({"BRAND_NAME": "   "}, "BRAND_NAME must be 1 to 80 characters"),
        ({"BRAND_NAME": "x" * 81}, "BRAND_NAME must be 1 to 80 characters"),
        ({"SUPPORT_URL": "javascript:alert(1)"}, "SUPPORT_URL must be an http(s):// or mailto: URL, or an e-mail"),
        ({"SUPPORT_URL": "help desk"}, "SUPPORT_URL must be an http(s):// or mailto: URL, or an e-mail"),
        ({"LOGO_URL": "javascript:alert(1)"}, "LOGO_URL must be an http(s):// URL or a path on this server"),
        ({"BRAND_NAME": "Acme\nDatabases"}, "BRAND_NAME must not contain control characters"),
    ],
)
def test_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    assert error(environ).startswith(message)


def test_errors_from_the_file_name_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('max_body_bytes = "big"\n')
    assert error({"MARKETPLACE_CONFIG": str(path)}) == "MAX_BODY_BYTES must be a whole number of bytes"
    path.write_text("integration_slug = 5\n")
    assert error({"MARKETPLACE_CONFIG": str(path)}).startswith("INTEGRATION_SLUG is invalid: expected `str | null`")


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = error({"MARKETPLACE_CONFIG": str(missing)})
    assert message.startswith("MARKETPLACE_CONFIG: cannot read ") and str(missing) in message


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("storage_backend = \n")
    message = error({"MARKETPLACE_CONFIG": str(path)})
    assert message.startswith(f"MARKETPLACE_CONFIG: {path} is not valid TOML")


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('storage_backned = "memory"\n')
    assert error({"MARKETPLACE_CONFIG": str(path)}) == f"MARKETPLACE_CONFIG: {path}: unknown setting 'storage_backned'"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="STORAGE_BACKEND"):
        Settings(storage_backend="mysql")  # type: ignore[arg-type]


def test_repr_hides_secrets() -> None:
    s = load_settings(
        {
            **PRODUCTION,
            "SECRETS_KEY": "the-secrets-key",
            "STORAGE_BACKEND": "postgres",
            "DATABASE_URL": "postgresql://app:db-password@db/marketplace",
        }
    )
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert "s3cr3t-client" not in text
        assert "the-secrets-key" not in text
        assert "db-password" not in text
        assert "oac_real" in text and "<redacted>" in text
        assert "postgresql://app:***@db/marketplace" in text
    assert dict(s.__rich_repr__())["integration_client_secret"] != "s3cr3t-client"


def test_observability_settings_are_read_and_the_metrics_token_hidden() -> None:
    s = load_settings({"LOG_FORMAT": "json", "LOG_LEVEL_THIRD_PARTY": "debug", "METRICS_TOKEN": "scrape-token-0123456789"})
    assert (s.log_format, s.log_level_third_party, s.metrics_token) == ("json", "debug", "scrape-token-0123456789")
    assert "scrape-token-0123456789" not in repr(s) and "metrics_token=<redacted>" in repr(s)
    assert load_settings({"WORKER_METRICS_ADDRESS": "0.0.0.0:9100"}).worker_metrics_bind == ("0.0.0.0", 9100)
    assert load_settings({"WORKER_METRICS_ADDRESS": "[::]:9100"}).worker_metrics_bind == ("::", 9100)
    assert load_settings({}).worker_metrics_bind is None


def test_repr_shows_an_absent_secrets_key_as_none() -> None:
    assert "secrets_key=None" in repr(Settings())


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().max_body_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "link"),
    [
        ("help@acme.example", "mailto:help@acme.example"),
        ("mailto:help@acme.example", "mailto:help@acme.example"),
        ("https://acme.example/support", "https://acme.example/support"),
    ],
)
def test_support_url_may_be_a_bare_e_mail_address(given: str, link: str) -> None:
    assert load_settings({"SUPPORT_URL": given}).support_link == link


def test_plug_ins_the_worker_and_branding_default_to_the_shipped_and_neutral_ones() -> None:
    settings = load_settings({})
    assert (settings.provisioner, settings.usage_source, settings.serve_worker) == (None, None, True)
    assert (settings.brand_name, settings.support_link, settings.logo_url) == (None, None, None)
    assert load_settings({"SERVE_WORKER": "false"}).serve_worker is False
