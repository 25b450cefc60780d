"""Settings, names and passwords: no server needed, except to check our SCRAM verifiers against PostgreSQL's."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from example_postgres.names import Names, names_of, quote_identifier
from example_postgres.scram import new_password, scram_verifier
from example_postgres.settings import PostgresSettings
from marketplace_provider.config.settings import ConfigError
from marketplace_provider.domain.errors import Invalid

URL = "postgresql://admin:s3cret-pw@db.internal:6543/postgres"


def test_defaults_come_from_the_admin_dsn():
    settings = PostgresSettings.from_env({"EXAMPLE_POSTGRES_ADMIN_URL": URL})

    assert (settings.public_host, settings.public_port) == ("db.internal", 6543)
    assert (settings.max_databases, settings.prefix, settings.asynchronous) == (50, "vmp_", False)
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


def test_every_variable_can_be_set():
    settings = PostgresSettings.from_env(
        {
            "EXAMPLE_POSTGRES_ADMIN_URL": "postgres://admin@localhost/postgres",
            "EXAMPLE_POSTGRES_PUBLIC_HOST": "pg.example.com",
            "EXAMPLE_POSTGRES_PUBLIC_PORT": "5433",
            "EXAMPLE_POSTGRES_MAX_DATABASES": "7",
            "EXAMPLE_POSTGRES_PREFIX": "acme_",
            "EXAMPLE_POSTGRES_ASYNC": "True",
        }
    )

    assert (
        settings.public_host, settings.public_port, settings.max_databases, settings.prefix, settings.asynchronous
    ) == ("pg.example.com", 5433, 7, "acme_", True)
    assert not PostgresSettings.from_env({"EXAMPLE_POSTGRES_ADMIN_URL": URL, "EXAMPLE_POSTGRES_ASYNC": "false"}).asynchronous


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "EXAMPLE_POSTGRES_ADMIN_URL is required"),
        ({"EXAMPLE_POSTGRES_ADMIN_URL": "mysql://admin:s3cret-pw@db/x"}, "EXAMPLE_POSTGRES_ADMIN_URL must be"),
        ({"EXAMPLE_POSTGRES_ADMIN_URL": "postgresql://admin:s3cret-pw@db:99999/x"}, "EXAMPLE_POSTGRES_ADMIN_URL is"),
        ({"EXAMPLE_POSTGRES_ADMIN_URL": "postgresql:///x?host=/run/pg"}, "EXAMPLE_POSTGRES_PUBLIC_HOST is required"),
        ({"EXAMPLE_POSTGRES_PUBLIC_HOST": "https://db"}, "EXAMPLE_POSTGRES_PUBLIC_HOST must be"),
        ({"EXAMPLE_POSTGRES_PUBLIC_PORT": "0"}, "EXAMPLE_POSTGRES_PUBLIC_PORT must be between"),
        ({"EXAMPLE_POSTGRES_MAX_DATABASES": "ten"}, "EXAMPLE_POSTGRES_MAX_DATABASES must be a whole number"),
        ({"EXAMPLE_POSTGRES_MAX_DATABASES": "-1"}, "EXAMPLE_POSTGRES_MAX_DATABASES must be between"),
        ({"EXAMPLE_POSTGRES_PREFIX": "pg_"}, "EXAMPLE_POSTGRES_PREFIX must not start with 'pg_'"),
        ({"EXAMPLE_POSTGRES_PREFIX": "Acme"}, "EXAMPLE_POSTGRES_PREFIX must be 1-16"),
        ({"EXAMPLE_POSTGRES_PREFIX": "a" * 17}, "EXAMPLE_POSTGRES_PREFIX must be 1-16"),
        ({"EXAMPLE_POSTGRES_ASYNC": "later"}, "EXAMPLE_POSTGRES_ASYNC must be true or false"),
    ],
)
def test_a_bad_setting_is_named_and_the_password_never_shown(env, named):
    env = {"EXAMPLE_POSTGRES_ADMIN_URL": URL, **env} if env else env

    with pytest.raises(ConfigError) as caught:
        PostgresSettings.from_env(env)

    assert str(caught.value).startswith(named)
    assert "s3cret" not in str(caught.value)


EXAMPLE = Path(__file__).resolve().parents[1]  # holds example_postgres/


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c code` in a fresh interpreter. The example's folder leads its PYTHONPATH: the package is found
    whether or not it is installed (the kit's own test run uses it uninstalled, from its sources)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXAMPLE_POSTGRES_")}
    path = os.pathsep.join(p for p in (str(EXAMPLE), clean.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, "PYTHONPATH": path, **env}, capture_output=True, text=True,
        timeout=60,
    )


def test_the_kit_can_make_both_plug_ins_with_or_without_its_context():
    """The kit calls the named class with nothing or with one PluginContext; both read the environment."""
    made = _run(
        "from example_postgres import PostgresProvisioner, DatabaseSizeUsage\n"
        "for make in (PostgresProvisioner, DatabaseSizeUsage):\n"
        "    assert make().settings.prefix == 'abc_'\n"
        "    assert make(object()).settings.prefix == 'abc_'\n",
        EXAMPLE_POSTGRES_ADMIN_URL=URL,
        EXAMPLE_POSTGRES_PREFIX="abc_",
    )
    missing = _run("from example_postgres import PostgresProvisioner\nPostgresProvisioner()")

    assert made.returncode == 0, made.stderr
    assert missing.returncode != 0 and "ConfigError: EXAMPLE_POSTGRES_ADMIN_URL is required" in missing.stderr


def test_names_come_from_the_resource_id_and_the_chosen_database():
    assert names_of("vmp_", "res_0a1b", {}) == Names(role="vmp_res_0a1b", database="vmp_res_0a1b")
    assert names_of("vmp_", "res_0a1b", {"database": "shop"}) == Names(role="vmp_res_0a1b", database="vmp_shop")
    assert names_of("vmp_", "res_0a1b", {"database": ""}).database == "vmp_res_0a1b"


def test_ids_that_are_not_safe_names_get_distinct_safe_ones():
    odd = [names_of("vmp_", rid, {}).role for rid in ("Res-ABC", "res-abc", "res abc", "R" * 80, "'; DROP ROLE x; --")]

    assert len(set(odd)) == len(odd)
    for role in odd:
        assert len(role) <= 63 and role.startswith("vmp_")
        assert set(role) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


@pytest.mark.parametrize("chosen", ["Shop", "shop-1", "_shop", "9lives", "x" * 60, 7])
def test_a_chosen_name_is_checked_before_anything_is_made(chosen):
    with pytest.raises(Invalid) as caught:
        names_of("vmp_", "res_1", {"database": chosen})
    assert caught.value.fields[0].key == "metadata.database"


def test_identifiers_are_quoted():
    assert quote_identifier('we"ird') == '"we""ird"'


def test_passwords_are_long_random_and_url_safe():
    passwords = {new_password() for _ in range(50)}

    url_safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(passwords) == 50
    assert all(len(p) == 32 and set(p) <= url_safe for p in passwords)


async def test_our_scram_verifier_is_the_one_postgresql_makes(superuser, prefix):
    """Let the server hash a password itself, then hash it here with the same salt: the two must be equal."""
    role = f"{prefix}scram"
    await superuser.execute("SET password_encryption = 'scram-sha-256'")
    await superuser.execute(f"CREATE ROLE {role} PASSWORD 'correct horse battery'")
    try:
        stored = await superuser.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await superuser.execute(f"DROP ROLE {role}")
    iterations, salt = stored.removeprefix("SCRAM-SHA-256$").partition("$")[0].split(":")

    assert scram_verifier("correct horse battery", salt=base64.b64decode(salt), iterations=int(iterations)) == stored
