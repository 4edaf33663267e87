-- Toygres metadata: instances, operations, and the audit trail.
-- Applied by the server at start, into the schema `toygres` (the search_path of its pool).

CREATE TABLE instances (
    id                  BIGSERIAL PRIMARY KEY,
    uid                 TEXT NOT NULL UNIQUE,
    name                TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('creating', 'running', 'deleting', 'deleted', 'failed')),
    backend             TEXT NOT NULL,
    postgres_version    TEXT NOT NULL,
    storage_gb          INTEGER NOT NULL CHECK (storage_gb BETWEEN 1 AND 1024),
    expose              TEXT NOT NULL CHECK (expose IN ('internal', 'public')),
    dns_label           TEXT,
    host                TEXT,
    port                INTEGER,
    database_name       TEXT NOT NULL DEFAULT 'postgres',
    username            TEXT NOT NULL DEFAULT 'postgres',
    -- The superuser password, sealed with the server's secret key; never plaintext.
    sealed_password     TEXT NOT NULL,
    error_code          TEXT,
    error_message       TEXT,
    -- The one mutating operation allowed to change this instance now (NULL when idle).
    active_operation_id TEXT,
    last_operation_id   TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at          TIMESTAMPTZ
);

-- Names are unique among instances that are not deleted (deleted rows stay for audit).
CREATE UNIQUE INDEX instances_live_name ON instances (name) WHERE state <> 'deleted';
CREATE INDEX instances_state ON instances (state, name);

CREATE TABLE operations (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('create', 'delete')),
    instance_id       BIGINT NOT NULL REFERENCES instances (id),
    instance_name     TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceled')),
    step              TEXT,
    progress_done     INTEGER NOT NULL DEFAULT 0,
    progress_total    INTEGER NOT NULL,
    error_code        TEXT,
    error_message     TEXT,
    error_retryable   BOOLEAN,
    result            JSONB,
    -- The operation a delete cancels first (a create still running when the delete came).
    cancels_operation_id TEXT,
    idempotency_key   TEXT,
    request_hash      TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);

CREATE UNIQUE INDEX operations_idempotency_key ON operations (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX operations_instance ON operations (instance_id, created_at DESC);
CREATE INDEX operations_unfinished ON operations (status) WHERE status IN ('pending', 'running');

CREATE TABLE instance_events (
    id            BIGSERIAL PRIMARY KEY,
    instance_id   BIGINT NOT NULL REFERENCES instances (id),
    instance_name TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    operation_id  TEXT
);

CREATE INDEX instance_events_instance ON instance_events (instance_id, id DESC);
