"""The invoice and webhook event repositories' contract, on memory, SQLite and PostgreSQL alike (see conftest.py).

unapplied() reads every installation's events, so every test here has a store of its own: on PostgreSQL a
scratch database per test rather than the session's shared one."""

from __future__ import annotations

import asyncio
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
from marketplace_provider.adapters.storage.sql_queues import WEBHOOKS_LOCK_CLASS
from marketplace_provider.adapters.storage.sqlite import SqliteStorage
from marketplace_provider.domain.invoices import Invoice, InvoiceEvent, InvoiceState, InvoiceTransition
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Storage
from tests.contract.test_storage import a_resource, new_installation, saved, uid

NOW = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


pytestmark = pytest.mark.own_database  # a database per test: claims and sweeps read every row


def an_invoice(installation_id: str, invoice_id: str | None = None, **changes: object) -> Invoice:
    """Every field set."""
    invoice = Invoice(
        id=invoice_id or uid("inv"),
        installation_id=installation_id,
        state=InvoiceState.REFUND_REQUESTED,
        updated_at=NOW,
        external_id=uid("ext"),
        period_start=datetime(2025, 2, 1, tzinfo=UTC),
        period_end=datetime(2025, 3, 1, tzinfo=UTC),
        total="123.45",
        test=True,
        failed_attempts=3,
        notices=7,
        refund_total="20.00",
        refund_reason="Duplicate charge, ü",
    )
    return replace(invoice, **changes)


def a_transition(invoice: Invoice, event: InvoiceEvent, before: InvoiceState | None, **changes: object) -> InvoiceTransition:
    transition = InvoiceTransition(
        invoice_id=invoice.id,
        event=event,
        from_state=before,
        to_state=invoice.state,
        happened_at=invoice.updated_at,
        webhook_event_id=uid("evt"),
    )
    return replace(transition, **changes)


def an_event(installation_id: str | None, created_at: datetime = NOW, **changes: object) -> StoredEvent:
    event_id = uid("evt")
    event = StoredEvent(
        id=event_id,
        type="marketplace.invoice.paid",
        installation_id=installation_id,
        created_at=created_at,
        body=f'{{"id":"{event_id}","type":"marketplace.invoice.paid","payload":{{}}}}'.encode(),
        received_at=created_at + timedelta(seconds=2),
    )
    return replace(event, **changes)


