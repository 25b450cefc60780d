"""Rows <-> domain objects, shared by the SQL backends (adapters/storage/sql_repositories.py, sql_queues.py).

The column layout, the sealing of secrets with the cipher (the associated data binds each ciphertext to
its row) and the conversion into domain Structs are the same in both; only how a backend stores JSON and
time values differs, which its dialect (dialects.py) gives its `RowCodec`. SQL and connections stay in the
repositories and the backends.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.domain.installations import Credentials, Installation
from marketplace_provider.domain.invoices import Invoice, InvoiceTransition
from marketplace_provider.domain.outbox import OutboxEntry, OutboxMessage
from marketplace_provider.domain.resources import Resource, Secret
from marketplace_provider.domain.sso import Session
from marketplace_provider.domain.transfers import TransferClaim
from marketplace_provider.domain.webhooks import StoredEvent


def aad(*parts: str) -> bytes:
    return b"\0".join(part.encode() for part in parts)


def _same(value: Any) -> Any:
    return value


INSTALLATION_COLUMNS = (
    "id", "account", "scopes", "accepted_policies", "token_type", "access_token_sealed", "access_token_key_id",
    "billing_plan_id", "notification", "lifecycle", "created_at", "updated_at", "deleted_at",
)  # fmt: skip
_INSTALLATION_JSON = ("account", "scopes", "accepted_policies", "notification")

RESOURCE_COLUMNS = (
    "id", "installation_id", "product_id", "name", "metadata", "billing_plan_id", "status", "secrets_sealed",
    "secrets_key_id", "notification", "external_id", "protocol_settings", "created_at", "updated_at",
    "billing_hold",
)  # fmt: skip
_RESOURCE_JSON = ("metadata", "notification", "protocol_settings")

CLAIM_COLUMNS = (
    "id", "source_installation_id", "resource_ids", "expires_at", "state", "created_at", "verified_by",
    "target_installation_id", "completed_at",
)  # fmt: skip
_CLAIM_JSON = ("resource_ids", "verified_by")

# what `add` writes, and what an OutboxEntry is read from
OUTBOX_INSERT_COLUMNS = (
    "id", "installation_id", "kind", "payload", "secret_sealed", "secret_key_id", "created_at", "due_at",
)  # fmt: skip
OUTBOX_COLUMNS = (
    "id", "seq", "installation_id", "payload", "secret_sealed", "secret_key_id", "created_at", "due_at",
    "attempts", "last_error", "state",
)  # fmt: skip
LAST_ERROR_MAX = 2000  # characters of a failed delivery's error kept

INVOICE_COLUMNS = (
    "id", "installation_id", "state", "external_id", "period_start", "period_end", "total", "test",
    "failed_attempts", "notices", "refund_total", "refund_reason", "updated_at",
)  # fmt: skip
TRANSITION_COLUMNS = ("invoice_id", "event", "from_state", "to_state", "happened_at", "webhook_event_id")
WEBHOOK_EVENT_COLUMNS = (
    "id", "type", "installation_id", "created_at", "body", "delivery_count", "received_at", "applied_at", "error",
)  # fmt: skip
# sso_sessions also has a resource_id column, unused: it stays NULL
SESSION_COLUMNS = (
    "id_hash", "installation_id", "user_id", "user_role", "created_at", "expires_at", "user_name", "revoked_at",
)  # fmt: skip


def new_outbox_id() -> str:
    return f"obx_{secrets.token_hex(12)}"


def leasable(queue: list[Any], now: Any) -> list[Any]:
    """Of an installation's pending outbox rows in seq order (with `leased_until`), those a claim may take: from
    the head up to the first one not due yet or leased by another worker. `now` in the backend's time form."""
    free = []
    for row in queue:
        if row["due_at"] > now or (row["leased_until"] is not None and row["leased_until"] > now):
            break
        free.append(row)
    return free


