-- Health of running instances, written by their monitor-instance workflow.

ALTER TABLE instances
    ADD COLUMN health_status TEXT NOT NULL DEFAULT 'unknown' CHECK (health_status IN ('healthy', 'unhealthy', 'unknown')),
    ADD COLUMN health_checked_at TIMESTAMPTZ,
    ADD COLUMN health_latency_ms INTEGER,
    ADD COLUMN health_consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- The id of the last check recorded, so a retried check is not counted twice.
    ADD COLUMN health_last_check TEXT,
    -- The monitor-instance workflow that owns the health columns (one per running instance).
    ADD COLUMN monitor_id TEXT;
