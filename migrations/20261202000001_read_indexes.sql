-- Indexes for the hot reads: every GET of the API. The queries are the constants of
-- toygres-activities/src/metadata/reads.rs; metadata/read_plans.rs checks their plans at 50,000
-- instance rows (no sequential scan, no sort, no scan that discards more than a page).

-- GET /instances/{name} and .../events: the newest row of a name, live or the latest deleted
-- (`ORDER BY id DESC LIMIT 1`, read backward). Before this, the only index on `name` was the
-- partial unique one on live rows, and the lookup walked the primary key backward.
CREATE INDEX instances_name_id ON instances (name, id);

-- GET /instances: the rows that are not deleted, in (name, id) order after a cursor. Partial, so a
-- page reads live rows only, however much deleted history accumulates. (instances_live_name stays:
-- it is the uniqueness of live names.)
CREATE INDEX instances_live_name_id ON instances (name, id) WHERE state <> 'deleted';

-- GET /instances?state=: one state's rows in (name, id) order after a cursor. It replaces
-- (state, name), which left the order among incarnations of one name to a sort.
CREATE INDEX instances_state_name_id ON instances (state, name, id);
DROP INDEX instances_state;

-- GET /operations: newest first by (created_at, id), read backward after a cursor.
CREATE INDEX operations_created_id ON operations (created_at, id);

-- GET /operations?instance=: the operations on instances of one name, newest first.
CREATE INDEX operations_instance_name_created_id ON operations (instance_name, created_at, id);

-- No query reads operations by instance_id, and instances rows are never deleted nor their ids
-- changed, so the foreign key needs no index either.
DROP INDEX operations_instance;

-- GET /instances/{name}/events keeps instance_events_instance (instance_id, id DESC).
