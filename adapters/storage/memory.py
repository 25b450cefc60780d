"""In-memory storage for fast tests. One transaction at a time (a lock); writes are staged and applied
on commit, so a rollback leaves nothing behind, as with the SQL backends."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from types import TracebackType
from typing import Self

import msgspec
from msgspec.structs import replace

from marketplace_provider.adapters.storage.rows import LAST_ERROR_MAX, new_outbox_id
from marketplace_provider.domain.errors import Conflict
from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.outbox import OutboxCounts, OutboxEntry, OutboxMessage, OutboxState
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.domain.webhooks import StoredEvent
from marketplace_provider.ports.storage import Reply


class _OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    entry: OutboxEntry
    leased_until: datetime | None = None
    delivered_at: datetime | None = None

    def free(self, now: datetime) -> bool:
        """Due and not leased: the worker may take it."""
        return self.entry.due_at <= now and (self.leased_until is None or self.leased_until <= now)


class _Tables:
    def __init__(self) -> None:
        self.installations: dict[str, Installation] = {}
        self.resources: dict[str, Resource] = {}
        self.replies: dict[tuple[str, str], Reply] = {}
        self.claims: dict[str, TransferClaim] = {}
        self.balances: dict[str, dict[str | None, int]] = {}
        self.purchases: dict[str, str] = {}  # invoice id -> installation id
        self.outbox: dict[str, _OutboxRow] = {}
        self.outbox_seq = itertools.count(1)  # drawn at add, like a database sequence: a rollback leaves a gap
        self.job_runs: dict[tuple[str, str], datetime] = {}
        self.intents: dict[str, datetime | None] = {}  # resource id -> when provisioning began; None: ended
        self.invoices: dict[str, Invoice] = {}
        self.invoice_transitions: dict[str, tuple[InvoiceTransition, ...]] = {}  # invoice id -> its history
        self.webhook_events: dict[str, StoredEvent] = {}
        self.sessions: dict[bytes, Session] = {}  # by id hash


class _Staged:
    """Reads see committed rows overlaid with this transaction's writes."""

    def __init__(self, tables: _Tables) -> None:
        self.tables = tables
        self.writes: dict[str, dict] = {}

    def read(self, table: str, key):
        staged = self.writes.get(table, {})
        return staged[key] if key in staged else getattr(self.tables, table).get(key)

    def rows(self, table: str) -> dict:
        return {**getattr(self.tables, table), **self.writes.get(table, {})}

    def write(self, table: str, key, value) -> None:
        self.writes.setdefault(table, {})[key] = value

    def apply(self) -> None:
        for table, rows in self.writes.items():
            getattr(self.tables, table).update(rows)
        self.writes.clear()


class _Installations:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def get(self, installation_id: str) -> Installation | None:
        return self.tx.read("installations", installation_id)

    async def save(self, installation: Installation) -> None:
        self.tx.write("installations", installation.id, installation)

    async def page(self, lifecycle: Lifecycle, after: str | None, limit: int) -> list[Installation]:
        found = [
            i
            for i in self.tx.rows("installations").values()
            if i.lifecycle is lifecycle and (after is None or i.id > after)
        ]
        return sorted(found, key=lambda i: i.id)[:limit]


