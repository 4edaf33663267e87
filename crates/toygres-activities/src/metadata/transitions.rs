//! Writes the workflows make through activities. Every one is conditional: it applies only when
//! the operation still holds the instance and the instance is in a state the transition may
//! follow, so a replayed, late or raced step is a no-op instead of moving an instance backwards.

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};
use crate::error::ActivityError;
use crate::model::InstanceState;
use sqlx::{Postgres, Transaction};

/// A transition that could not be recorded.
pub type TransitionError = MetadataError;

/// The statuses an operation may still leave.
const UNFINISHED: &str = "status IN ('pending', 'running')";

/// Appends one event to the audit trail inside `tx`.
pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    instance: &InstanceRecord,
    kind: &str,
    message: &str,
    operation_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO instance_events (instance_id, instance_name, kind, message, operation_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(instance.id)
        .bind(&instance.name)
        .bind(kind)
        .bind(message)
        .bind(operation_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn states(list: &[InstanceState]) -> Vec<String> {
    list.iter()
        .map(|state| state.as_str().to_string())
        .collect()
}

impl MetadataStore {
    /// Marks an operation running (from pending). Returns whether it changed.
    pub async fn start_operation(&self, operation_id: &str) -> Result<bool, TransitionError> {
        let done = sqlx::query(
            "UPDATE operations SET status = 'running', started_at = COALESCE(started_at, now()) WHERE id = $1 AND status = 'pending'",
        )
        .bind(operation_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves an instance held by `operation_id` to `to`, when `to` may follow its current state.
    pub async fn transition_instance(
        &self,
        instance_id: i64,
        operation_id: &str,
        to: InstanceState,
        message: &str,
    ) -> Result<bool, TransitionError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = $3, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 AND state = ANY($4) RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(to.as_str())
        .bind(states(to.allowed_from()))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(instance) = &changed {
            insert_event(
                &mut tx,
                instance,
                "state_changed",
                &format!("{to}: {message}"),
                Some(operation_id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed.is_some())
    }

    /// Records a successful create: the instance runs at `host:port` watched by `monitor_id`,
    /// the operation succeeded.
    pub async fn complete_create(
        &self,
        instance_id: i64,
        operation_id: &str,
        host: &str,
        port: u16,
        monitor_id: &str,
        result: &serde_json::Value,
    ) -> Result<bool, TransitionError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = 'running', host = $3, port = $4, monitor_id = $5, error_code = NULL, \
             error_message = NULL, active_operation_id = NULL, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 AND state = 'creating' RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(host)
        .bind(i32::from(port))
        .bind(monitor_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut finished = None;
        if let Some(instance) = &changed {
            finished =
                finish_operation(&mut tx, operation_id, "succeeded", Some(result), None, None)
                    .await?;
            insert_event(
                &mut tx,
                instance,
                "state_changed",
                "running: accepted a connection with its credentials",
                Some(operation_id),
            )
            .await?;
        }
        tx.commit().await?;
        count_finished(finished, "succeeded");
        Ok(changed.is_some())
    }

    /// Records a successful delete: the instance is deleted (kept for audit), the operation succeeded.
    pub async fn complete_delete(
        &self,
        instance_id: i64,
        operation_id: &str,
    ) -> Result<bool, TransitionError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = 'deleted', deleted_at = now(), active_operation_id = NULL, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 AND state = 'deleting' RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut finished = None;
        if let Some(instance) = &changed {
            finished =
                finish_operation(&mut tx, operation_id, "succeeded", None, None, None).await?;
            insert_event(
                &mut tx,
                instance,
                "state_changed",
                "deleted: backend resources removed",
                Some(operation_id),
            )
            .await?;
        }
        tx.commit().await?;
        count_finished(finished, "succeeded");
        Ok(changed.is_some())
    }

    /// Records a failed operation and the step it failed in. When it still holds the instance, the instance is released
    /// and, if it was creating or deleting, marked `failed` with the error.
    pub async fn fail_operation(
        &self,
        instance_id: i64,
        operation_id: &str,
        failed_step: &str,
        error: &ActivityError,
        note: &str,
    ) -> Result<(), TransitionError> {
        let mut tx = self.pool().begin().await?;
        let finished = finish_operation(
            &mut tx,
            operation_id,
            "failed",
            None,
            Some(error),
            Some(failed_step),
        )
        .await?;
        let released: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET \
               state = CASE WHEN state IN ('creating', 'deleting') THEN 'failed' ELSE state END, \
               error_code = $3, error_message = $4, active_operation_id = NULL, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(error.code.as_str())
        .bind(&error.message)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(instance) = &released {
            let message = format!(
                "{}: {} ({}){}",
                instance.state, error.message, error.code, note
            );
            insert_event(
                &mut tx,
                instance,
                "operation_failed",
                &message,
                Some(operation_id),
            )
            .await?;
        }
        tx.commit().await?;
        count_finished(finished, "failed");
        Ok(())
    }

    /// Records that an unfinished operation was canceled. Returns whether it changed.
    pub async fn cancel_operation(
        &self,
        operation_id: &str,
        reason: &str,
    ) -> Result<bool, TransitionError> {
        let error = ActivityError::permanent(crate::error::ErrorCode::Canceled, reason);
        let mut tx = self.pool().begin().await?;
        let changed =
            finish_operation(&mut tx, operation_id, "canceled", None, Some(&error), None).await?;
        tx.commit().await?;
        let canceled = changed.is_some();
        count_finished(changed, "canceled");
        Ok(canceled)
    }

    /// Appends an event to an instance's audit trail.
    pub async fn record_event(
        &self,
        instance_id: i64,
        kind: &str,
        message: &str,
        operation_id: Option<&str>,
    ) -> Result<(), TransitionError> {
        sqlx::query(
            "INSERT INTO instance_events (instance_id, instance_name, kind, message, operation_id) \
             SELECT id, name, $2, $3, $4 FROM instances WHERE id = $1",
        )
        .bind(instance_id)
        .bind(kind)
        .bind(message)
        .bind(operation_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Moves an unfinished operation to a terminal status. Returns its kind when it changed.
async fn finish_operation(
    tx: &mut Transaction<'_, Postgres>,
    operation_id: &str,
    status: &str,
    result: Option<&serde_json::Value>,
    error: Option<&ActivityError>,
    step: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let sql = format!(
        "UPDATE operations SET status = $2, \
         result = $3::jsonb || jsonb_build_object('elapsed_ms', (extract(epoch FROM now() - created_at) * 1000)::bigint), error_code = $4, error_message = $5, error_retryable = $6, \
         step = $7, progress_done = CASE WHEN $2 = 'succeeded' THEN progress_total ELSE progress_done END, \
         started_at = COALESCE(started_at, now()), finished_at = now() WHERE id = $1 AND {UNFINISHED} RETURNING kind"
    );
    let kind: Option<String> = sqlx::query_scalar(&sql)
        .bind(operation_id)
        .bind(status)
        .bind(result)
        .bind(error.map(|error| error.code.as_str()))
        .bind(error.map(|error| error.message.as_str()))
        .bind(error.map(|error| error.retryable))
        .bind(step)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(kind)
}

/// Counts a finished operation in `toygres_operations_finished_total{kind, outcome}`.
fn count_finished(kind: Option<String>, outcome: &'static str) {
    if let Some(kind) = kind {
        metrics::counter!("toygres_operations_finished_total", "kind" => kind, "outcome" => outcome).increment(1);
    }
}
