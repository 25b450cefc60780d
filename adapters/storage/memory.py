"""In-memory storage for fast tests. One transaction at a time (a lock); writes are staged and applied
on commit, so a rollback leaves nothing behind, as with the SQL backends."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import TracebackType
from typing import Self

from domain.errors import Conflict
from domain.installations import Installation
from domain.resources import Resource
from domain.transfers import TransferClaim
from ports.storage import Reply


class _Tables:
    def __init__(self) -> None:
        self.installations: dict[str, Installation] = {}
        self.resources: dict[str, Resource] = {}
        self.replies: dict[tuple[str, str], Reply] = {}
        self.claims: dict[str, TransferClaim] = {}
        self.balances: dict[str, dict[str | None, int]] = {}
        self.purchases: dict[str, str] = {}  # invoice id -> installation id


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


class MemoryUnitOfWork:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._tx = _Staged(storage.tables)
        self.installations = _Installations(self._tx)
        self.resources = _Resources(self._tx)
        self.replies = _Replies(self._tx)
        self.claims = _Claims(self._tx)
        self.balances = _Balances(self._tx)

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
