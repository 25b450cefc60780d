"""What the SQL backends' units of work share: their repositories (sql_repositories.py, sql_queues.py), every
statement of those in the backend's dialect (dialects.py), built once when the backend's module is imported, and
the start-up check of the keys that sealed the stored secrets.
"""

from __future__ import annotations

from marketplace_provider.adapters.cipher import SecretCipher
from marketplace_provider.adapters.storage.dialects import Dialect
from marketplace_provider.adapters.storage.rows import SEALED, aad
from marketplace_provider.adapters.storage.sql_queues import Intents, Jobs, Outbox, WebhookEvents
from marketplace_provider.adapters.storage.sql_repositories import (
    Balances,
    Claims,
    Executor,
    Installations,
    Invoices,
    Replies,
    Resources,
    Sessions,
)


class Statements:
    """Every repository's statements in one dialect."""

    def __init__(self, d: Dialect) -> None:
        self.dialect = d
        self.rows = d.rows
        self.installations = Installations.Sql(d)
        self.resources = Resources.Sql(d)
        self.replies = Replies.Sql(d)
        self.claims = Claims.Sql(d)
        self.balances = Balances.Sql(d)
        self.outbox = Outbox.Sql(d)
        self.jobs = Jobs.Sql(d)
        self.intents = Intents.Sql(d)
        self.invoices = Invoices.Sql(d)
        self.webhook_events = WebhookEvents.Sql(d)
        self.sessions = Sessions.Sql(d)


class SqlRepositories:
    """The repositories of one unit of work of a SQL backend. The backend's unit of work subclasses this and runs
    their statements: `db` is that unit of work itself."""

    def __init__(self, db: Executor, sql: Statements, cipher: SecretCipher) -> None:
        rows = sql.rows
        self.cipher = cipher
        self.installations = Installations(db, sql.installations, rows, cipher)
        self.resources = Resources(db, sql.resources, rows, cipher)
        self.replies = Replies(db, sql.replies, rows, cipher)
        self.claims = Claims(db, sql.claims, rows, cipher)
        self.balances = Balances(db, sql.balances, rows, cipher)
        self.outbox = Outbox(db, sql.outbox, rows, cipher)
        self.jobs = Jobs(db, sql.jobs, rows, cipher)
        self.intents = Intents(db, sql.intents, rows, cipher)
        self.invoices = Invoices(db, sql.invoices, rows, cipher)
        self.webhook_events = WebhookEvents(db, sql.webhook_events, rows, cipher)
        self.sessions = Sessions(db, sql.sessions, rows, cipher)


def key_ids_in_use(table: str, column: str) -> str:
    """The distinct key ids of a column, one index probe each (a skip scan), however many rows there are."""
    return (
        f"WITH RECURSIVE k (id) AS (SELECT min({column}) FROM {table} UNION ALL "
        f"SELECT (SELECT min({column}) FROM {table} WHERE {column} > k.id) FROM k WHERE k.id IS NOT NULL) "
        "SELECT id FROM k WHERE id IS NOT NULL"
    )


async def verify_stored_keys(db: Executor, sql: Statements, cipher: SecretCipher) -> None:
    """Open one stored secret per key id in use: raises CipherError if a key is missing or wrong."""
    d = sql.dialect
    for table, key_column, sealed_column, aad_columns in SEALED:
        sample = d.sql(f"SELECT {sealed_column}, {', '.join(aad_columns)} FROM {table} WHERE {key_column} = $1 LIMIT 1")
        for (key_id,) in await db.fetch(d.sql(key_ids_in_use(table, key_column))):
            row = await db.fetchrow(sample, key_id)
            if row is not None:
                cipher.open(key_id, row[sealed_column], aad(table, *(row[c] for c in aad_columns)))
