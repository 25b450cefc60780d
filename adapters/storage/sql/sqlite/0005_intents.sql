-- Provisioning under way, the same shape as sql/postgres/0005_intents.sql.
CREATE TABLE provisioning_intents (
    resource_id             TEXT PRIMARY KEY,
    installation_id         TEXT NOT NULL,
    started_at              TEXT NOT NULL
);
