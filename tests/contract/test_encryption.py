"""Secrets at rest: what the SQL rows hold, key rotation, wrong keys, the SECRETS_KEY format and the
embedded default's key file."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.cipher import (
    CipherError,
    SecretCipher,
    generate_key_text,
    load_or_create_key_file,
    parse_keys,
)
from marketplace_provider.domain.installations import Credentials, Installation
from marketplace_provider.domain.resources import Resource, Secret
from marketplace_provider.ports.storage import Reply, Storage
from tests.contract.conftest import SqlDatabase
from tests.contract.test_storage import a_resource, an_installation, uid

OLD = ("old", os.urandom(32))
NEW = ("new", os.urandom(32))


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


async def write_sample(storage: Storage, marker: str) -> tuple[Installation, Resource]:
    installation = an_installation(credentials=Credentials(access_token=f"tok-{marker}", token_type="Bearer"))
    resource = a_resource(
        installation.id, secrets=(Secret(name="DATABASE_URL", value=f"postgres://user:{marker}@db/x"),)
    )
    async with storage.unit_of_work() as uow:
        await uow.installations.save(installation)
        await uow.resources.add(resource)
        await uow.replies.save(installation.id, "k", Reply(fingerprint="f", result=resource))
        await uow.commit()
    return installation, resource


async def read_sample(
    storage: Storage, installation_id: str, resource_id: str
) -> tuple[Installation | None, Resource | None, Reply | None]:
    async with storage.unit_of_work() as uow:
        return (
            await uow.installations.get(installation_id),
            await uow.resources.get(installation_id, resource_id),
            await uow.replies.lookup(installation_id, "k", Resource),
        )


async def raw_rows(database: SqlDatabase, installation_id: str) -> list[dict]:
    return [
        *await database.rows("SELECT * FROM installations WHERE id = ?", installation_id),
        *await database.rows("SELECT * FROM resources WHERE installation_id = ?", installation_id),
        *await database.rows("SELECT * FROM replies WHERE installation_id = ?", installation_id),
    ]


async def test_raw_rows_hold_no_plaintext(database: SqlDatabase) -> None:
    marker = uid("PLAINTEXT")
    storage = await database.open(SecretCipher([NEW]))
    try:
        installation, _resource = await write_sample(storage, marker)
    finally:
        await storage.close()
    rows = await raw_rows(database, installation.id)
    assert len(rows) == 3
    for row in rows:
        for value in row.values():
            raw = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode()
            assert marker.encode() not in raw
    installation_row, resource_row, reply_row = rows
    assert installation_row["access_token_key_id"] == "new" and installation_row["token_type"] == "Bearer"
    assert resource_row["secrets_key_id"] == "new" and reply_row["result_key_id"] == "new"


async def test_rows_sealed_with_an_old_key_read_after_rotation(database: SqlDatabase) -> None:
    storage = await database.open(SecretCipher([OLD]))
    try:
        installation, resource = await write_sample(storage, uid("secret"))
    finally:
        await storage.close()
    storage = await database.open(SecretCipher([NEW, OLD]))
    try:
        got_installation, got_resource, reply = await read_sample(storage, installation.id, resource.id)
        assert got_installation == installation and got_resource == resource
        assert reply == Reply(fingerprint="f", result=resource)
        # what is written again is sealed with the newest key
        async with storage.unit_of_work() as uow:
            await uow.installations.save(replace(installation, billing_plan_id="hobby"))
            await uow.commit()
    finally:
        await storage.close()
    (row,) = await database.rows("SELECT access_token_key_id FROM installations WHERE id = ?", installation.id)
    assert row["access_token_key_id"] == "new"
    (row,) = await database.rows("SELECT secrets_key_id FROM resources WHERE id = ?", resource.id)
    assert row["secrets_key_id"] == "old"


@pytest.mark.parametrize("wrong", [[NEW], [("old", os.urandom(32))]], ids=["unknown-key-id", "wrong-key-bytes"])
async def test_a_wrong_key_fails_at_read(database: SqlDatabase, wrong: list[tuple[str, bytes]]) -> None:
    storage = await database.open(SecretCipher([OLD]))
    try:
        installation, resource = await write_sample(storage, uid("secret"))
    finally:
        await storage.close()
    storage = await database.open(SecretCipher(wrong), verify_keys=False)
    try:
        async with storage.unit_of_work() as uow:
            with pytest.raises(CipherError, match="old") as raised:
                await uow.installations.get(installation.id)
            with pytest.raises(CipherError):
                await uow.resources.get(installation.id, resource.id)
            with pytest.raises(CipherError):
                await uow.replies.lookup(installation.id, "k", Resource)
    finally:
        await storage.close()
    for _, key in (OLD, *wrong):
        assert b64(key) not in str(raised.value)


@pytest.mark.parametrize("wrong", [[NEW], [("old", os.urandom(32))]], ids=["unknown-key-id", "wrong-key-bytes"])
async def test_a_wrong_key_fails_at_start_up(database: SqlDatabase, wrong: list[tuple[str, bytes]]) -> None:
    storage = await database.open(SecretCipher([OLD]))
    try:
        await write_sample(storage, uid("secret"))
    finally:
        await storage.close()
    with pytest.raises(CipherError, match="'old'"):
        await database.open(SecretCipher(wrong))
    storage = await database.open(SecretCipher([NEW, OLD]))
    await storage.close()  # with the old key back, after the newest, it starts


async def test_a_ciphertext_moved_to_another_row_does_not_open(database: SqlDatabase) -> None:
    storage = await database.open(SecretCipher([NEW]))
    try:
        victim, _ = await write_sample(storage, uid("secret"))
        thief, _ = await write_sample(storage, uid("secret"))
        await database.execute(
            "UPDATE installations SET access_token_sealed = "
            "(SELECT access_token_sealed FROM installations WHERE id = ?) WHERE id = ?",
            victim.id,
            thief.id,
        )
        async with storage.unit_of_work() as uow:
            with pytest.raises(CipherError):
                await uow.installations.get(thief.id)
            assert await uow.installations.get(victim.id) == victim
    finally:
        await storage.close()


# The cipher on its own


def test_seal_and_open() -> None:
    cipher = SecretCipher([NEW, OLD])
    key_id, blob = cipher.seal(b"hello", b"row-1")
    assert key_id == "new" and b"hello" not in blob
    assert cipher.open(key_id, blob, b"row-1") == b"hello"
    assert cipher.seal(b"hello", b"row-1")[1] != blob  # a fresh nonce each time
    with pytest.raises(CipherError):
        cipher.open(key_id, blob, b"row-2")
    with pytest.raises(CipherError):
        cipher.open(key_id, blob[:-1] + bytes([blob[-1] ^ 1]), b"row-1")
    with pytest.raises(CipherError):
        cipher.open(key_id, blob[:5], b"row-1")
    with pytest.raises(CipherError, match="nope"):
        cipher.open("nope", blob, b"row-1")


def test_repr_shows_key_ids_only() -> None:
    cipher = SecretCipher([NEW, OLD])
    shown = repr(cipher) + str(cipher)
    assert "new" in shown and "old" in shown
    for _, key in (NEW, OLD):
        assert b64(key) not in shown and key.hex() not in shown and repr(key) not in shown


@pytest.mark.parametrize(
    "keys",
    [[], [("k", b"short")], [("k", os.urandom(32)), ("k", os.urandom(32))], [("bad id", os.urandom(32))]],
    ids=["none", "short", "twice", "bad-id"],
)
def test_cipher_refuses_bad_keys(keys: list[tuple[str, bytes]]) -> None:
    with pytest.raises(CipherError):
        SecretCipher(keys)


def test_parse_keys() -> None:
    first, second = os.urandom(32), os.urandom(32)
    padded = base64.urlsafe_b64encode(second).decode()
    assert parse_keys(f"k2:{b64(first)}, k1:{padded}") == [("k2", first), ("k1", second)]
    assert parse_keys(b64(first)) == [(hashlib.sha256(first).hexdigest()[:8], first)]


def test_generated_key_text_parses() -> None:
    text = generate_key_text()
    ((key_id, key),) = parse_keys(text)
    assert len(key) == 32 and key_id == hashlib.sha256(key).hexdigest()[:8]
    assert generate_key_text() != text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        (f"k1:{b64(os.urandom(32))},", "entry 2 is empty"),
        ("k1:not*base64!", "not base64url"),
        ("k1:" + b64(os.urandom(16)), "32 bytes, not 16"),
        (b64(os.urandom(31)), "32 bytes, not 31"),
        ("bad id:" + b64(os.urandom(32)), "id must be"),
        ("same:" + b64(os.urandom(32)) + ",same:" + b64(os.urandom(32)), "listed twice"),
    ],
)
def test_parse_keys_errors_say_what_is_wrong_without_the_key(text: str, message: str) -> None:
    with pytest.raises(CipherError, match=message) as raised:
        parse_keys(text)
    for part in text.replace(":", ",").split(","):
        if len(part) > 8:
            assert part not in str(raised.value)


# The embedded default's key file


def test_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "marketplace.db.key"
    keys = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys) == 1 and len(keys[0][1]) == 32
    assert load_or_create_key_file(path) == keys
    assert parse_keys(path.read_text().strip()) == keys
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_key_file_created_once_under_a_race(tmp_path: Path) -> None:
    path = tmp_path / "race.key"
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: load_or_create_key_file(path), range(32)))
    assert all(result == results[0] for result in results)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loose.key"
    load_or_create_key_file(path)
    path.chmod(0o640)
    with pytest.raises(CipherError, match="chmod 600") as raised:
        load_or_create_key_file(path)
    assert path.read_text().strip().split(":")[1] not in str(raised.value)


def test_key_file_with_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"this is not a key\n")
    os.close(fd)
    with pytest.raises(CipherError, match=re.escape(str(path))):
        load_or_create_key_file(path)
