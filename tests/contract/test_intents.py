"""Provisioning intents on every backend: one running provisioning per resource, taken over once stale, ended
with the resource's row, and nothing kept from a transaction that rolled back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketplace_provider.ports.storage import Storage
from tests.contract.test_outbox import uid

STARTED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STALE = timedelta(minutes=10)


async def begin(storage: Storage, resource_id: str, at: datetime) -> bool:
    async with storage.unit_of_work() as uow:
        began = await uow.intents.begin("icfg_intents", resource_id, at, stale_before=at - STALE)
        await uow.commit()
    return began


async def end(storage: Storage, resource_id: str) -> None:
    async with storage.unit_of_work() as uow:
        await uow.intents.end(resource_id)
        await uow.commit()


async def test_one_provisioning_runs_per_resource_until_it_ends(storage: Storage) -> None:
    resource_id = uid("res")
    assert await begin(storage, resource_id, STARTED) is True
    assert await begin(storage, resource_id, STARTED + timedelta(minutes=1)) is False  # still running
    assert await begin(storage, uid("res"), STARTED) is True  # another resource is another matter
    await end(storage, resource_id)
    assert await begin(storage, resource_id, STARTED + timedelta(minutes=2)) is True


async def test_a_stale_intent_is_taken_over_once(storage: Storage) -> None:
    resource_id = uid("res")
    assert await begin(storage, resource_id, STARTED) is True
    later = STARTED + STALE + timedelta(seconds=1)  # the process that began it died
    assert await begin(storage, resource_id, later) is True
    assert await begin(storage, resource_id, later + timedelta(seconds=1)) is False  # the taker runs now


async def test_a_rolled_back_intent_is_not_kept(storage: Storage) -> None:
    resource_id = uid("res")
    async with storage.unit_of_work() as uow:
        assert await uow.intents.begin("icfg_intents", resource_id, STARTED, stale_before=STARTED - STALE)
    assert await begin(storage, resource_id, STARTED) is True


async def test_ending_an_unknown_intent_is_harmless(storage: Storage) -> None:
    await end(storage, uid("res"))
