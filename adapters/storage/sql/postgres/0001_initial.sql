-- The whole stored model (issue 3). Times are timestamptz (UTC); JSON is jsonb; sealed columns hold
-- nonce + AES-GCM ciphertext, with the id of the key that sealed them beside it (adapters/cipher.py).

CREATE TABLE installations (
    id                      text PRIMARY KEY,
    account                 jsonb,
    scopes                  jsonb NOT NULL DEFAULT '[]',
    accepted_policies       jsonb NOT NULL DEFAULT '{}',
    token_type              text,
    access_token_sealed     bytea,
    access_token_key_id     text,
    billing_plan_id         text,
    notification            jsonb,
    lifecycle               text NOT NULL CHECK (lifecycle IN ('active', 'pending_deletion', 'finalized')),
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    deleted_at              timestamptz,
    CHECK ((access_token_sealed IS NULL) = (access_token_key_id IS NULL))
);
CREATE INDEX installations_by_lifecycle ON installations (lifecycle, updated_at);
-- which keys seal stored secrets (start-up key check, re-sealing after a rotation)
CREATE INDEX installations_by_key ON installations (access_token_key_id);

CREATE TABLE resources (
    id                      text PRIMARY KEY,
    installation_id         text NOT NULL REFERENCES installations (id),
    product_id              text NOT NULL,
    name                    text NOT NULL,
    metadata                jsonb NOT NULL DEFAULT '{}',
    billing_plan_id         text NOT NULL,
    status                  text NOT NULL CHECK (status IN
                                ('ready', 'pending', 'onboarding', 'suspended', 'resumed', 'uninstalled', 'error')),
    secrets_sealed          bytea NOT NULL,
    secrets_key_id          text NOT NULL,
    notification            jsonb,
    external_id             text,
    protocol_settings       jsonb,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);
-- list_live: an installation's resources not uninstalled, oldest first
CREATE INDEX resources_live_by_installation ON resources (installation_id, created_at, id)
    WHERE status <> 'uninstalled';
CREATE INDEX resources_by_installation ON resources (installation_id);
CREATE INDEX resources_by_external_id ON resources (installation_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX resources_by_key ON resources (secrets_key_id);

-- Idempotency-Key -> the reply it produced. The result may hold secrets (a provisioned resource), so it is sealed.
CREATE TABLE replies (
    installation_id         text NOT NULL,
    key                     text NOT NULL,
    fingerprint             text NOT NULL,
    result_sealed           bytea NOT NULL,
    result_key_id           text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (installation_id, key)
);
CREATE INDEX replies_by_age ON replies (created_at);
CREATE INDEX replies_by_key ON replies (result_key_id);

CREATE TABLE transfer_claims (
    id                      text PRIMARY KEY,
    source_installation_id  text NOT NULL REFERENCES installations (id),
    resource_ids            jsonb NOT NULL,
    expires_at              timestamptz NOT NULL,
    state                   text NOT NULL CHECK (state IN ('open', 'completed')),
    created_at              timestamptz NOT NULL,
    verified_by             jsonb NOT NULL DEFAULT '[]',
    target_installation_id  text,
    completed_at            timestamptz
);
CREATE INDEX transfer_claims_by_source ON transfer_claims (source_installation_id, created_at);
CREATE INDEX transfer_claims_by_target ON transfer_claims (target_installation_id)
    WHERE target_installation_id IS NOT NULL;

-- Prepayment credit in cents; resource_id '' is the installation-level balance.
CREATE TABLE balances (
    installation_id         text NOT NULL REFERENCES installations (id),
    resource_id             text NOT NULL DEFAULT '',
    cents                   bigint NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (installation_id, resource_id)
);

-- Prepayment invoices already credited: an invoice id is credited once, ever.
CREATE TABLE purchases (
    invoice_id              text PRIMARY KEY,
    installation_id         text NOT NULL REFERENCES installations (id),
    processed_at            timestamptz NOT NULL
);
CREATE INDEX purchases_by_installation ON purchases (installation_id, processed_at);

CREATE TABLE invoices (
    id                      text PRIMARY KEY,
    installation_id         text NOT NULL REFERENCES installations (id),
    state                   text NOT NULL CHECK (state IN ('draft', 'pending', 'scheduled', 'invoiced', 'paid',
                                'notpaid', 'overdue', 'refund_requested', 'refunded')),
    external_id             text,
    period_start            timestamptz,
    period_end              timestamptz,
    total                   text,
    test                    boolean NOT NULL DEFAULT false,
    failed_attempts         integer NOT NULL DEFAULT 0,
    refund_total            text,
    refund_reason           text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL
);
CREATE INDEX invoices_by_installation ON invoices (installation_id, updated_at);
CREATE INDEX invoices_unpaid ON invoices (installation_id) WHERE state IN ('notpaid', 'overdue');

-- Every state change of an invoice, in order.
CREATE TABLE invoice_transitions (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id              text NOT NULL REFERENCES invoices (id),
    event                   text NOT NULL,
    from_state              text,
    to_state                text NOT NULL,
    happened_at             timestamptz NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    webhook_event_id        text
);
CREATE INDEX invoice_transitions_by_invoice ON invoice_transitions (invoice_id, id);

-- Webhook deliveries, kept raw after their signature was verified; one row per Vercel event id.
CREATE TABLE webhook_events (
    id                      text PRIMARY KEY,
    type                    text NOT NULL,
    installation_id         text,
    created_at              timestamptz NOT NULL,
    body                    bytea NOT NULL,
    delivery_count          integer NOT NULL DEFAULT 1,
    received_at             timestamptz NOT NULL,
    last_received_at        timestamptz,
    applied_at              timestamptz,
    error                   text
);
CREATE INDEX webhook_events_unapplied ON webhook_events (received_at) WHERE applied_at IS NULL;
CREATE INDEX webhook_events_by_installation ON webhook_events (installation_id, created_at);

-- Browser sessions after SSO; only a hash of the opaque session id is stored.
CREATE TABLE sso_sessions (
    id_hash                 bytea PRIMARY KEY,
    installation_id         text NOT NULL REFERENCES installations (id),
    user_id                 text NOT NULL,
    user_role               text NOT NULL,
    resource_id             text,
    created_at              timestamptz NOT NULL,
    expires_at              timestamptz NOT NULL,
    revoked_at              timestamptz
);
CREATE INDEX sso_sessions_by_user ON sso_sessions (installation_id, user_id);
CREATE INDEX sso_sessions_by_expiry ON sso_sessions (expires_at);

-- Calls owed to Vercel, delivered in order per installation by the worker. `payload` is plain JSON for
-- operators; anything secret (e.g. rotated resource secrets) goes in the sealed column.
CREATE TABLE outbox (
    id                      text PRIMARY KEY,
    seq                     bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    installation_id         text NOT NULL REFERENCES installations (id),
    kind                    text NOT NULL,
    payload                 jsonb NOT NULL,
    secret_sealed           bytea,
    secret_key_id           text,
    created_at              timestamptz NOT NULL,
    due_at                  timestamptz NOT NULL,
    attempts                integer NOT NULL DEFAULT 0,
    last_error              text,
    state                   text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    leased_until            timestamptz,
    delivered_at            timestamptz,
    CHECK ((secret_sealed IS NULL) = (secret_key_id IS NULL))
);
-- the worker's scan: pending rows by due time; then the oldest pending row of each installation
CREATE INDEX outbox_due ON outbox (due_at, seq) WHERE state = 'pending';
CREATE INDEX outbox_pending_by_installation ON outbox (installation_id, seq) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (installation_id, seq) WHERE state = 'dead';
