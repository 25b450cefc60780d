"""The SSO session repository's contract, on memory, SQLite and PostgreSQL alike (see conftest.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.migrations import (
    migrate_postgres,
    migrate_sqlite,
    migrations,
    pending_postgres,
    pending_sqlite,
)
from marketplace_provider.adapters.storage.postgres import PostgresStorage
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.domain.errors import Conflict
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.sso import Session, session_hash
from marketplace_provider.ports.storage import Storage
from tests.contract.test_storage import new_installation, uid

NOW = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def a_session(installation_id: str, user_id: str | None = None, **changes: object) -> Session:
    """Every field set but revoked_at."""
    session = Session(
        id_hash=session_hash(uid("sid")),
        installation_id=installation_id,
        user_id=user_id or uid("user"),
        role=Role.ADMIN,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=8),
        user_name="Zoë Müller – 東京",
    )
    return replace(session, **changes)


async def added(storage: Storage, *sessions: Session) -> None:
    async with storage.unit_of_work() as uow:
        for session in sessions:
            await uow.sessions.add(session)
        await uow.commit()


async def got(storage: Storage, id_hash: bytes) -> Session | None:
    async with storage.unit_of_work() as uow:
        return await uow.sessions.get(id_hash)


async def revoke_user(storage: Storage, installation_id: str, user_id: str, at: datetime) -> int:
    async with storage.unit_of_work() as uow:
        count = await uow.sessions.revoke_user(installation_id, user_id, at)
        await uow.commit()
    return count


async def test_session_round_trip_with_every_field(storage: Storage) -> None:
    installation = await new_installation(storage)
    plus_two = timezone(timedelta(hours=2))
    session = a_session(
        installation.id,
        created_at=datetime(2025, 3, 4, 7, 6, 7, 1, tzinfo=plus_two),
        expires_at=datetime(2025, 3, 4, 15, 6, 7, 1, tzinfo=plus_two),
        revoked_at=datetime(2025, 3, 4, 8, 0, 0, 999999, tzinfo=plus_two),
    )
    await added(storage, session)
    stored = await got(storage, session.id_hash)
    assert stored == session and type(stored.id_hash) is bytes
    assert stored.valid_at(NOW) is False  # revoked ones are returned too


async def test_session_round_trip_with_nothing_optional(storage: Storage) -> None:
    installation = await new_installation(storage)
    session = a_session(installation.id, role=Role.USER, user_name=None, expires_at=NOW - timedelta(seconds=1))
    await added(storage, session)
    stored = await got(storage, session.id_hash)
    assert stored == session  # expired ones are returned too
    assert stored.revoked_at is None and stored.user_name is None and stored.role is Role.USER


async def test_unknown_session_is_none(storage: Storage) -> None:
    installation = await new_installation(storage)
    await added(storage, a_session(installation.id))
    assert await got(storage, session_hash(uid("sid"))) is None
    assert await got(storage, b"") is None


async def test_revoke_keeps_the_first_revoked_at(storage: Storage) -> None:
    installation = await new_installation(storage)
    session, other = a_session(installation.id), a_session(installation.id)
    await added(storage, session, other)
    async with storage.unit_of_work() as uow:
        await uow.sessions.revoke(session.id_hash, NOW + timedelta(minutes=1))
        assert (await uow.sessions.get(session.id_hash)).revoked_at == NOW + timedelta(minutes=1)
        await uow.sessions.revoke(session.id_hash, NOW + timedelta(minutes=2))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        await uow.sessions.revoke(session.id_hash, NOW + timedelta(minutes=3))
        await uow.sessions.revoke(session_hash(uid("sid")), NOW)  # unknown: nothing happens
        await uow.commit()
    assert await got(storage, session.id_hash) == replace(session, revoked_at=NOW + timedelta(minutes=1))
    assert await got(storage, other.id_hash) == other


async def test_revoke_user_counts_and_leaves_others_alone(storage: Storage) -> None:
    installation, elsewhere = await new_installation(storage), await new_installation(storage)
    user_id = uid("user")
    first, second = a_session(installation.id, user_id), a_session(installation.id, user_id, role=Role.USER)
    already = a_session(installation.id, user_id, revoked_at=NOW - timedelta(hours=1))
    expired = a_session(installation.id, user_id, expires_at=NOW - timedelta(hours=1))
    colleague = a_session(installation.id)
    same_user_elsewhere = a_session(elsewhere.id, user_id)
    await added(storage, first, second, already, expired, colleague, same_user_elsewhere)
    assert await revoke_user(storage, installation.id, user_id, NOW) == 3  # expired ones too: not revoked yet
    for session in (first, second, expired):
        assert await got(storage, session.id_hash) == replace(session, revoked_at=NOW)
    assert await got(storage, already.id_hash) == already
    assert await got(storage, colleague.id_hash) == colleague
    assert await got(storage, same_user_elsewhere.id_hash) == same_user_elsewhere
    assert await revoke_user(storage, installation.id, user_id, NOW + timedelta(minutes=1)) == 0
    assert await got(storage, first.id_hash) == replace(first, revoked_at=NOW)
    assert await revoke_user(storage, installation.id, uid("user"), NOW) == 0
    assert await revoke_user(storage, uid("icfg"), user_id, NOW) == 0


async def test_revoke_user_sees_sessions_added_in_the_same_unit_of_work(storage: Storage) -> None:
    installation = await new_installation(storage)
    user_id = uid("user")
    kept = a_session(installation.id, user_id)
    await added(storage, kept)
    fresh = a_session(installation.id, user_id)
    async with storage.unit_of_work() as uow:
        await uow.sessions.add(fresh)
        assert await uow.sessions.revoke_user(installation.id, user_id, NOW) == 2
        assert (await uow.sessions.get(fresh.id_hash)).revoked_at == NOW
        await uow.commit()
    assert await got(storage, kept.id_hash) == replace(kept, revoked_at=NOW)
    assert await got(storage, fresh.id_hash) == replace(fresh, revoked_at=NOW)


async def test_rollback_leaves_nothing(storage: Storage) -> None:
    installation = await new_installation(storage)
    user_id = uid("user")
    kept = a_session(installation.id, user_id)
    await added(storage, kept)
    dropped = a_session(installation.id, user_id)
    async with storage.unit_of_work() as uow:
        await uow.sessions.add(dropped)
        assert await uow.sessions.get(dropped.id_hash) == dropped
        await uow.sessions.revoke(kept.id_hash, NOW)
        assert await uow.sessions.revoke_user(installation.id, user_id, NOW) == 1
    assert await got(storage, dropped.id_hash) is None
    assert await got(storage, kept.id_hash) == kept
    async with storage.unit_of_work() as uow:
        assert await uow.sessions.revoke_user(installation.id, user_id, NOW) == 1


async def test_adding_an_existing_session_is_a_conflict(storage: Storage) -> None:
    installation = await new_installation(storage)
    session = a_session(installation.id)
    await added(storage, session)
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await uow.sessions.add(replace(session, user_id=uid("user")))
        # the unit of work stays usable after the conflict
        later = a_session(installation.id)
        await uow.sessions.add(later)
        await uow.commit()
    assert await got(storage, session.id_hash) == session
    assert await got(storage, later.id_hash) == later


async def test_adding_twice_in_one_unit_of_work_is_a_conflict(storage: Storage) -> None:
    installation = await new_installation(storage)
    session = a_session(installation.id)
    async with storage.unit_of_work() as uow:
        await uow.sessions.add(session)
        with pytest.raises(Conflict):
            await uow.sessions.add(replace(session, user_name="other"))
        await uow.commit()
    assert await got(storage, session.id_hash) == session


# Migrations: a database made before 0004 gets user_name, empty for the sessions it had


UNDO_0004 = (
    "ALTER TABLE sso_sessions DROP COLUMN user_name",
    "DELETE FROM schema_migrations WHERE version = '0004_sessions'",
)


async def session_before_0004(storage: Storage) -> Session:
    """A session saved before 0004 is undone: its name is lost with the column."""
    installation = await new_installation(storage)
    session = a_session(installation.id)
    try:
        await added(storage, session)
    finally:
        await storage.close()
    return replace(session, user_name=None)


async def check_after_0004(storage: Storage, before: Session) -> None:
    try:
        assert await got(storage, before.id_hash) == before
        named = a_session(before.installation_id)
        await added(storage, named)
        assert await got(storage, named.id_hash) == named
    finally:
        await storage.close()


async def test_sqlite_database_from_before_0004_is_migrated(tmp_path, cipher: SecretCipher) -> None:
    assert [version for version, _ in migrations("sqlite")][3:4] == ["0004_sessions"]
    path = tmp_path / "old.db"
    await migrate_sqlite(path)
    before = await session_before_0004(await SqliteStorage.open(path, cipher))
    conn = sqlite3.connect(path)
    try:
        with conn:
            for statement in UNDO_0004:
                conn.execute(statement)
    finally:
        conn.close()
    assert await pending_sqlite(path) == ["0004_sessions"]
    assert await migrate_sqlite(path) == ["0004_sessions"]
    assert await pending_sqlite(path) == [] and await migrate_sqlite(path) == []
    await check_after_0004(await SqliteStorage.open(path, cipher), before)


async def test_postgres_database_from_before_0004_is_migrated(own_postgres_dsn: str, cipher: SecretCipher) -> None:
    assert [version for version, _ in migrations("postgres")][3:4] == ["0004_sessions"]
    before = await session_before_0004(await PostgresStorage.open(own_postgres_dsn, cipher))
    conn = await asyncpg.connect(own_postgres_dsn)
    try:
        for statement in UNDO_0004:
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await pending_postgres(own_postgres_dsn) == ["0004_sessions"]
    assert await migrate_postgres(own_postgres_dsn) == ["0004_sessions"]
    assert await pending_postgres(own_postgres_dsn) == [] and await migrate_postgres(own_postgres_dsn) == []
    await check_after_0004(await PostgresStorage.open(own_postgres_dsn, cipher), before)