class RowCodec:
    """Domain objects to parameter tuples (in the order of the *_COLUMNS above) and rows back.

    `json` / `time`: how a JSON / time value is passed to the database; `from_json`: how a JSON column
    reads back, or None when the driver already decodes it. The defaults pass values through as they are.
    """

    def __init__(
        self,
        *,
        json: Callable[[object], Any] = _same,
        from_json: Callable[[Any], Any] | None = None,
        time: Callable[[datetime | None], Any] = _same,
    ) -> None:
        self._json = json
        self._from_json = from_json
        self._time = time

    def _decode_json(self, fields: dict[str, Any], names: tuple[str, ...]) -> None:
        if self._from_json is not None:
            for name in names:
                fields[name] = self._from_json(fields[name])

    def installation_row(self, installation: Installation, cipher: SecretCipher) -> tuple[Any, ...]:
        json, time = self._json, self._time
        token_type = key_id = sealed = None
        if installation.credentials is not None:
            token_type = installation.credentials.token_type
            key_id, sealed = cipher.seal(
                installation.credentials.access_token.encode(), aad("installations", installation.id)
            )
        return (
            installation.id, json(installation.account), json(installation.scopes),
            json(installation.accepted_policies), token_type, sealed, key_id, installation.billing_plan_id,
            json(installation.notification), installation.lifecycle.value, time(installation.created_at),
            time(installation.updated_at), time(installation.deleted_at),
        )  # fmt: skip

    def installation(self, row: Mapping[str, Any], cipher: SecretCipher) -> Installation:
        fields = dict(row)
        sealed, key_id = fields.pop("access_token_sealed"), fields.pop("access_token_key_id")
        token_type = fields.pop("token_type")
        self._decode_json(fields, _INSTALLATION_JSON)
        fields["credentials"] = None
        if sealed is not None:
            token = cipher.open(key_id, sealed, aad("installations", row["id"])).decode()
            fields["credentials"] = Credentials(access_token=token, token_type=token_type)
        return msgspec.convert(fields, Installation)

    def resource_row(self, resource: Resource, cipher: SecretCipher) -> tuple[Any, ...]:
        json, time = self._json, self._time
        key_id, sealed = cipher.seal(msgspec.json.encode(resource.secrets), aad("resources", resource.id))
        return (
            resource.id, resource.installation_id, resource.product_id, resource.name, json(resource.metadata),
            resource.billing_plan_id, resource.status.value, sealed, key_id, json(resource.notification),
            resource.external_id, json(resource.protocol_settings), time(resource.created_at),
            time(resource.updated_at), resource.billing_hold,
        )  # fmt: skip

    def resource(self, row: Mapping[str, Any], cipher: SecretCipher) -> Resource:
        fields = dict(row)
        sealed, key_id = fields.pop("secrets_sealed"), fields.pop("secrets_key_id")
        self._decode_json(fields, _RESOURCE_JSON)
        plaintext = cipher.open(key_id, sealed, aad("resources", row["id"]))
        fields["secrets"] = msgspec.json.decode(plaintext, type=tuple[Secret, ...])
        fields["billing_hold"] = bool(fields["billing_hold"])  # SQLite: 0/1
        return msgspec.convert(fields, Resource)

    def claim_row(self, claim: TransferClaim) -> tuple[Any, ...]:
        json, time = self._json, self._time
        return (
            claim.id, claim.source_installation_id, json(claim.resource_ids), time(claim.expires_at),
            claim.state.value, time(claim.created_at), json(claim.verified_by), claim.target_installation_id,
            time(claim.completed_at),
        )  # fmt: skip

    def claim(self, row: Mapping[str, Any]) -> TransferClaim:
        fields = dict(row)
        self._decode_json(fields, _CLAIM_JSON)
        return msgspec.convert(fields, TransferClaim)

    def invoice_row(self, invoice: Invoice) -> tuple[Any, ...]:
        time = self._time
        return (
            invoice.id, invoice.installation_id, invoice.state.value, invoice.external_id,
            time(invoice.period_start), time(invoice.period_end), invoice.total, invoice.test,
            invoice.failed_attempts, invoice.notices, invoice.refund_total, invoice.refund_reason,
            time(invoice.updated_at),
        )  # fmt: skip

    def invoice(self, row: Mapping[str, Any]) -> Invoice:
        fields = {name: row[name] for name in INVOICE_COLUMNS}
        fields["test"] = bool(fields["test"])  # SQLite: 0/1
        return msgspec.convert(fields, Invoice)

    def transition_row(self, transition: InvoiceTransition) -> tuple[Any, ...]:
        return (
            transition.invoice_id, transition.event.value,
            transition.from_state.value if transition.from_state is not None else None, transition.to_state.value,
            self._time(transition.happened_at), transition.webhook_event_id,
        )  # fmt: skip

    def transition(self, row: Mapping[str, Any]) -> InvoiceTransition:
        return msgspec.convert({name: row[name] for name in TRANSITION_COLUMNS}, InvoiceTransition)

    def webhook_event_row(self, event: StoredEvent) -> tuple[Any, ...]:
        time = self._time
        return (
            event.id, event.type, event.installation_id, time(event.created_at), event.body, event.delivery_count,
            time(event.received_at), time(event.applied_at), event.error,
        )  # fmt: skip

    def webhook_event(self, row: Mapping[str, Any]) -> StoredEvent:
        return msgspec.convert({name: row[name] for name in WEBHOOK_EVENT_COLUMNS}, StoredEvent)

    def session_row(self, session: Session) -> tuple[Any, ...]:
        time = self._time
        return (
            session.id_hash, session.installation_id, session.user_id, session.role.value,
            time(session.created_at), time(session.expires_at), session.user_name, time(session.revoked_at),
        )  # fmt: skip

    def session(self, row: Mapping[str, Any]) -> Session:
        fields = {name: row[name] for name in SESSION_COLUMNS}
        fields["role"] = fields.pop("user_role")
        return msgspec.convert(fields, Session)

    def outbox_row(
        self, entry_id: str, installation_id: str, message: OutboxMessage, at: datetime, cipher: SecretCipher
    ) -> tuple[Any, ...]:
        """A new message, due `at`. A sensitive one is sealed whole; `payload` then holds only its public part."""
        payload: object = message
        key_id = sealed = None
        if message.sensitive:
            key_id, sealed = cipher.seal(msgspec.json.encode(message), aad("outbox", entry_id))
            payload = message.public()
        kind = type(message).__struct_config__.tag
        return (entry_id, installation_id, kind, self._json(payload), sealed, key_id, self._time(at), self._time(at))

    def outbox_entry(self, row: Mapping[str, Any], cipher: SecretCipher) -> OutboxEntry:
        fields = {name: row[name] for name in OUTBOX_COLUMNS}
        sealed, key_id = fields.pop("secret_sealed"), fields.pop("secret_key_id")
        self._decode_json(fields, ("payload",))
        payload = fields.pop("payload")
        if sealed is not None:
            plaintext = cipher.open(key_id, sealed, aad("outbox", row["id"]))
            fields["message"] = msgspec.json.decode(plaintext, type=OutboxMessage)
        else:
            fields["message"] = msgspec.convert(payload, OutboxMessage)
        return msgspec.convert(fields, OutboxEntry)


