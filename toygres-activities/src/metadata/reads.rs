//! Reads of the metadata, for the API and the reconciler.
//!
//! The SQL of the hot reads (every `GET` of the API) is kept in constants, so that the plan test
//! (`read_plans.rs`) explains exactly the text sent here. Each has one static shape, without
//! `$n IS NULL OR ...` or `CASE` on a parameter: a prepared statement's generic plan can use an
//! index only for conditions it can see. `migrations/20261202000001_read_indexes.sql` holds the
//! indexes that serve them.

use super::records::{EventRecord, InstanceRecord, OperationRecord};
use super::{MetadataError, MetadataStore};
use crate::model::InstanceState;

/// One page of a listing, and the key to continue after its last item.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// The live instance of a name (`instances_live_name`).
pub(crate) const LIVE_INSTANCE: &str =
    "SELECT * FROM instances WHERE name = $1 AND state <> 'deleted'";

/// The newest row of a name, live or deleted (`instances_name_id`, read backward).
pub(crate) const LATEST_INSTANCE: &str =
    "SELECT * FROM instances WHERE name = $1 ORDER BY id DESC LIMIT 1";

/// An instance by database id (the primary key).
pub(crate) const INSTANCE_BY_ID: &str = "SELECT * FROM instances WHERE id = $1";

/// A page of the instances that are not deleted, after a `(name, id)` cursor
/// (`instances_live_name_id`). The first page's cursor is `('', 0)`, before every name.
pub(crate) const LIST_LIVE_INSTANCES: &str = "SELECT * FROM instances \
     WHERE state <> 'deleted' AND (name, id) > ($1, $2) ORDER BY name, id LIMIT $3";

/// A page of the instances in one state, after a `(name, id)` cursor (`instances_state_name_id`).
pub(crate) const LIST_INSTANCES_IN_STATE: &str = "SELECT * FROM instances \
     WHERE state = $1 AND (name, id) > ($2, $3) ORDER BY name, id LIMIT $4";

/// A page of one namespace's instances that are not deleted, after a `(name, id)` cursor
/// (`instances_live_namespace_name_id`).
pub(crate) const LIST_LIVE_INSTANCES_IN_NAMESPACE: &str = "SELECT * FROM instances \
     WHERE state <> 'deleted' AND namespace = $4 AND (name, id) > ($1, $2) \
     ORDER BY name, id LIMIT $3";

/// A page of one namespace's instances in one state, after a `(name, id)` cursor
/// (`instances_state_name_id`, the namespace filtered).
pub(crate) const LIST_INSTANCES_IN_STATE_IN_NAMESPACE: &str = "SELECT * FROM instances \
     WHERE state = $1 AND (name, id) > ($2, $3) AND namespace = $5 ORDER BY name, id LIMIT $4";

/// An operation by id (the primary key).
pub(crate) const OPERATION: &str = "SELECT * FROM operations WHERE id = $1";

/// A page of operations, newest first, before a `(created_at, id)` cursor
/// (`operations_created_id`, read backward). Without a cursor (`$1` NULL) it starts at
/// `infinity`, after every `created_at` (always a finite `now()`).
pub(crate) const LIST_OPERATIONS: &str = "SELECT * FROM operations \
     WHERE (created_at, id) < (COALESCE($1::timestamptz, 'infinity'), $2) \
     ORDER BY created_at DESC, id DESC LIMIT $3";

/// A page of the operations on instances of one name, newest first, before a `(created_at, id)`
/// cursor (`operations_instance_name_created_id`, read backward).
pub(crate) const LIST_OPERATIONS_OF_INSTANCE: &str = "SELECT * FROM operations \
     WHERE instance_name = $1 AND (created_at, id) < (COALESCE($2::timestamptz, 'infinity'), $3) \
     ORDER BY created_at DESC, id DESC LIMIT $4";

/// A page of an instance's events, newest first, before an event id (`instance_events_instance`).
/// The first page's cursor is `i64::MAX`, after every id.
pub(crate) const EVENTS: &str = "SELECT * FROM instance_events \
     WHERE instance_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

impl<T> Page<T> {
    pub(super) fn from_rows(mut rows: Vec<T>, limit: i64) -> Self {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Self {
            items: rows,
            has_more,
        }
    }
}

