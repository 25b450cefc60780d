"""PostgresProvisioner against a real PostgreSQL server, as the kit calls it."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import msgspec
import pytest
from pg_support import (
    PRO,
    SECRET_NAMES,
    SESSION_ENDED,
    SUPERUSER_URL,
    draft,
    env_of,
    leftovers,
    password_matches,
    resource_of,
    with_user,
)

from example_postgres import PostgresProvisioner, PostgresSettings
from marketplace_provider.config.settings import ConfigError
from marketplace_provider.domain.errors import Conflict, Invalid, Unavailable, Unprocessable
from marketplace_provider.domain.repl import Paragraph, Table
from marketplace_provider.domain.resources import ResourceStatus


async def test_provision_hands_out_a_working_database(provisioner, superuser, prefix):
    made = await provisioner.provision(draft("res_0a1b2c"))

    env = env_of(made.secrets)
    assert set(env) == SECRET_NAMES
    assert made.status is ResourceStatus.READY
    assert env["PGUSER"] == env["PGDATABASE"] == f"{prefix}res_0a1b2c"
    assert (env["PGHOST"], env["PGPORT"]) == (provisioner.settings.public_host, str(provisioner.settings.public_port))
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes VALUES (1, 'hello')")
        assert await conn.fetchval("SELECT body FROM notes") == "hello"
        assert await conn.fetchval("SELECT current_user || '@' || current_database()") == (
            f"{prefix}res_0a1b2c@{prefix}res_0a1b2c"
        )
    finally:
        await conn.close()
    assert await password_matches(superuser, env["PGUSER"], env["PGPASSWORD"])
    assert await leftovers(superuser, prefix) == ([f"{prefix}res_0a1b2c"], [f"{prefix}res_0a1b2c"])


async def test_a_resource_cannot_open_another_resources_database(provisioner):
    first = env_of((await provisioner.provision(draft("res_first"))).secrets)
    second = env_of((await provisioner.provision(draft("res_second"))).secrets)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(second["DATABASE_URL"].rsplit("/", 1)[0] + "/" + first["PGDATABASE"])


async def test_the_user_may_name_the_database(provisioner, superuser, prefix):
    longest = "d" * (63 - len(prefix))  # fits PostgreSQL's 63 bytes exactly: nothing is cut off
    shop = env_of((await provisioner.provision(draft("res_shop", database="shop"))).secrets)
    long = env_of((await provisioner.provision(draft("res_long", database=longest))).secrets)

    assert shop["PGDATABASE"] == f"{prefix}shop"
    assert long["PGDATABASE"] == prefix + longest
    for env in (shop, long):
        conn = await asyncpg.connect(env["DATABASE_URL"])
        assert await conn.fetchval("SELECT current_database()") == env["PGDATABASE"]
        await conn.close()
    databases, _ = await leftovers(superuser, prefix)
    assert databases == sorted([f"{prefix}shop", prefix + longest])


@pytest.mark.parametrize(
    "name",
    ["Shop", "shop-db", "1shop", "shop; DROP DATABASE postgres", 'sh"op', "café", "x" * 60, 42, True],
)
async def test_a_database_name_we_cannot_use_is_refused_and_nothing_is_made(provisioner, superuser, prefix, name):
    with pytest.raises(Invalid) as caught:
        await provisioner.provision(draft("res_bad", database=name))

    assert [f.key for f in caught.value.fields] == ["metadata.database"]
    assert await leftovers(superuser, prefix) == ([], [])


async def test_a_database_name_already_taken_is_a_conflict(provisioner, superuser, prefix):
    first = env_of((await provisioner.provision(draft("res_one", database="shop"))).secrets)

    with pytest.raises(Conflict, match="shop"):
        await provisioner.provision(draft("res_two", database="shop"))

    assert await leftovers(superuser, prefix) == ([f"{prefix}shop"], [f"{prefix}res_one"])
    conn = await asyncpg.connect(first["DATABASE_URL"])  # the first owner keeps it, untouched
    assert await conn.fetchval("SELECT current_user") == f"{prefix}res_one"
    await conn.close()


async def test_no_database_beyond_the_quota(provisioner, superuser, prefix):
    for n in range(3):  # the fixture's EXAMPLE_POSTGRES_MAX_DATABASES
        await provisioner.provision(draft(f"res_{n}"))
    before = await leftovers(superuser, prefix)

    with pytest.raises(Unprocessable, match="limit 3"):
        await provisioner.provision(draft("res_3"))

    assert await leftovers(superuser, prefix) == before
    assert len(before[0]) == 3
    again = await provisioner.provision(draft("res_1"))  # a retry of one that exists still succeeds
    assert env_of(again.secrets)["PGDATABASE"] == f"{prefix}res_1"


async def test_concurrent_provisioning_never_passes_the_quota(settings, superuser, prefix):
    # Two provisioners (two server processes) racing for the last places: the advisory lock lets one check and
    # create at a time.
    async with PostgresProvisioner(settings=settings) as one, PostgresProvisioner(settings=settings) as two:
        await one.provision(draft("res_0"))
        results = await asyncio.gather(
            *(p.provision(draft(f"res_{n}")) for n, p in zip(range(1, 5), (one, two, one, two), strict=True)),
            return_exceptions=True,
        )

    assert sum(isinstance(r, Unprocessable) for r in results) == 2
    assert all(isinstance(r, Unprocessable) or r.secrets for r in results)
    databases, roles = await leftovers(superuser, prefix)
    assert len(databases) == len(roles) == 3


async def test_provisioning_again_with_the_same_resource_id_reuses_the_database(provisioner, superuser, prefix):
    first = env_of((await provisioner.provision(draft("res_retry", database="app"))).secrets)
    conn = await asyncpg.connect(first["DATABASE_URL"])
    await conn.execute("CREATE TABLE kept (x int)")
    await conn.close()

    second = env_of((await provisioner.provision(draft("res_retry", database="app"))).secrets)

    assert await leftovers(superuser, prefix) == ([f"{prefix}app"], [f"{prefix}res_retry"])
    assert {k: v for k, v in second.items() if k not in ("PGPASSWORD", "DATABASE_URL")} == {
        k: v for k, v in first.items() if k not in ("PGPASSWORD", "DATABASE_URL")
    }
    assert await password_matches(superuser, second["PGUSER"], second["PGPASSWORD"])
    assert not await password_matches(superuser, second["PGUSER"], first["PGPASSWORD"])
    conn = await asyncpg.connect(second["DATABASE_URL"])
    assert await conn.fetchval("SELECT count(*) FROM kept") == 0  # the same database, not a new one
    await conn.close()


async def test_a_retry_after_a_crash_between_role_and_database_finishes_the_job(provisioner, superuser, prefix):
    # What a crash right after CREATE ROLE leaves: the role alone, the admin not yet a member of it.
    await superuser.execute(f'CREATE ROLE "{prefix}res_crash" LOGIN')

    env = env_of((await provisioner.provision(draft("res_crash"))).secrets)

    assert await leftovers(superuser, prefix) == ([f"{prefix}res_crash"], [f"{prefix}res_crash"])
    conn = await asyncpg.connect(env["DATABASE_URL"])
    assert await conn.fetchval("SELECT current_database()") == f"{prefix}res_crash"
    await conn.close()


async def test_a_failure_midway_leaves_nothing_and_answers_503(provisioner, superuser, prefix, caplog):
    # The role gets created, then CREATE DATABASE fails: the admin lost CREATEDB after start-up.
    admin = provisioner.settings.admin_url.split("://", 1)[1].split(":", 1)[0]
    await superuser.execute(f"ALTER ROLE {admin} NOCREATEDB")

    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable) as caught:
        await provisioner.provision(draft("res_half"))

    assert await leftovers(superuser, prefix) == ([], [])
    assert "PASSWORD" not in str(caught.value) and "SCRAM" not in caplog.text and "PASSWORD" not in caplog.text


async def test_rotation_gives_a_new_password_and_the_old_one_stops_working(provisioner, superuser, admin_url):
    # The stored SCRAM verifier tells which password the server now accepts, even on a server that trusts every
    # login (as test servers often do). That the old one is refused at login is seen end to end, through the
    # kit's HTTP server on a password-checking cluster: the kit's tests/e2e/test_example_postgres.py.
    made = draft("res_rotate")
    first = env_of((await provisioner.provision(made)).secrets)

    rotation = await provisioner.rotate_secrets(resource_of(made), "leaked", 24)

    assert rotation.sync and not rotation.partial
    rotated = env_of(rotation.secrets)
    assert set(rotated) == SECRET_NAMES and rotated["PGPASSWORD"] != first["PGPASSWORD"]
    assert await password_matches(superuser, rotated["PGUSER"], rotated["PGPASSWORD"])
    assert not await password_matches(superuser, rotated["PGUSER"], first["PGPASSWORD"])
    conn = await asyncpg.connect(rotated["DATABASE_URL"])
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()


async def test_rotating_a_resource_whose_database_is_gone_is_unprocessable(provisioner):
    made = draft("res_gone")
    await provisioner.provision(made)
    await provisioner.deprovision(resource_of(made))

    with pytest.raises(Unprocessable, match="no longer exists"):
        await provisioner.rotate_secrets(resource_of(made), None, 0)


async def test_deprovision_ends_sessions_and_drops_database_and_role(provisioner, superuser, prefix):
    made = draft("res_bye", database="bye")
    env = env_of((await provisioner.provision(made)).secrets)
    session = await asyncpg.connect(env["DATABASE_URL"])

    await provisioner.deprovision(resource_of(made))

    assert await leftovers(superuser, prefix) == ([], [])
    with pytest.raises(SESSION_ENDED):
        await session.fetchval("SELECT 1")
    await provisioner.deprovision(resource_of(made))  # a repeat after a crash succeeds
    session.terminate()


async def test_deprovision_never_drops_a_database_another_role_owns(provisioner, superuser, prefix):
    # A resource whose name points at a database it does not own (made by hand, or taken by another role
    # meanwhile) must not take the owner's database with it.
    await superuser.execute(f'CREATE DATABASE "{prefix}shared"')

    await provisioner.deprovision(resource_of(draft("res_stranger", database="shared")))

    assert await leftovers(superuser, prefix) == ([f"{prefix}shared"], [])


async def test_reconfigure_accepts_renames_and_plan_changes_but_not_a_new_database_name(provisioner):
    made = draft("res_conf", database="conf")
    await provisioner.provision(made)
    before = resource_of(made)

    await provisioner.reconfigure(before, msgspec.structs.replace(before, name="renamed", billing_plan_id=PRO.id))
    for metadata in ({"database": "other"}, {}):
        with pytest.raises(Invalid) as caught:
            await provisioner.reconfigure(before, msgspec.structs.replace(before, metadata=metadata))
        assert caught.value.fields[0].key == "metadata.database"


async def test_a_suspended_resource_cannot_log_in_until_it_is_ready_again(provisioner, superuser):
    made = draft("res_unpaid")
    env = env_of((await provisioner.provision(made)).secrets)
    ready = resource_of(made)
    suspended = msgspec.structs.replace(ready, status=ResourceStatus.SUSPENDED)
    session = await asyncpg.connect(env["DATABASE_URL"])

    await provisioner.reconfigure(ready, suspended)

    can_login = "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1"
    assert await superuser.fetchval(can_login, env["PGUSER"]) is False
    with pytest.raises(SESSION_ENDED):
        await session.fetchval("SELECT 1")
    session.terminate()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # "not permitted to log in"
        await asyncpg.connect(env["DATABASE_URL"])

    await provisioner.reconfigure(suspended, ready)

    assert await superuser.fetchval(can_login, env["PGUSER"]) is True
    conn = await asyncpg.connect(env["DATABASE_URL"])
    await conn.close()


async def test_repl_answers_help_info_and_size(provisioner, prefix):
    made = draft("res_repl")
    await provisioner.provision(made)
    resource = resource_of(made)

    help_ = await provisioner.repl(resource, "help", True)
    info = await provisioner.repl(resource, "info", True)
    size = await provisioner.repl(resource, "SIZE", False)
    unknown = await provisioner.repl(resource, "drop database", False)

    assert not help_.failed and len(help_.blocks) == 4
    assert isinstance(info.blocks[0], Table)
    fields = {row[0].text: row[1].text for row in info.blocks[0].rows}
    assert fields["database"] == f"{prefix}res_repl"
    assert fields["address"] == f"{provisioner.settings.public_host}:{provisioner.settings.public_port}"
    assert not any(cell.text == "PGPASSWORD" for row in info.blocks[0].rows for cell in row)
    assert isinstance(size.blocks[0], Paragraph) and size.blocks[0].children[0].text.endswith(("kB", "MB"))
    assert unknown.failed
    await provisioner.deprovision(resource)
    assert (await provisioner.repl(resource, "size", True)).failed


async def test_a_server_that_stops_answering_gives_503(provisioner, superuser):
    await provisioner.provision(draft("res_before"))
    admin = provisioner.settings.admin_url.split("://", 1)[1].split(":", 1)[0]
    # The admin can no longer log in and loses its pooled sessions: every call must now fail cleanly.
    await superuser.execute(f"ALTER ROLE {admin} NOLOGIN")
    await superuser.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", admin)

    with pytest.raises(Unavailable):
        await provisioner.provision(draft("res_after"))
    with pytest.raises(Unavailable):
        await provisioner.rotate_secrets(resource_of(draft("res_before")), None, 0)


async def test_start_up_refuses_an_admin_without_createrole(superuser, settings, prefix):
    weak = f"xweak_{prefix}"
    await superuser.execute(f"CREATE ROLE {weak} LOGIN CREATEDB PASSWORD 'weak-password-1'")
    try:
        weak_settings = msgspec.structs.replace(settings, admin_url=with_user(SUPERUSER_URL, weak, "weak-password-1"))
        with pytest.raises(ConfigError, match=r"EXAMPLE_POSTGRES_ADMIN_URL: role .* needs the CREATEDB and CREATEROLE"):
            async with PostgresProvisioner(settings=weak_settings):
                pass
    finally:
        await superuser.execute(f"DROP ROLE {weak}")


async def test_start_up_names_the_variable_when_the_server_is_unreachable():
    settings = PostgresSettings.from_env(
        {"EXAMPLE_POSTGRES_ADMIN_URL": "postgresql://admin:hunter2-secret@127.0.0.1:1/postgres"}
    )

    with pytest.raises(ConfigError, match="EXAMPLE_POSTGRES_ADMIN_URL: cannot connect") as caught:
        async with PostgresProvisioner(settings=settings):
            pass
    assert "hunter2" not in str(caught.value)
