"""Storage: repositories for what the business keeps, committed together by a unit of work.

Every Partner API call runs in one unit of work. Adapters: memory, SQLite, PostgreSQL
(adapters/storage/), checked by one contract suite (tests/contract/).
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

import msgspec

from domain.installations import Installation
from domain.resources import Resource
from domain.transfers import TransferClaim

T = TypeVar("T")


class InstallationRepository(Protocol):
    async def get(self, installation_id: str) -> Installation | None: ...

    async def save(self, installation: Installation) -> None:
        """Insert or replace."""
        ...


class ResourceRepository(Protocol):
    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        """The resource if it belongs to that installation (uninstalled ones included)."""
        ...

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        """Resources not uninstalled, oldest first; `ids` filters."""
        ...

    async def add(self, resource: Resource) -> None:
        """Insert; raises Conflict if the id exists."""
        ...

    async def save(self, resource: Resource) -> None:
        """Replace an existing resource (its installation may change: transfers)."""
        ...


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """What a mutation answered, kept under its Idempotency-Key so that a retry gets the same answer."""

    fingerprint: str  # which request the key was first used for
    result: object | None


class ReplyRepository(Protocol):
    async def lookup(self, installation_id: str, key: str, result_type: type) -> Reply | None:
        """The stored reply for the key. Also holds the key until the unit of work ends, so that two
        concurrent requests with one key run one after the other."""
        ...

    async def save(self, installation_id: str, key: str, reply: Reply) -> None: ...


class ClaimRepository(Protocol):
    async def get(self, claim_id: str) -> TransferClaim | None: ...

    async def save(self, claim: TransferClaim) -> None: ...


class BalanceRepository(Protocol):
    async def get(self, installation_id: str) -> dict[str | None, int]:
        """Credit in cents per resource id (None: installation-level)."""
        ...

    async def save(self, installation_id: str, balances: dict[str | None, int]) -> None: ...

    async def record_purchase(self, installation_id: str, invoice_id: str, at: datetime) -> bool:
        """Remember a processed prepayment invoice; False if it was processed before (never credit twice)."""
        ...


class UnitOfWork(Protocol):
    installations: InstallationRepository
    resources: ResourceRepository
    replies: ReplyRepository
    claims: ClaimRepository
    balances: BalanceRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""
        ...

    async def commit(self) -> None: ...


class Storage(Protocol):
    def unit_of_work(self) -> UnitOfWork: ...

    async def ping(self) -> None:
        """Raise if storage does not answer (readiness)."""
        ...

    async def close(self) -> None: ...