impl MetadataStore {
    /// The live (not deleted) instance with this name.
    pub async fn live_instance(&self, name: &str) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(LIVE_INSTANCE)
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The newest instance with this name, deleted or not.
    pub async fn latest_instance(
        &self,
        name: &str,
    ) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(LATEST_INSTANCE)
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    /// An instance by database id.
    pub async fn instance(&self, id: i64) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(INSTANCE_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Instances ordered by name then id, after the `(name, id)` cursor, optionally of one
    /// state and one namespace. Without a state filter deleted instances are left out.
    pub async fn list_instances(
        &self,
        state: Option<InstanceState>,
        namespace: Option<&str>,
        after: Option<(String, i64)>,
        limit: i64,
    ) -> Result<Page<InstanceRecord>, MetadataError> {
        let (after_name, after_id) = after.unwrap_or_default();
        let query = match (state, namespace) {
            (None, None) => sqlx::query_as(LIST_LIVE_INSTANCES),
            (None, Some(_)) => sqlx::query_as(LIST_LIVE_INSTANCES_IN_NAMESPACE),
            (Some(state), None) => sqlx::query_as(LIST_INSTANCES_IN_STATE).bind(state.as_str()),
            (Some(state), Some(_)) => {
                sqlx::query_as(LIST_INSTANCES_IN_STATE_IN_NAMESPACE).bind(state.as_str())
            }
        };
        let mut query = query.bind(after_name).bind(after_id).bind(limit + 1);
        if let Some(namespace) = namespace {
            query = query.bind(namespace);
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(Page::from_rows(rows, limit))
    }

    /// Gives every instance that has no namespace (made before instances had one) the
    /// backend's default, `namespace`; returns how many it changed.
    pub async fn assign_default_namespace(&self, namespace: &str) -> Result<u64, MetadataError> {
        Ok(
            sqlx::query("UPDATE instances SET namespace = $1 WHERE namespace IS NULL")
                .bind(namespace)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// An operation by id.
    pub async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, MetadataError> {
        Ok(sqlx::query_as(OPERATION)
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The operation first accepted with this caller's (`scope`) idempotency key.
    pub async fn operation_by_idempotency_key(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT * FROM operations WHERE idempotency_scope = $1 AND idempotency_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Operations newest first, optionally of one instance name, before the `(created_at, id)` cursor.
    pub async fn list_operations(
        &self,
        instance_name: Option<&str>,
        before: Option<(chrono::DateTime<chrono::Utc>, String)>,
        limit: i64,
    ) -> Result<Page<OperationRecord>, MetadataError> {
        let (before_at, before_id) = match before {
            Some((at, id)) => (Some(at), id),
            None => (None, String::new()),
        };
        let query = match instance_name {
            None => sqlx::query_as(LIST_OPERATIONS),
            Some(name) => sqlx::query_as(LIST_OPERATIONS_OF_INSTANCE).bind(name),
        };
        let rows = query
            .bind(before_at)
            .bind(before_id)
            .bind(limit + 1)
            .fetch_all(self.pool())
            .await?;
        Ok(Page::from_rows(rows, limit))
    }

    /// Operations that have not finished, oldest first (for the start-up reconciler).
    pub async fn unfinished_operations(&self) -> Result<Vec<OperationRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT * FROM operations WHERE status IN ('pending', 'running') ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Finished operations older than `finished_before` whose workflow history is still kept.
    pub async fn operations_to_prune(
        &self,
        finished_before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> Result<Vec<String>, MetadataError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM operations WHERE finished_at IS NOT NULL AND history_pruned_at IS NULL \
             AND finished_at < $1 ORDER BY finished_at LIMIT $2",
        )
        .bind(finished_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records that an operation's workflow history was removed.
    pub async fn mark_history_pruned(&self, operation_id: &str) -> Result<(), MetadataError> {
        sqlx::query("UPDATE operations SET history_pruned_at = now() WHERE id = $1")
            .bind(operation_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// An instance's events, newest first, before the event id cursor.
    pub async fn events(
        &self,
        instance_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Page<EventRecord>, MetadataError> {
        let rows = sqlx::query_as(EVENTS)
            .bind(instance_id)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit + 1)
            .fetch_all(self.pool())
            .await?;
        Ok(Page::from_rows(rows, limit))
    }
}
