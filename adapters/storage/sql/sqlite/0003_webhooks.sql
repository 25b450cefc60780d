-- The same changes as sql/postgres/0003_webhooks.sql; booleans are 0/1.
ALTER TABLE resources ADD COLUMN billing_hold INTEGER NOT NULL DEFAULT 0 CHECK (billing_hold IN (0, 1));
ALTER TABLE invoices ADD COLUMN notices INTEGER NOT NULL DEFAULT 0;

DROP INDEX webhook_events_unapplied;
CREATE INDEX webhook_events_unapplied_by_created ON webhook_events (created_at, id) WHERE applied_at IS NULL;