async def invoice_saved(storage: Storage, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
    async with storage.unit_of_work() as uow:
        await uow.invoices.save(invoice, transition)
        await uow.commit()


async def recorded(storage: Storage, *events: StoredEvent) -> list[bool]:
    async with storage.unit_of_work() as uow:
        new = [await uow.webhook_events.record(event) for event in events]
        await uow.commit()
    return new


async def held(storage: Storage, event_id: str) -> StoredEvent | None:
    async with storage.unit_of_work() as uow:
        return await uow.webhook_events.hold(event_id)


async def mark_applied(storage: Storage, event_id: str, at: datetime, error: str | None = None) -> None:
    async with storage.unit_of_work() as uow:
        await uow.webhook_events.applied(event_id, at, error)
        await uow.commit()


async def unapplied(storage: Storage, limit: int = 100) -> list[str]:
    async with storage.unit_of_work() as uow:
        return await uow.webhook_events.unapplied(limit)


# Invoices


async def test_invoice_round_trip_with_every_field(storage: Storage) -> None:
    installation = await new_installation(storage)
    invoice = an_invoice(installation.id, updated_at=datetime(2025, 3, 4, 7, 6, 7, 1, tzinfo=timezone(timedelta(hours=2))))
    await invoice_saved(storage, invoice)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get(invoice.id) == invoice
        assert await uow.invoices.get(uid("inv")) is None
        assert await uow.invoices.transitions(invoice.id) == []


async def test_invoice_round_trip_with_nothing_optional(storage: Storage) -> None:
    installation = await new_installation(storage)
    invoice = Invoice(id=uid("inv"), installation_id=installation.id, state=InvoiceState.PENDING, updated_at=NOW)
    await invoice_saved(storage, invoice)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get(invoice.id) == invoice


@pytest.mark.parametrize("state", list(InvoiceState))
async def test_every_invoice_state_is_stored(storage: Storage, state: InvoiceState) -> None:
    installation = await new_installation(storage)
    invoice = an_invoice(installation.id, state=state)
    await invoice_saved(storage, invoice, a_transition(invoice, InvoiceEvent.PAID, state))
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get(invoice.id) == invoice
        assert [t.to_state for t in await uow.invoices.transitions(invoice.id)] == [state]


async def test_invoice_save_replaces_and_appends_transitions_in_order(storage: Storage) -> None:
    installation = await new_installation(storage)
    first = an_invoice(installation.id, state=InvoiceState.INVOICED, failed_attempts=0, notices=1, refund_total=None,
                       refund_reason=None, test=False)  # fmt: skip
    created = a_transition(first, InvoiceEvent.INVOICED, None)
    await invoice_saved(storage, first, created)
    unpaid = replace(first, state=InvoiceState.NOTPAID, failed_attempts=1, notices=2, updated_at=NOW + timedelta(days=1))
    not_paid = a_transition(unpaid, InvoiceEvent.NOT_PAID, InvoiceState.INVOICED)
    await invoice_saved(storage, unpaid, not_paid)
    repeated = replace(unpaid, notices=3)  # a stale event: counted, no transition
    await invoice_saved(storage, repeated)
    # happened earlier than the transition before it: the history keeps the order they were saved in
    paid = replace(repeated, state=InvoiceState.PAID, notices=4, total="99.00", updated_at=NOW + timedelta(days=2))
    paid_late = a_transition(paid, InvoiceEvent.PAID, InvoiceState.NOTPAID, happened_at=NOW, webhook_event_id=None)
    await invoice_saved(storage, paid, paid_late)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get(first.id) == paid
        assert await uow.invoices.transitions(first.id) == [created, not_paid, paid_late]
        assert await uow.invoices.list_for_installation(installation.id) == [paid]


async def test_transitions_are_per_invoice(storage: Storage) -> None:
    installation = await new_installation(storage)
    one, two = an_invoice(installation.id), an_invoice(installation.id)
    async with storage.unit_of_work() as uow:
        await uow.invoices.save(one, a_transition(one, InvoiceEvent.INVOICED, None))
        await uow.invoices.save(two, a_transition(two, InvoiceEvent.INVOICED, None))
        await uow.invoices.save(one, a_transition(one, InvoiceEvent.PAID, InvoiceState.INVOICED))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert [t.event for t in await uow.invoices.transitions(one.id)] == [InvoiceEvent.INVOICED, InvoiceEvent.PAID]
        assert [t.event for t in await uow.invoices.transitions(two.id)] == [InvoiceEvent.INVOICED]
        assert await uow.invoices.transitions(uid("inv")) == []


async def test_invoices_list_most_recently_changed_first(storage: Storage) -> None:
    installation = await new_installation(storage)
    other = await new_installation(storage)
    old, middle, new = (an_invoice(installation.id, updated_at=NOW + timedelta(hours=n)) for n in (1, 2, 3))
    elsewhere = an_invoice(other.id, updated_at=NOW + timedelta(hours=5))
    for invoice in (middle, new, old, elsewhere):
        await invoice_saved(storage, invoice)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.list_for_installation(installation.id) == [new, middle, old]
        assert await uow.invoices.list_for_installation(uid("icfg")) == []
    changed = replace(old, state=InvoiceState.PAID, updated_at=NOW + timedelta(hours=4))
    await invoice_saved(storage, changed)
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.list_for_installation(installation.id) == [changed, new, middle]
        assert await uow.invoices.list_for_installation(other.id) == [elsewhere]


async def test_invoice_reads_see_own_writes_and_rollback_leaves_nothing(storage: Storage) -> None:
    installation = await new_installation(storage)
    invoice = an_invoice(installation.id)
    kept = an_invoice(installation.id, updated_at=NOW - timedelta(days=1))
    await invoice_saved(storage, kept)
    async with storage.unit_of_work() as uow:
        await uow.invoices.save(invoice, a_transition(invoice, InvoiceEvent.INVOICED, None))
        await uow.invoices.save(replace(kept, notices=99), a_transition(kept, InvoiceEvent.PAID, kept.state))
        assert await uow.invoices.get(invoice.id) == invoice
        assert len(await uow.invoices.transitions(invoice.id)) == 1
        assert await uow.invoices.list_for_installation(installation.id) == [invoice, replace(kept, notices=99)]
    async with storage.unit_of_work() as uow:
        assert await uow.invoices.get(invoice.id) is None
        assert await uow.invoices.transitions(invoice.id) == []
        assert await uow.invoices.transitions(kept.id) == []
        assert await uow.invoices.list_for_installation(installation.id) == [kept]


# Webhook events


async def test_event_round_trip_and_unknown_is_none(storage: Storage) -> None:
    event = an_event(uid("icfg"), created_at=datetime(2025, 3, 4, 7, 6, 7, 1, tzinfo=timezone(timedelta(hours=2))))
    assert await recorded(storage, event) == [True]
    assert await held(storage, event.id) == event
    assert await held(storage, uid("evt")) is None


async def test_events_of_no_or_unknown_installation_are_stored(storage: Storage) -> None:
    # no foreign key: Vercel may tell about an installation we never saw, or name none at all
    nobody, unknown = an_event(None), an_event(uid("icfg"))
    assert await recorded(storage, nobody, unknown) == [True, True]
    assert await held(storage, nobody.id) == nobody
    assert await held(storage, unknown.id) == unknown
    assert await unapplied(storage) == sorted([nobody.id, unknown.id])


async def test_redeliveries_are_counted(storage: Storage) -> None:
    event = an_event(uid("icfg"))
    assert await recorded(storage, event) == [True]
    again = replace(event, received_at=event.received_at + timedelta(minutes=1))
    assert await recorded(storage, again) == [False]
    async with storage.unit_of_work() as uow:  # twice in one unit of work
        assert await uow.webhook_events.record(replace(again, received_at=again.received_at + timedelta(minutes=1))) is False
        assert await uow.webhook_events.record(again) is False
        await uow.commit()
    got = await held(storage, event.id)
    # the first delivery is what was stored; later ones only count
    assert got == replace(event, delivery_count=4)


async def test_redelivery_keeps_the_applied_state(storage: Storage) -> None:
    event = an_event(uid("icfg"))
    await recorded(storage, event)
    await mark_applied(storage, event.id, NOW + timedelta(minutes=5))
    assert await recorded(storage, event) == [False]
    assert await held(storage, event.id) == replace(event, delivery_count=2, applied_at=NOW + timedelta(minutes=5))
    assert await unapplied(storage) == []


@pytest.mark.parametrize(
    "body",
    [
        '{"id":"evt","payload":{"name":"Müller – 東京 🚀","note":"\\u00fc"}}'.encode(),
        "".join(map(chr, [*range(1, 0x800), 0xFFFD, 0x10348, 0x1F600])).encode(),  # UTF-8, 1 to 4 bytes a char
        bytes(range(1, 256)) * 3,  # not UTF-8 at all
        b"",
    ],
    ids=["non-ascii-json", "utf8-range", "binary", "empty"],
)
async def test_body_bytes_come_back_identical(storage: Storage, body: bytes) -> None:
    event = an_event(uid("icfg"), body=body)
    await recorded(storage, event)
    got = await held(storage, event.id)
    assert got is not None and type(got.body) is bytes and got.body == body
    async with storage.unit_of_work() as uow:
        [listed] = await uow.webhook_events.list_for_installation(event.installation_id, 10)
    assert listed.body == body


async def test_hold_returns_the_applied_state(storage: Storage) -> None:
    event = an_event(uid("icfg"))
    await recorded(storage, event)
    async with storage.unit_of_work() as uow:
        assert await uow.webhook_events.hold(event.id) == event
        await uow.webhook_events.applied(event.id, NOW + timedelta(minutes=1), "stale or repeated paid")
        # within the unit of work, its own change shows
        assert (await uow.webhook_events.hold(event.id)).applied_at == NOW + timedelta(minutes=1)
        await uow.commit()
    got = await held(storage, event.id)
    assert got == replace(event, applied_at=NOW + timedelta(minutes=1), error="stale or repeated paid")
    await mark_applied(storage, event.id, NOW + timedelta(minutes=2))  # applied again: the error goes
    assert await held(storage, event.id) == replace(event, applied_at=NOW + timedelta(minutes=2))


async def test_applied_is_kept_only_when_committed(storage: Storage) -> None:
    event = an_event(uid("icfg"))
    await recorded(storage, event)
    async with storage.unit_of_work() as uow:
        await uow.webhook_events.hold(event.id)
        await uow.webhook_events.applied(event.id, NOW, "no effect")
        assert await uow.webhook_events.unapplied(10) == []
    assert await held(storage, event.id) == event
    assert await unapplied(storage) == [event.id]


async def test_unapplied_by_created_at_then_id_with_limit(storage: Storage) -> None:
    installation_id = uid("icfg")
    late = an_event(installation_id, NOW + timedelta(seconds=3))
    tied_b = an_event(None, NOW + timedelta(seconds=1), id="evt_tie_b")
    tied_a = an_event(installation_id, NOW + timedelta(seconds=1), id="evt_tie_a")
    early = an_event(uid("icfg"), NOW - timedelta(days=1))
    done = an_event(installation_id, NOW - timedelta(days=2))
    await recorded(storage, late, tied_b, done, tied_a, early)
    await mark_applied(storage, done.id, NOW)
    assert await unapplied(storage) == [early.id, tied_a.id, tied_b.id, late.id]
    assert await unapplied(storage, 2) == [early.id, tied_a.id]
    assert await unapplied(storage, 0) == []
    await mark_applied(storage, tied_a.id, NOW)
    assert await unapplied(storage, 2) == [early.id, tied_b.id]


async def test_list_for_installation_newest_first_with_limit(storage: Storage) -> None:
    installation_id = uid("icfg")
    events = [an_event(installation_id, NOW + timedelta(minutes=n)) for n in (2, 0, 3, 1)]
    elsewhere = an_event(uid("icfg"), NOW + timedelta(hours=1))
    await recorded(storage, *events, elsewhere, an_event(None, NOW + timedelta(hours=1)))
    await mark_applied(storage, events[0].id, NOW + timedelta(hours=2), "no action")
    newest_first = [events[2], replace(events[0], applied_at=NOW + timedelta(hours=2), error="no action"), events[3], events[1]]
    async with storage.unit_of_work() as uow:
        assert await uow.webhook_events.list_for_installation(installation_id, 10) == newest_first
        assert await uow.webhook_events.list_for_installation(installation_id, 3) == newest_first[:3]
        assert await uow.webhook_events.list_for_installation(installation_id, 0) == []
        assert await uow.webhook_events.list_for_installation(elsewhere.installation_id, 10) == [elsewhere]
        assert await uow.webhook_events.list_for_installation(uid("icfg"), 10) == []


async def test_recorded_events_roll_back(storage: Storage) -> None:
    event = an_event(uid("icfg"))
    async with storage.unit_of_work() as uow:
        assert await uow.webhook_events.record(event) is True
        assert await uow.webhook_events.hold(event.id) == event
        assert await uow.webhook_events.unapplied(10) == [event.id]
    assert await held(storage, event.id) is None
    assert await unapplied(storage) == []
    async with storage.unit_of_work() as uow:
        assert await uow.webhook_events.list_for_installation(event.installation_id, 10) == []
    await recorded(storage, event)
    async with storage.unit_of_work() as uow:  # a redelivery rolled back is not counted
        assert await uow.webhook_events.record(event) is False
    assert await held(storage, event.id) == event


async def test_an_event_and_its_effects_commit_together(storage: Storage) -> None:
    installation = await new_installation(storage)
    resource = a_resource(installation.id)
    await saved(storage, resource)
    event = an_event(installation.id)
    await recorded(storage, event)
    invoice = an_invoice(installation.id, state=InvoiceState.NOTPAID)
    held_resource = replace(resource, billing_hold=True)
    for commit in (False, True):
        async with storage.unit_of_work() as uow:
            assert (await uow.webhook_events.hold(event.id)).applied_at is None
            await uow.invoices.save(invoice, a_transition(invoice, InvoiceEvent.NOT_PAID, None, webhook_event_id=event.id))
            await uow.resources.save(held_resource)
            await uow.webhook_events.applied(event.id, NOW)
            if commit:
                await uow.commit()
        async with storage.unit_of_work() as uow:
            assert (await uow.invoices.get(invoice.id) is not None) is commit
            assert (await uow.resources.get(installation.id, resource.id)).billing_hold is commit
            assert (await uow.webhook_events.hold(event.id)).applied_at == (NOW if commit else None)


# PostgreSQL only: the hold across processes


async def waiting_holds(dsn: str, expected: int) -> None:
    """Until `expected` transactions wait for the webhook-events advisory lock."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(500):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1",
                WEBHOOKS_LOCK_CLASS,
            )
            if waiting == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{waiting} holds wait, not {expected}")
    finally:
        await conn.close()


async def test_postgres_holds_of_one_installation_run_one_after_the_other(
    own_postgres_dsn: str, cipher: SecretCipher
) -> None:
    first, second = [await PostgresStorage.open(own_postgres_dsn, cipher) for _ in range(2)]  # two processes
    try:
        installation_id = uid("icfg")
        applying, sibling = an_event(installation_id), an_event(installation_id, NOW + timedelta(seconds=1))
        await recorded(first, applying, sibling)
        order: list[str] = []

        async def hold_in_second(event_id: str) -> StoredEvent | None:
            async with second.unit_of_work() as uow:
                event = await uow.webhook_events.hold(event_id)
                order.append(f"second holds {event_id}")
                return event

        async with first.unit_of_work() as uow:
            assert await uow.webhook_events.hold(applying.id) == applying
            same = asyncio.create_task(hold_in_second(applying.id))
            other = asyncio.create_task(hold_in_second(sibling.id))
            await waiting_holds(own_postgres_dsn, 2)
            assert not same.done() and not other.done()
            await uow.webhook_events.applied(applying.id, NOW)
            order.append("first commits")
            await uow.commit()
        # the one waiting for the very event sees it applied, though it read the row before it waited
        assert await asyncio.wait_for(same, 5) == replace(applying, applied_at=NOW)
        assert await asyncio.wait_for(other, 5) == sibling
        assert order[0] == "first commits" and len(order) == 3
    finally:
        await first.close()
        await second.close()


async def test_postgres_holds_of_different_installations_do_not_wait(
    own_postgres_dsn: str, cipher: SecretCipher
) -> None:
    first, second = [await PostgresStorage.open(own_postgres_dsn, cipher) for _ in range(2)]
    try:
        one, two = an_event(uid("icfg")), an_event(uid("icfg"))
        lone, other_lone = an_event(None), an_event(None)  # no installation: each is held on its own
        await recorded(first, one, two, lone, other_lone)
        async with first.unit_of_work() as uow:
            assert await uow.webhook_events.hold(one.id) == one
            assert await uow.webhook_events.hold(lone.id) == lone
            assert await asyncio.wait_for(held(second, two.id), 5) == two
            assert await asyncio.wait_for(held(second, other_lone.id), 5) == other_lone
            # while the same event, held by the first, still waits
            waiting = asyncio.create_task(held(second, lone.id))
            await waiting_holds(own_postgres_dsn, 1)
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 5) == lone
    finally:
        await first.close()
        await second.close()


# Migrations: a database made before 0003 gets its columns, with the defaults


UNDO_0003 = (
    "DROP INDEX webhook_events_unapplied_by_created",
    "CREATE INDEX webhook_events_unapplied ON webhook_events (received_at) WHERE applied_at IS NULL",
    "ALTER TABLE resources DROP COLUMN billing_hold",
    "ALTER TABLE invoices DROP COLUMN notices",
    "DELETE FROM schema_migrations WHERE version = '0003_webhooks'",
)


async def rows_before_0003(storage: Storage) -> tuple[str, str, str]:
    """An installation, a held resource and an invoice with notices, saved before 0003 is undone."""
    installation = await new_installation(storage)
    resource = a_resource(installation.id, billing_hold=True)
    await saved(storage, resource)
    invoice = an_invoice(installation.id)
    await invoice_saved(storage, invoice)
    await storage.close()
    return installation.id, resource.id, invoice.id


async def check_after_0003(storage: Storage, installation_id: str, resource_id: str, invoice_id: str) -> None:
    try:
        async with storage.unit_of_work() as uow:
            resource = await uow.resources.get(installation_id, resource_id)
            invoice = await uow.invoices.get(invoice_id)
            assert resource is not None and resource.billing_hold is False
            assert invoice is not None and invoice.notices == 0 and invoice.failed_attempts == 3
            await uow.webhook_events.record(an_event(installation_id))
            assert len(await uow.webhook_events.unapplied(10)) == 1
    finally:
        await storage.close()


async def test_sqlite_database_from_before_0003_is_migrated(tmp_path, cipher: SecretCipher) -> None:
    assert [version for version, _ in migrations("sqlite")][2:3] == ["0003_webhooks"]
    path = tmp_path / "old.db"
    await migrate_sqlite(path)
    ids = await rows_before_0003(await SqliteStorage.open(path, cipher))
    conn = sqlite3.connect(path)
    try:
        with conn:
            for statement in UNDO_0003:
                conn.execute(statement)
    finally:
        conn.close()
    assert await pending_sqlite(path) == ["0003_webhooks"]
    assert await migrate_sqlite(path) == ["0003_webhooks"]
    assert await pending_sqlite(path) == [] and await migrate_sqlite(path) == []
    await check_after_0003(await SqliteStorage.open(path, cipher), *ids)


async def test_postgres_database_from_before_0003_is_migrated(own_postgres_dsn: str, cipher: SecretCipher) -> None:
    assert [version for version, _ in migrations("postgres")][2:3] == ["0003_webhooks"]
    ids = await rows_before_0003(await PostgresStorage.open(own_postgres_dsn, cipher))
    conn = await asyncpg.connect(own_postgres_dsn)
    try:
        for statement in UNDO_0003:
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await pending_postgres(own_postgres_dsn) == ["0003_webhooks"]
    assert await migrate_postgres(own_postgres_dsn) == ["0003_webhooks"]
    assert await pending_postgres(own_postgres_dsn) == [] and await migrate_postgres(own_postgres_dsn) == []
    await check_after_0003(await PostgresStorage.open(own_postgres_dsn, cipher), *ids)
