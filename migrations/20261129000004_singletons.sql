-- Workflows of which exactly one runs per control plane (e.g. the drift reconciler): which
-- workflow id currently plays the part.
CREATE TABLE singleton_workflows (
    role        TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
