-- Provisioning under way: written and committed before the integrator's provisioner runs (with no transaction
-- open), removed with the resource's row; a retry of the same request meanwhile finds it.
CREATE TABLE provisioning_intents (
    resource_id             text PRIMARY KEY,
    installation_id         text NOT NULL,
    started_at              timestamptz NOT NULL
);
