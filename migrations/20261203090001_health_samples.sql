-- The outcome and latency of each instance's recent health checks, for the console's chart.
-- Written with the check itself (toygres-activities/src/metadata/health.rs, in the transaction
-- that records it, so a retried check is counted once); only the latest HEALTH_SAMPLES_KEPT of
-- each instance are kept. No secret is stored here.
CREATE TABLE health_samples (
    id          BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances (id),
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok          BOOLEAN NOT NULL,
    latency_ms  INTEGER NOT NULL
);

-- An instance's latest samples (the read, and the pruning after each write).
CREATE INDEX health_samples_instance_id ON health_samples (instance_id, id);
