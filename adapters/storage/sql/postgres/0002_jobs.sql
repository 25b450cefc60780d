-- Runs of scheduled jobs: one row per (job, key), e.g. ('billing.data', '<installation>/2025-03-04'),
-- written in the transaction that did the work, so that a period's work is done once.
CREATE TABLE job_runs (
    job                     text NOT NULL,
    key                     text NOT NULL,
    ran_at                  timestamptz NOT NULL,
    PRIMARY KEY (job, key)
);

-- InstallationRepository.page: by id in byte order, as the other backends order ids
CREATE INDEX installations_by_lifecycle_id ON installations (lifecycle, id COLLATE "C");
-- which keys seal outbox messages (start-up key check)
CREATE INDEX outbox_by_key ON outbox (secret_key_id);
