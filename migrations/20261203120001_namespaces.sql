-- The namespace each instance lives in (Kubernetes; the local backend has one, "default").
-- Rows of instances created before have none here: at start-up the server gives them its
-- configured default namespace, the one they were created in.
ALTER TABLE instances ADD COLUMN namespace TEXT;

-- GET /instances?namespace=: a page of one namespace's live instances by name.
CREATE INDEX instances_live_namespace_name_id ON instances (namespace, name, id)
    WHERE state <> 'deleted';
