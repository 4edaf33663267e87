-- When the Duroxide history of a finished operation was removed (the row keeps its summary).
ALTER TABLE operations ADD COLUMN history_pruned_at TIMESTAMPTZ;
CREATE INDEX operations_prunable ON operations (finished_at) WHERE finished_at IS NOT NULL AND history_pruned_at IS NULL;