class _Resources:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        resource = self.tx.read("resources", resource_id)
        return resource if resource is not None and resource.installation_id == installation_id else None

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        found = [
            r
            for r in self.tx.rows("resources").values()
            if r.installation_id == installation_id and r.is_live and (ids is None or r.id in ids)
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def list_all(self, installation_id: str) -> list[Resource]:
        found = [r for r in self.tx.rows("resources").values() if r.installation_id == installation_id]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def add(self, resource: Resource) -> None:
        if self.tx.read("resources", resource.id) is not None:
            raise Conflict(f"resource {resource.id} exists")
        self.tx.write("resources", resource.id, resource)

    async def save(self, resource: Resource) -> None:
        self.tx.write("resources", resource.id, resource)


class _Replies:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def lookup(self, installation_id: str, key: str, result_type: type) -> Reply | None:
        return self.tx.read("replies", (installation_id, key))

    async def save(self, installation_id: str, key: str, reply: Reply) -> None:
        self.tx.write("replies", (installation_id, key), reply)


class _Claims:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def get(self, claim_id: str) -> TransferClaim | None:
        return self.tx.read("claims", claim_id)

    async def save(self, claim: TransferClaim) -> None:
        self.tx.write("claims", claim.id, claim)


class _Balances:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def get(self, installation_id: str) -> dict[str | None, int]:
        return dict(self.tx.read("balances", installation_id) or {})

    async def save(self, installation_id: str, balances: dict[str | None, int]) -> None:
        self.tx.write("balances", installation_id, dict(balances))

    async def record_purchase(self, installation_id: str, invoice_id: str, at: datetime) -> bool:
        if self.tx.read("purchases", invoice_id) is not None:
            return False
        self.tx.write("purchases", invoice_id, installation_id)
        return True


class _Outbox:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    def _rows(self) -> list[_OutboxRow]:
        return sorted(self.tx.rows("outbox").values(), key=lambda row: row.entry.seq)

    def _pending(self, entry_id: str) -> _OutboxRow | None:
        row = self.tx.read("outbox", entry_id)
        return row if row is not None and row.entry.state is OutboxState.PENDING else None

    async def add(self, installation_id: str, message: OutboxMessage, at: datetime) -> str:
        entry = OutboxEntry(
            id=new_outbox_id(),
            seq=next(self.tx.tables.outbox_seq),
            installation_id=installation_id,
            message=message,
            created_at=at,
            due_at=at,
        )
        self.tx.write("outbox", entry.id, _OutboxRow(entry=entry))
        return entry.id

    async def claim(
        self, now: datetime, lease_until: datetime, installations: int, per_installation: int
    ) -> list[OutboxEntry]:
        queues: dict[str, list[_OutboxRow]] = {}
        for row in self._rows():
            if row.entry.state is OutboxState.PENDING:
                queues.setdefault(row.entry.installation_id, []).append(row)
        ready = [queue for queue in queues.values() if queue[0].free(now)]
        ready.sort(key=lambda queue: (queue[0].entry.due_at, queue[0].entry.seq))
        claimed = []
        for queue in ready[: max(installations, 0)]:
            for row in queue[: max(per_installation, 0)]:
                if not row.free(now):
                    break
                self.tx.write("outbox", row.entry.id, replace(row, leased_until=lease_until))
                claimed.append(row.entry)
        return claimed

    async def release(self, ids: list[str]) -> None:
        for entry_id in ids:
            if (row := self._pending(entry_id)) is not None:
                self.tx.write("outbox", entry_id, replace(row, leased_until=None))

    async def delivered(self, entry_id: str, at: datetime) -> None:
        if (row := self._pending(entry_id)) is not None:
            entry = replace(row.entry, state=OutboxState.DELIVERED)
            self.tx.write("outbox", entry_id, _OutboxRow(entry=entry, delivered_at=at))

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        if (row := self._pending(entry_id)) is None:
            return
        entry = replace(row.entry, attempts=row.entry.attempts + 1, last_error=error[:LAST_ERROR_MAX])
        if retry_at is None:
            entry = replace(entry, state=OutboxState.DEAD)
        else:
            entry = replace(entry, due_at=retry_at)
        self.tx.write("outbox", entry_id, _OutboxRow(entry=entry))

    async def counts(self) -> OutboxCounts:
        entries = [row.entry for row in self.tx.rows("outbox").values()]
        pending = [e for e in entries if e.state is OutboxState.PENDING]
        return OutboxCounts(
            pending=sum(e.attempts == 0 for e in pending),
            retrying=sum(e.attempts > 0 for e in pending),
            dead=sum(e.state is OutboxState.DEAD for e in entries),
        )

    async def dead(self, limit: int) -> list[OutboxEntry]:
        return [row.entry for row in self._rows() if row.entry.state is OutboxState.DEAD][: max(limit, 0)]

    async def revive(self, ids: list[str] | None, at: datetime) -> int:
        wanted = None if ids is None else set(ids)
        revived = 0
        for row in self._rows():
            if row.entry.state is OutboxState.DEAD and (wanted is None or row.entry.id in wanted):
                # last_error stays: operators still see why it died until the next attempt
                entry = replace(row.entry, state=OutboxState.PENDING, attempts=0, due_at=at)
                self.tx.write("outbox", entry.id, _OutboxRow(entry=entry))
                revived += 1
        return revived

    async def entries(self, installation_id: str) -> list[OutboxEntry]:
        return [row.entry for row in self._rows() if row.entry.installation_id == installation_id]


class _Jobs:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def has_run(self, job: str, key: str) -> bool:
        return self.tx.read("job_runs", (job, key)) is not None

    async def claim(self, job: str, key: str, at: datetime) -> bool:
        if await self.has_run(job, key):
            return False
        self.tx.write("job_runs", (job, key), at)
        return True


class _Intents:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def begin(self, installation_id: str, resource_id: str, at: datetime, stale_before: datetime) -> bool:
        began = self.tx.read("intents", resource_id)
        if began is not None and began >= stale_before:
            return False
        self.tx.write("intents", resource_id, at)
        return True

    async def end(self, resource_id: str) -> None:
        self.tx.write("intents", resource_id, None)


class _Invoices:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def get(self, invoice_id: str) -> Invoice | None:
        return self.tx.read("invoices", invoice_id)

    async def save(self, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
        self.tx.write("invoices", invoice.id, invoice)
        if transition is not None:
            history = self.tx.read("invoice_transitions", transition.invoice_id) or ()
            self.tx.write("invoice_transitions", transition.invoice_id, (*history, transition))

    async def list_for_installation(self, installation_id: str) -> list[Invoice]:
        found = [i for i in self.tx.rows("invoices").values() if i.installation_id == installation_id]
        return sorted(found, key=lambda i: (i.updated_at, i.id), reverse=True)

    async def transitions(self, invoice_id: str) -> list[InvoiceTransition]:
        return list(self.tx.read("invoice_transitions", invoice_id) or ())


class _WebhookEvents:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def record(self, event: StoredEvent) -> bool:
        known = self.tx.read("webhook_events", event.id)
        if known is None:
            self.tx.write("webhook_events", event.id, event)
            return True
        self.tx.write("webhook_events", event.id, replace(known, delivery_count=known.delivery_count + 1))
        return False

    async def hold(self, event_id: str) -> StoredEvent | None:
        # units of work already run one at a time (the storage lock)
        return self.tx.read("webhook_events", event_id)

    async def applied(self, event_id: str, at: datetime, error: str | None = None) -> None:
        if (event := self.tx.read("webhook_events", event_id)) is not None:
            self.tx.write("webhook_events", event_id, replace(event, applied_at=at, error=error))

    async def unapplied(self, limit: int) -> list[str]:
        waiting = [e for e in self.tx.rows("webhook_events").values() if e.applied_at is None]
        return [e.id for e in sorted(waiting, key=lambda e: (e.created_at, e.id))][: max(limit, 0)]

    async def list_for_installation(self, installation_id: str, limit: int) -> list[StoredEvent]:
        found = [e for e in self.tx.rows("webhook_events").values() if e.installation_id == installation_id]
        return sorted(found, key=lambda e: (e.created_at, e.id), reverse=True)[: max(limit, 0)]


class _Sessions:
    def __init__(self, tx: _Staged) -> None:
        self.tx = tx

    async def add(self, session: Session) -> None:
        if self.tx.read("sessions", session.id_hash) is not None:
            raise Conflict("session exists")
        self.tx.write("sessions", session.id_hash, session)

    async def get(self, id_hash: bytes) -> Session | None:
        return self.tx.read("sessions", id_hash)

    async def revoke(self, id_hash: bytes, at: datetime) -> None:
        session = self.tx.read("sessions", id_hash)
        if session is not None and session.revoked_at is None:
            self.tx.write("sessions", id_hash, replace(session, revoked_at=at))

    async def revoke_user(self, installation_id: str, user_id: str, at: datetime) -> int:
        live = [
            s
            for s in self.tx.rows("sessions").values()
            if s.installation_id == installation_id and s.user_id == user_id and s.revoked_at is None
        ]
        for session in live:
            self.tx.write("sessions", session.id_hash, replace(session, revoked_at=at))
        return len(live)


class MemoryUnitOfWork:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._tx = _Staged(storage.tables)
        self.installations = _Installations(self._tx)
        self.resources = _Resources(self._tx)
        self.replies = _Replies(self._tx)
        self.claims = _Claims(self._tx)
        self.balances = _Balances(self._tx)
        self.outbox = _Outbox(self._tx)
        self.jobs = _Jobs(self._tx)
        self.intents = _Intents(self._tx)
        self.invoices = _Invoices(self._tx)
        self.webhook_events = _WebhookEvents(self._tx)
        self.sessions = _Sessions(self._tx)

    async def __aenter__(self) -> Self:
        await self._storage.lock.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tx.writes.clear()  # whatever was not committed is dropped
        self._storage.lock.release()

    async def commit(self) -> None:
        self._tx.apply()


class MemoryStorage:
    def __init__(self) -> None:
        self.tables = _Tables()
        self.lock = asyncio.Lock()

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
