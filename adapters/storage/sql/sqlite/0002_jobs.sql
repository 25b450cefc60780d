-- Runs of scheduled jobs, the same shape as sql/postgres/0002_jobs.sql.
CREATE TABLE job_runs (
    job                     TEXT NOT NULL,
    key                     TEXT NOT NULL,
    ran_at                  TEXT NOT NULL,
    PRIMARY KEY (job, key)
);

CREATE INDEX installations_by_lifecycle_id ON installations (lifecycle, id);
CREATE INDEX outbox_by_key ON outbox (secret_key_id);
