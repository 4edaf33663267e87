//! What the drift reconciler reads and writes: live incarnations, idle running instances, marking an
//! instance `backend_lost`, and which workflow plays a singleton role.

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};

impl MetadataStore {
    /// Name and incarnation of every instance that is not deleted.
    pub async fn live_incarnations(&self) -> Result<Vec<(String, String)>, MetadataError> {
        Ok(
            sqlx::query_as("SELECT name, uid FROM instances WHERE state <> 'deleted'")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// The incarnations of `name` that are running.
    pub async fn running_uids(&self, name: &str) -> Result<Vec<String>, MetadataError> {
        Ok(
            sqlx::query_scalar("SELECT uid FROM instances WHERE name = $1 AND state = 'running'")
                .bind(name)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Running instances that no operation holds.
    pub async fn idle_running_instances(&self) -> Result<Vec<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as("SELECT * FROM instances WHERE state = 'running' AND active_operation_id IS NULL ORDER BY id")
            .fetch_all(self.pool())
            .await?)
    }

    /// Marks a running, idle instance `failed` with code `backend_lost`. Returns whether it changed.
    pub async fn mark_backend_lost(
        &self,
        instance_id: i64,
        message: &str,
    ) -> Result<bool, MetadataError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = 'failed', error_code = 'backend_lost', error_message = $2, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND active_operation_id IS NULL RETURNING *",
        )
        .bind(instance_id)
        .bind(message)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(instance) = &changed {
            let event = format!("failed: {message} (backend_lost)");
            super::transitions::insert_event(&mut tx, instance, "drift", &event, None).await?;
        }
        tx.commit().await?;
        Ok(changed.is_some())
    }

    /// Appends an event to the newest instance with `name`, if there is one.
    pub async fn record_event_by_name(
        &self,
        name: &str,
        kind: &str,
        message: &str,
    ) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "INSERT INTO instance_events (instance_id, instance_name, kind, message) \
             SELECT id, name, $2, $3 FROM instances WHERE name = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(name)
        .bind(kind)
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The workflow playing `role`, if one was recorded.
    pub async fn singleton_workflow(&self, role: &str) -> Result<Option<String>, MetadataError> {
        Ok(
            sqlx::query_scalar("SELECT workflow_id FROM singleton_workflows WHERE role = $1")
                .bind(role)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Records `workflow_id` as playing `role` if `previous` still does (compare-and-set).
    pub async fn replace_singleton_workflow(
        &self,
        role: &str,
        previous: Option<&str>,
        workflow_id: &str,
    ) -> Result<bool, MetadataError> {
        let done = match previous {
            None => {
                sqlx::query("INSERT INTO singleton_workflows (role, workflow_id) VALUES ($1, $2) ON CONFLICT (role) DO NOTHING")
                    .bind(role)
                    .bind(workflow_id)
                    .execute(self.pool())
                    .await?
            }
            Some(previous) => {
                sqlx::query("UPDATE singleton_workflows SET workflow_id = $3, updated_at = now() WHERE role = $1 AND workflow_id = $2")
                    .bind(role)
                    .bind(previous)
                    .bind(workflow_id)
                    .execute(self.pool())
                    .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }
}
