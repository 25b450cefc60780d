"""Parts wrapped to be counted (adapters/metrics.py), put in place by the composition root
(entrypoints/containers.py), so that the domain and the integrator's code know nothing of metrics.

- `MeteredProvisioner`: every call to the integrator's provisioner, by operation, ok or failed, and how long.
- `DeliveryMeter`: the storage the outbox delivery works through; it sees which claimed message was delivered,
  put back for a retry or given up (dead), once that is committed, and how long after its recording it was
  delivered.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from time import perf_counter
from typing import Any, TypeVar

from marketplace_provider.adapters.metrics import (
    OUTBOX_DELIVERIES,
    OUTBOX_LAG,
    PROVISIONER_CALLS,
    PROVISIONER_LATENCY,
)
from marketplace_provider.domain.outbox import OutboxEntry
from marketplace_provider.domain.repl import ReplOutcome
from marketplace_provider.domain.resources import Resource
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, ResourceProvisioner, Rotation
from marketplace_provider.ports.storage import OutboxRepository, Storage, UnitOfWork

T = TypeVar("T")


class MeteredProvisioner:
    """The integrator's provisioner (`inner`), each call counted and timed."""

    def __init__(self, inner: ResourceProvisioner) -> None:
        self.inner = inner

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        return await _timed("provision", self.inner.provision(draft))

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        return await _timed("reconfigure", self.inner.reconfigure(before, after))

    async def deprovision(self, resource: Resource) -> None:
        return await _timed("deprovision", self.inner.deprovision(resource))

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        return await _timed("rotate_secrets", self.inner.rotate_secrets(resource, reason, keep_old_hours))

    async def repl(self, resource: Resource, command: str, read_only: bool) -> ReplOutcome:
        return await _timed("repl", self.inner.repl(resource, command, read_only))

    def __getattr__(self, name: str) -> Any:  # anything else the integrator's object offers
        return getattr(self.inner, name)


async def _timed(operation: str, call: Awaitable[T]) -> T:
    started = perf_counter()
    try:
        result = await call
    except Exception:
        PROVISIONER_CALLS.labels(operation=operation, outcome="failed").inc()
        raise
    finally:
        PROVISIONER_LATENCY.labels(operation=operation).observe(perf_counter() - started)
    PROVISIONER_CALLS.labels(operation=operation, outcome="ok").inc()
    return result


# What a claimed message was, until its outcome is committed: kind and recording time.
_Claims = dict[str, tuple[str, datetime]]
MAX_REMEMBERED_CLAIMS = 100_000  # a claim whose outcome never came (storage failed meanwhile) is not kept forever


class DeliveryMeter:
    """A `Storage` for the outbox delivery alone: the same storage, its outbox outcomes counted on commit."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self._claims: _Claims = {}

    def unit_of_work(self) -> UnitOfWork:
        return _MeteredUnitOfWork(self.inner.unit_of_work(), self._claims)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        """Nothing: the storage belongs to the container, which closes it."""


class _MeteredUnitOfWork:
    def __init__(self, inner: UnitOfWork, claims: _Claims) -> None:
        self._uow = inner
        self._claims = claims
        self._outcomes: list[tuple[str, str, datetime | None]] = []  # (entry id, outcome, delivered at)

    async def __aenter__(self) -> _MeteredUnitOfWork:
        self._uow = await self._uow.__aenter__()  # repositories may exist only once it is entered
        self.outbox = _MeteredOutbox(self._uow.outbox, self._claims, self._outcomes)
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        self._outcomes.clear()  # not committed: nothing happened
        return await self._uow.__aexit__(*exc_info)

    async def commit(self) -> None:
        await self._uow.commit()
        for entry_id, outcome, delivered_at in self._outcomes:
            kind, created_at = self._claims.pop(entry_id, ("unknown", None))
            OUTBOX_DELIVERIES.labels(kind=kind, outcome=outcome).inc()
            if delivered_at is not None and created_at is not None:
                OUTBOX_LAG.labels(kind=kind).observe(max(0.0, (delivered_at - created_at).total_seconds()))
        self._outcomes.clear()

    def __getattr__(self, name: str) -> Any:  # installations, resources...: the storage's own
        return getattr(self._uow, name)


class _MeteredOutbox:
    def __init__(self, inner: OutboxRepository, claims: _Claims, outcomes: list[tuple[str, str, datetime | None]]) -> None:
        self._inner = inner
        self._claims = claims
        self._outcomes = outcomes

    async def claim(self, *args: Any, **kwargs: Any) -> list[OutboxEntry]:
        entries = await self._inner.claim(*args, **kwargs)
        if len(self._claims) > MAX_REMEMBERED_CLAIMS:
            self._claims.clear()
        for entry in entries:
            self._claims[entry.id] = (entry.kind, entry.created_at)
        return entries

    async def release(self, ids: list[str]) -> None:
        await self._inner.release(ids)
        for entry_id in ids:
            self._claims.pop(entry_id, None)

    async def delivered(self, entry_id: str, at: datetime) -> None:
        await self._inner.delivered(entry_id, at)
        self._outcomes.append((entry_id, "delivered", at))

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        await self._inner.failed(entry_id, error, retry_at)
        self._outcomes.append((entry_id, "dead" if retry_at is None else "retrying", None))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
