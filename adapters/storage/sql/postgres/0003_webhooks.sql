-- Webhook events applied from the inbox: resources suspended for an unpaid invoice, how many
-- distinct events an invoice was told about, and the inbox scanned in createdAt order.
ALTER TABLE resources ADD COLUMN billing_hold boolean NOT NULL DEFAULT false;
ALTER TABLE invoices ADD COLUMN notices integer NOT NULL DEFAULT 0;

-- WebhookEventRepository.unapplied: by createdAt, then id in byte order as the other backends order ids
DROP INDEX webhook_events_unapplied;
CREATE INDEX webhook_events_unapplied_by_created ON webhook_events (created_at, id COLLATE "C")
    WHERE applied_at IS NULL;