# Stored replies (idempotency keys): the result may hold secrets, so it is sealed.


def seal_reply(cipher: SecretCipher, installation_id: str, key: str, result: object) -> tuple[str, bytes]:
    """(key id, sealed result) for the replies row of (installation_id, key)."""
    return cipher.seal(msgspec.json.encode(result), aad("replies", installation_id, key))


def open_reply(
    cipher: SecretCipher, installation_id: str, key: str, key_id: str, sealed: bytes, result_type: type
) -> object:
    """The stored result as `result_type`; as plain JSON values when it was stored for another type (the
    key was reused for another kind of request: its fingerprint differs and the caller answers Conflict)."""
    plaintext = cipher.open(key_id, sealed, aad("replies", installation_id, key))
    try:
        return msgspec.json.decode(plaintext, type=result_type)
    except msgspec.ValidationError:
        return msgspec.json.decode(plaintext)


# Start-up key check


# (table, key id column, sealed column, columns of the associated data): what verify_stored_keys() samples
# (sql_unit_of_work.py)
SEALED = (
    ("installations", "access_token_key_id", "access_token_sealed", ("id",)),
    ("resources", "secrets_key_id", "secrets_sealed", ("id",)),
    ("replies", "result_key_id", "result_sealed", ("installation_id", "key")),
    ("outbox", "secret_key_id", "secret_sealed", ("id",)),
)
