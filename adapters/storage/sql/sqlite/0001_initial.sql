-- The whole stored model (issue 3), the same shape as sql/postgres/0001_initial.sql.
-- Times are TEXT in one fixed-width UTC form, 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00', so text order is time
-- order; JSON is TEXT; booleans are 0/1; sealed columns hold nonce + AES-GCM ciphertext beside a key id.

CREATE TABLE installations (
    id                      TEXT PRIMARY KEY NOT NULL,
    account                 TEXT,
    scopes                  TEXT NOT NULL DEFAULT '[]',
    accepted_policies       TEXT NOT NULL DEFAULT '{}',
    token_type              TEXT,
    access_token_sealed     BLOB,
    access_token_key_id     TEXT,
    billing_plan_id         TEXT,
    notification            TEXT,
    lifecycle               TEXT NOT NULL CHECK (lifecycle IN ('active', 'pending_deletion', 'finalized')),
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    deleted_at              TEXT,
    CHECK ((access_token_sealed IS NULL) = (access_token_key_id IS NULL))
);
CREATE INDEX installations_by_lifecycle ON installations (lifecycle, updated_at);
-- which keys seal stored secrets (start-up key check, re-sealing after a rotation)
CREATE INDEX installations_by_key ON installations (access_token_key_id);

CREATE TABLE resources (
    id                      TEXT PRIMARY KEY NOT NULL,
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    product_id              TEXT NOT NULL,
    name                    TEXT NOT NULL,
    metadata                TEXT NOT NULL DEFAULT '{}',
    billing_plan_id         TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN
                                ('ready', 'pending', 'onboarding', 'suspended', 'resumed', 'uninstalled', 'error')),
    secrets_sealed          BLOB NOT NULL,
    secrets_key_id          TEXT NOT NULL,
    notification            TEXT,
    external_id             TEXT,
    protocol_settings       TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE INDEX resources_live_by_installation ON resources (installation_id, created_at, id)
    WHERE status <> 'uninstalled';
CREATE INDEX resources_by_installation ON resources (installation_id);
CREATE INDEX resources_by_external_id ON resources (installation_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX resources_by_key ON resources (secrets_key_id);

CREATE TABLE replies (
    installation_id         TEXT NOT NULL,
    key                     TEXT NOT NULL,
    fingerprint             TEXT NOT NULL,
    result_sealed           BLOB NOT NULL,
    result_key_id           TEXT NOT NULL,
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
    PRIMARY KEY (installation_id, key)
);
CREATE INDEX replies_by_age ON replies (created_at);
CREATE INDEX replies_by_key ON replies (result_key_id);

CREATE TABLE transfer_claims (
    id                      TEXT PRIMARY KEY NOT NULL,
    source_installation_id  TEXT NOT NULL REFERENCES installations (id),
    resource_ids            TEXT NOT NULL,
    expires_at              TEXT NOT NULL,
    state                   TEXT NOT NULL CHECK (state IN ('open', 'completed')),
    created_at              TEXT NOT NULL,
    verified_by             TEXT NOT NULL DEFAULT '[]',
    target_installation_id  TEXT,
    completed_at            TEXT
);
CREATE INDEX transfer_claims_by_source ON transfer_claims (source_installation_id, created_at);
CREATE INDEX transfer_claims_by_target ON transfer_claims (target_installation_id)
    WHERE target_installation_id IS NOT NULL;

CREATE TABLE balances (
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    resource_id             TEXT NOT NULL DEFAULT '',
    cents                   INTEGER NOT NULL,
    updated_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
    PRIMARY KEY (installation_id, resource_id)
);

CREATE TABLE purchases (
    invoice_id              TEXT PRIMARY KEY NOT NULL,
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    processed_at            TEXT NOT NULL
);
CREATE INDEX purchases_by_installation ON purchases (installation_id, processed_at);

CREATE TABLE invoices (
    id                      TEXT PRIMARY KEY NOT NULL,
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    state                   TEXT NOT NULL CHECK (state IN ('draft', 'pending', 'scheduled', 'invoiced', 'paid',
                                'notpaid', 'overdue', 'refund_requested', 'refunded')),
    external_id             TEXT,
    period_start            TEXT,
    period_end              TEXT,
    total                   TEXT,
    test                    INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1)),
    failed_attempts         INTEGER NOT NULL DEFAULT 0,
    refund_total            TEXT,
    refund_reason           TEXT,
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
    updated_at              TEXT NOT NULL
);
CREATE INDEX invoices_by_installation ON invoices (installation_id, updated_at);
CREATE INDEX invoices_unpaid ON invoices (installation_id) WHERE state IN ('notpaid', 'overdue');

CREATE TABLE invoice_transitions (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id              TEXT NOT NULL REFERENCES invoices (id),
    event                   TEXT NOT NULL,
    from_state              TEXT,
    to_state                TEXT NOT NULL,
    happened_at             TEXT NOT NULL,
    recorded_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
    webhook_event_id        TEXT
);
CREATE INDEX invoice_transitions_by_invoice ON invoice_transitions (invoice_id, id);

CREATE TABLE webhook_events (
    id                      TEXT PRIMARY KEY NOT NULL,
    type                    TEXT NOT NULL,
    installation_id         TEXT,
    created_at              TEXT NOT NULL,
    body                    BLOB NOT NULL,
    delivery_count          INTEGER NOT NULL DEFAULT 1,
    received_at             TEXT NOT NULL,
    last_received_at        TEXT,
    applied_at              TEXT,
    error                   TEXT
);
CREATE INDEX webhook_events_unapplied ON webhook_events (received_at) WHERE applied_at IS NULL;
CREATE INDEX webhook_events_by_installation ON webhook_events (installation_id, created_at);

CREATE TABLE sso_sessions (
    id_hash                 BLOB PRIMARY KEY NOT NULL,
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    user_id                 TEXT NOT NULL,
    user_role               TEXT NOT NULL,
    resource_id             TEXT,
    created_at              TEXT NOT NULL,
    expires_at              TEXT NOT NULL,
    revoked_at              TEXT
);
CREATE INDEX sso_sessions_by_user ON sso_sessions (installation_id, user_id);
CREATE INDEX sso_sessions_by_expiry ON sso_sessions (expires_at);

-- `seq` gives the delivery order (Postgres: an identity column beside the text primary key).
CREATE TABLE outbox (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    id                      TEXT NOT NULL UNIQUE,
    installation_id         TEXT NOT NULL REFERENCES installations (id),
    kind                    TEXT NOT NULL,
    payload                 TEXT NOT NULL,
    secret_sealed           BLOB,
    secret_key_id           TEXT,
    created_at              TEXT NOT NULL,
    due_at                  TEXT NOT NULL,
    attempts                INTEGER NOT NULL DEFAULT 0,
    last_error              TEXT,
    state                   TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    leased_until            TEXT,
    delivered_at            TEXT,
    CHECK ((secret_sealed IS NULL) = (secret_key_id IS NULL))
);
CREATE INDEX outbox_due ON outbox (due_at, seq) WHERE state = 'pending';
CREATE INDEX outbox_pending_by_installation ON outbox (installation_id, seq) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (installation_id, seq) WHERE state = 'dead';
