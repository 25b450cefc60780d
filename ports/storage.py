"""Storage: repositories for what the business keeps, committed together by a unit of work.

Every Partner API call runs in one unit of work. Adapters: memory, SQLite, PostgreSQL
(adapters/storage/), checked by one contract suite (tests/contract/).
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

import msgspec

from marketplace_provider.domain.installations import Installation, Lifecycle
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.outbox import OutboxCounts, OutboxEntry, OutboxMessage
from marketplace_provider.domain.resources import Resource
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.domain.webhooks import StoredEvent

T = TypeVar("T")


class InstallationRepository(Protocol):
    async def get(self, installation_id: str) -> Installation | None: ...

    async def save(self, installation: Installation) -> None:
        """Insert or replace."""
        ...

    async def page(self, lifecycle: Lifecycle, after: str | None, limit: int) -> list[Installation]:
        """Installations in that lifecycle, by id, the first `limit` with an id greater than `after`."""
        ...


class ResourceRepository(Protocol):
    async def get(self, installation_id: str, resource_id: str) -> Resource | None:
        """The resource if it belongs to that installation (uninstalled ones included)."""
        ...

    async def list_live(self, installation_id: str, ids: list[str] | None = None) -> list[Resource]:
        """Resources not uninstalled, oldest first; `ids` filters."""
        ...

    async def list_all(self, installation_id: str) -> list[Resource]:
        """Every resource of the installation, uninstalled ones included, oldest first (billing)."""
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


class OutboxRepository(Protocol):
    """Messages owed to Vercel. `add` joins the caller's unit of work; the worker's calls each run in a short
    unit of work of their own and commit at once."""

    async def add(self, installation_id: str, message: OutboxMessage, at: datetime) -> str:
        """Record a message, due now; returns its id. Sensitive messages are stored sealed."""
        ...

    async def claim(
        self, now: datetime, lease_until: datetime, installations: int, per_installation: int
    ) -> list[OutboxEntry]:
        """Lease due messages for delivery: for up to `installations` installations whose oldest pending message
        is due and not leased, their oldest pending messages (at most `per_installation`), ordered by
        installation then seq. Two workers never hold messages of one installation at once."""
        ...

    async def release(self, ids: list[str]) -> None:
        """Drop the lease of messages claimed but not attempted (they stay pending, due as before)."""
        ...

    async def delivered(self, entry_id: str, at: datetime) -> None: ...

    async def failed(self, entry_id: str, error: str, retry_at: datetime | None) -> None:
        """Count a failed attempt and keep the error: due again at `retry_at`, or dead when it is None."""
        ...

    async def counts(self) -> OutboxCounts: ...

    async def dead(self, limit: int) -> list[OutboxEntry]:
        """Dead messages, oldest first."""
        ...

    async def revive(self, ids: list[str] | None, at: datetime) -> int:
        """Make dead messages (all when ids is None) pending again with no attempts, due `at`; how many."""
        ...

    async def entries(self, installation_id: str) -> list[OutboxEntry]:
        """Every message of one installation in seq order, whatever its state (operators, tests)."""
        ...


class JobRepository(Protocol):
    """Runs of scheduled jobs, one row per (job, key): the record that a period's work was done."""

    async def has_run(self, job: str, key: str) -> bool: ...

    async def claim(self, job: str, key: str, at: datetime) -> bool:
        """Record the run; False if it was recorded before (by this or another worker). Commits with the
        unit of work, so a run and the messages it wrote are recorded together or not at all."""
        ...


class IntentRepository(Protocol):
    """Provisioning under way: recorded and committed before the integrator's provisioner runs, so that a retry
    of the same request meanwhile is told so instead of provisioning a second time."""

    async def begin(self, installation_id: str, resource_id: str, at: datetime, stale_before: datetime) -> bool:
        """Record it; False when one for this resource began after `stale_before` (still running). An older one
        is taken over: the process that began it died."""
        ...

    async def end(self, resource_id: str) -> None: ...


class InvoiceRepository(Protocol):
    async def get(self, invoice_id: str) -> Invoice | None: ...

    async def save(self, invoice: Invoice, transition: InvoiceTransition | None = None) -> None:
        """Insert or replace; `transition` is appended to the invoice's history."""
        ...

    async def list_for_installation(self, installation_id: str) -> list[Invoice]:
        """The installation's invoices, most recently changed first."""
        ...

    async def transitions(self, invoice_id: str) -> list[InvoiceTransition]:
        """The invoice's history, oldest first."""
        ...


class WebhookEventRepository(Protocol):
    """The inbox: verified deliveries, stored before they are acknowledged and applied from here."""

    async def record(self, event: StoredEvent) -> bool:
        """Insert; when the id is known, count one more delivery (delivery_count, last received) and return False."""
        ...

    async def hold(self, event_id: str) -> StoredEvent | None:
        """The event, held until the unit of work ends together with every event of its installation, so that
        an event is applied once and one installation's events one at a time, whichever process applies them."""
        ...

    async def applied(self, event_id: str, at: datetime, error: str | None = None) -> None:
        """Mark it applied (error: why it had no effect or failed, for the event log)."""
        ...

    async def unapplied(self, limit: int) -> list[str]:
        """Ids of events stored but not applied yet, by createdAt."""
        ...

    async def list_for_installation(self, installation_id: str, limit: int) -> list[StoredEvent]:
        """The installation's events, most recent createdAt first (the dashboard's event log)."""
        ...


class SessionRepository(Protocol):
    """Browser sessions after SSO, found by the hash of the id the cookie carries."""

    async def add(self, session: Session) -> None: ...

    async def get(self, id_hash: bytes) -> Session | None:
        """The session, expired or revoked ones included (the caller checks `valid_at`)."""
        ...

    async def revoke(self, id_hash: bytes, at: datetime) -> None: ...

    async def revoke_user(self, installation_id: str, user_id: str, at: datetime) -> int:
        """Revoke every live session of that member of the installation (removed, or role changed); how many."""
        ...


class UnitOfWork(Protocol):
    # Read-only properties, not attributes: a protocol attribute is settable, so mypy would require each
    # adapter to declare exactly these types (invariance); a property accepts an adapter's own repository class.
    @property
    def installations(self) -> InstallationRepository: ...

    @property
    def resources(self) -> ResourceRepository: ...

    @property
    def replies(self) -> ReplyRepository: ...

    @property
    def claims(self) -> ClaimRepository: ...

    @property
    def balances(self) -> BalanceRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def intents(self) -> IntentRepository: ...

    @property
    def invoices(self) -> InvoiceRepository: ...

    @property
    def webhook_events(self) -> WebhookEventRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

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
