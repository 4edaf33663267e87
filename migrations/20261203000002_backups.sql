-- Backups with pgBackRest: one row per backup, what instances keep of their backups, and the
-- operation kinds that take and verify them.

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN
    ('create', 'delete', 'stop', 'start', 'restart', 'update', 'reset_password', 'backup',
     'verify_backup'));

CREATE TABLE backups (
    id              TEXT PRIMARY KEY,                 -- bk_ + random
    instance_id     BIGINT NOT NULL REFERENCES instances (id),
    instance_name   TEXT NOT NULL,
    -- pgBackRest's stanza: the instance's incarnation (uid).
    stanza          TEXT NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('full', 'diff', 'incr')),
    status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    operation_id    TEXT NOT NULL,
    -- pgBackRest's label once it finished (20261203-091726F).
    label           TEXT,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    -- The backup's consistent point: a restore to its end recovers to here.
    consistent_at   TIMESTAMPTZ,
    size_bytes      BIGINT,
    repo_size_bytes BIGINT,
    start_lsn       TEXT,
    stop_lsn        TEXT,
    error_code      TEXT,
    error_message   TEXT,
    verified_at     TIMESTAMPTZ,
    verification    JSONB,
    -- When retention removed it from the repository.
    expired_at      TIMESTAMPTZ
);

-- GET /instances/{name}/backups: an instance's backups, newest first.
CREATE INDEX backups_instance_started ON backups (instance_id, started_at, id);

ALTER TABLE instances
    -- ok: WAL archiving works; failing: the last archive attempt failed; none: no backups.
    ADD COLUMN backup_status TEXT NOT NULL DEFAULT 'none' CHECK (backup_status IN ('ok', 'failing', 'none')),
    -- The newest succeeded backup's end.
    ADD COLUMN last_backup_at TIMESTAMPTZ,
    -- The oldest point a restore can reach (the end of the oldest backup still kept).
    ADD COLUMN restorable_from TIMESTAMPTZ,
    -- Until when WAL is known archived for an instance no longer running (its stop or delete
    -- forced and waited for the archiving of the current WAL).
    ADD COLUMN archived_until TIMESTAMPTZ,
    -- When the backups of a deleted instance were removed (after the retention period).
    ADD COLUMN backups_expired_at TIMESTAMPTZ;
