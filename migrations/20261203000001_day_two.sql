-- Day-2 operations: stop, start, restart, update (storage, parameters, deletion protection) and
-- password resets, their states, and what an instance keeps of them.

ALTER TABLE instances DROP CONSTRAINT instances_state_check;
ALTER TABLE instances ADD CONSTRAINT instances_state_check CHECK (state IN
    ('creating', 'running', 'stopping', 'stopped', 'starting', 'updating', 'deleting', 'deleted', 'failed'));

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN
    ('create', 'delete', 'stop', 'start', 'restart', 'update', 'reset_password'));

ALTER TABLE instances
    -- The server parameters the owner set (name -> value, as given); server defaults are not
    -- listed. Applied by the control plane: those that need a restart on the server's command
    -- line, the others with ALTER SYSTEM and a reload.
    ADD COLUMN parameters JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(parameters) = 'object'),
    -- While true, a delete is refused (409 deletion_protected).
    ADD COLUMN deletion_protection BOOLEAN NOT NULL DEFAULT false;

-- What the request asked for, as the operation's workflow needs it (a secret only sealed): the
-- reconciler starts a recorded operation from its row alone. NULL for kinds that need nothing
-- beyond the instance (create, delete, stop, start, restart).
ALTER TABLE operations ADD COLUMN request JSONB;
