//! Writes the workflows make through activities. Every one is conditional: it applies only when
//! the operation still holds the instance and the instance is in a state the transition may
//! follow, so a replayed, late or raced step is a no-op instead of moving an instance backwards.

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};
use crate::error::ActivityError;
use crate::model::{InstanceState, OperationStatus};
use crate::seal::SealedSecret;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use std::collections::BTreeMap;

/// Where a created instance runs, as [`MetadataStore::complete_create`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    /// Host name or address clients (and the monitor) connect to.
    pub host: &'a str,
    /// Its port.
    pub port: u16,
    /// Its stable DNS name, where it has one.
    pub dns_name: Option<&'a str>,
}

/// What a successful operation changes on its instance besides the state (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceChanges {
    /// The owner's parameters, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    /// Storage in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<u32>,
    /// Deletion protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// The owner's new password, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_password: Option<SealedSecret>,
    /// The monitor that watches the instance from now on (its health starts over as unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorChange>,
}

/// A change of the monitor that watches an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorChange {
    /// The monitor workflow with this id watches it.
    Assign(String),
    /// Nothing watches it (it is stopped).
    Clear,
}

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

    /// Records a successful create: the instance runs at `at` watched by `monitor_id`, the
    /// operation succeeded.
    pub async fn complete_create(
        &self,
        instance_id: i64,
        operation_id: &str,
        at: &Placement<'_>,
        monitor_id: &str,
        result: &serde_json::Value,
    ) -> Result<bool, TransitionError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = 'running', host = $3, port = $4, monitor_id = $5, dns_name = $6, \
             error_code = NULL, error_message = NULL, active_operation_id = NULL, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 AND state = 'creating' RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(at.host)
        .bind(i32::from(at.port))
        .bind(monitor_id)
        .bind(at.dns_name)
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

    /// Records a successful operation other than a create or delete: the instance moves from
    /// one of `expected` to `to` with `changes`, its error cleared (unless it stays `failed`),
    /// released; the operation succeeded with `result`; an event says `message`. Applies only
    /// while the operation still holds the instance. Returns whether it applied.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_operation(
        &self,
        instance_id: i64,
        operation_id: &str,
        expected: &[InstanceState],
        to: InstanceState,
        changes: &InstanceChanges,
        result: Option<&serde_json::Value>,
        message: &str,
    ) -> Result<bool, TransitionError> {
        let mut tx = self.pool().begin().await?;
        let (set_monitor, monitor_id) = match &changes.monitor {
            None => (false, None),
            Some(MonitorChange::Assign(id)) => (true, Some(id.as_str())),
            Some(MonitorChange::Clear) => (true, None),
        };
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET state = $3, \
               parameters = COALESCE($5, parameters), \
               storage_gb = COALESCE($6, storage_gb), \
               deletion_protection = COALESCE($7, deletion_protection), \
               sealed_password = COALESCE($8, sealed_password), \
               monitor_id = CASE WHEN $9 THEN $10 ELSE monitor_id END, \
               health_status = CASE WHEN $9 THEN 'unknown' ELSE health_status END, \
               health_consecutive_failures = CASE WHEN $9 THEN 0 ELSE health_consecutive_failures END, \
               error_code = CASE WHEN $3 = 'failed' THEN error_code END, \
               error_message = CASE WHEN $3 = 'failed' THEN error_message END, \
               active_operation_id = NULL, updated_at = now() \
             WHERE id = $1 AND active_operation_id = $2 AND state = ANY($4) RETURNING *",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(to.as_str())
        .bind(states(expected))
        .bind(changes.parameters.as_ref().map(sqlx::types::Json))
        .bind(changes.storage_gb.map(|gb| i32::try_from(gb).unwrap_or(i32::MAX)))
        .bind(changes.deletion_protection)
        .bind(changes.sealed_password.as_ref().map(|sealed| sealed.as_str()))
        .bind(set_monitor)
        .bind(monitor_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut finished = None;
        if let Some(instance) = &changed {
            finished =
                finish_operation(&mut tx, operation_id, "succeeded", result, None, None).await?;
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
        count_finished(finished, "succeeded");
        Ok(changed.is_some())
    }

    /// Records a failed operation and the step it failed in, if it has not finished already.
    /// When it still holds the instance, the instance is released; an instance that was moving
    /// between states (creating, stopping, starting, updating, deleting) ends in `settle` (what
    /// the backend showed after the failure) or, without one, `failed` with the error. Returns
    /// whether this call finished the operation and its status after the call: a caller
    /// cleans up only what its own recorded failure covers, never after an outcome (such as
    /// success) that committed first.
    pub async fn fail_operation(
        &self,
        instance_id: i64,
        operation_id: &str,
        failed_step: &str,
        error: &ActivityError,
        note: &str,
        settle: Option<InstanceState>,
    ) -> Result<(bool, OperationStatus), TransitionError> {
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
        // The backup this operation was taking (a backup, or a delete's final one) failed too.
        sqlx::query(
            "UPDATE backups SET status = 'failed', finished_at = now(), error_code = $2, error_message = $3 \
             WHERE operation_id = $1 AND status = 'running'",
        )
        .bind(operation_id)
        .bind(error.code.as_str())
        .bind(&error.message)
        .execute(&mut *tx)
        .await?;
        let transitional = states(
            &InstanceState::ALL
                .iter()
                .copied()
                .filter(|state| state.is_transitional())
                .collect::<Vec<_>>(),
        );
        let released: Option<InstanceRecord> = sqlx::query_as(
            "WITH settled AS ( \
               SELECT id, CASE WHEN state = ANY($5) THEN COALESCE($6, 'failed') ELSE state END AS state \
               FROM instances WHERE id = $1 AND active_operation_id = $2 FOR UPDATE) \
             UPDATE instances i SET state = settled.state, \
               error_code = CASE WHEN settled.state = 'failed' THEN $3 ELSE i.error_code END, \
               error_message = CASE WHEN settled.state = 'failed' THEN $4 ELSE i.error_message END, \
               active_operation_id = NULL, updated_at = now() \
             FROM settled WHERE i.id = settled.id RETURNING i.*",
        )
        .bind(instance_id)
        .bind(operation_id)
        .bind(error.code.as_str())
        .bind(&error.message)
        .bind(transitional)
        .bind(settle.map(InstanceState::as_str))
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
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM operations WHERE id = $1")
                .bind(operation_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let recorded = finished.is_some();
        count_finished(finished, "failed");
        let status = status
            .as_deref()
            .and_then(OperationStatus::parse)
            .unwrap_or(OperationStatus::Failed);
        Ok((recorded, status))
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
        // A backup it was taking ends too (its workflow will never record it).
        sqlx::query(
            "UPDATE backups SET status = 'failed', finished_at = now(), error_code = $2, error_message = $3 \
             WHERE operation_id = $1 AND status = 'running'",
        )
        .bind(operation_id)
        .bind(error.code.as_str())
        .bind(&error.message)
        .execute(&mut *tx)
        .await?;
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

/// Moves an unfinished operation to `succeeded` with `result`. Returns its kind when it changed.
pub(super) async fn finish_succeeded(
    tx: &mut Transaction<'_, Postgres>,
    operation_id: &str,
    result: Option<&serde_json::Value>,
) -> Result<Option<String>, sqlx::Error> {
    finish_operation(tx, operation_id, "succeeded", result, None, None).await
}

/// Counts a finished operation in `toygres_operations_finished_total{kind, outcome}`.
pub(super) fn count_finished(kind: Option<String>, outcome: &'static str) {
    if let Some(kind) = kind {
        metrics::counter!("toygres_operations_finished_total", "kind" => kind, "outcome" => outcome).increment(1);
    }
}
