//! Reads of the metadata, for the API and the reconciler.

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

impl<T> Page<T> {
    fn from_rows(mut rows: Vec<T>, limit: i64) -> Self {
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
        Ok(
            sqlx::query_as("SELECT * FROM instances WHERE name = $1 AND state <> 'deleted'")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The newest instance with this name, deleted or not.
    pub async fn latest_instance(
        &self,
        name: &str,
    ) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(
            sqlx::query_as("SELECT * FROM instances WHERE name = $1 ORDER BY id DESC LIMIT 1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// An instance by database id.
    pub async fn instance(&self, id: i64) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as("SELECT * FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Instances ordered by name then id, after the `(name, id)` cursor. Without a state filter
    /// deleted instances are left out.
    pub async fn list_instances(
        &self,
        state: Option<InstanceState>,
        after: Option<(String, i64)>,
        limit: i64,
    ) -> Result<Page<InstanceRecord>, MetadataError> {
        let (after_name, after_id) = after.unwrap_or_default();
        let rows = sqlx::query_as(
            "SELECT * FROM instances \
             WHERE (CASE WHEN $1::text IS NULL THEN state <> 'deleted' ELSE state = $1 END) \
               AND (name, id) > ($2, $3) ORDER BY name, id LIMIT $4",
        )
        .bind(state.map(InstanceState::as_str))
        .bind(after_name)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        Ok(Page::from_rows(rows, limit))
    }

    /// An operation by id.
    pub async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, MetadataError> {
        Ok(sqlx::query_as("SELECT * FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The operation first accepted with this idempotency key.
    pub async fn operation_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<OperationRecord>, MetadataError> {
        Ok(
            sqlx::query_as("SELECT * FROM operations WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
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
        let rows = sqlx::query_as(
            "SELECT * FROM operations WHERE ($1::text IS NULL OR instance_name = $1) \
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(instance_name)
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
        let rows = sqlx::query_as(
            "SELECT * FROM instance_events WHERE instance_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(instance_id)
        .bind(before_id)
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        Ok(Page::from_rows(rows, limit))
    }
}
