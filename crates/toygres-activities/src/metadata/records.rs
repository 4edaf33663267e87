//! Rows of the metadata tables.

use crate::model::{Expose, HealthStatus, InstanceState, OperationKind, OperationStatus};
use chrono::{DateTime, Utc};

/// One row of `instances`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRecord {
    /// Database id (stable across renames of nothing; names can be reused after delete).
    pub id: i64,
    /// Unique per incarnation; backends use it to tell their own resources from leftovers.
    pub uid: String,
    /// The instance name.
    pub name: String,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub state: InstanceState,
    /// Backend kind (`local`, `kubernetes`).
    pub backend: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Requested storage.
    pub storage_gb: i32,
    /// Exposure.
    #[sqlx(try_from = "String")]
    pub expose: Expose,
    /// DNS label for public instances.
    pub dns_label: Option<String>,
    /// Host, once running.
    pub host: Option<String>,
    /// Port, once running.
    pub port: Option<i32>,
    /// Database to connect to.
    pub database_name: String,
    /// User to connect as.
    pub username: String,
    /// The sealed superuser password.
    pub sealed_password: String,
    /// Error code when failed.
    pub error_code: Option<String>,
    /// Error message when failed.
    pub error_message: Option<String>,
    /// The operation allowed to change the instance now.
    pub active_operation_id: Option<String>,
    /// The latest operation on the instance.
    pub last_operation_id: String,
    /// When the create was accepted.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// `healthy`, `unhealthy` or `unknown`.
    #[sqlx(try_from = "String")]
    pub health_status: HealthStatus,
    /// When health was last checked.
    pub health_checked_at: Option<DateTime<Utc>>,
    /// Latency of the last successful check.
    pub health_latency_ms: Option<i32>,
    /// Failed checks in a row.
    pub health_consecutive_failures: i32,
    /// The id of the last recorded check.
    pub health_last_check: Option<String>,
    /// The monitor workflow of this instance.
    pub monitor_id: Option<String>,
}

/// One row of `operations`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperationRecord {
    /// `op_` + random; also the Duroxide orchestration instance id.
    pub id: String,
    /// Create or delete.
    #[sqlx(try_from = "String")]
    pub kind: OperationKind,
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name.
    pub instance_name: String,
    /// Status as last recorded by the workflow.
    #[sqlx(try_from = "String")]
    pub status: OperationStatus,
    /// Current step, when recorded.
    pub step: Option<String>,
    /// Steps done.
    pub progress_done: i32,
    /// Steps in all.
    pub progress_total: i32,
    /// Error code when failed.
    pub error_code: Option<String>,
    /// Error message when failed.
    pub error_message: Option<String>,
    /// Whether retrying may help, when failed.
    pub error_retryable: Option<bool>,
    /// Result when succeeded.
    pub result: Option<serde_json::Value>,
    /// The create a delete cancels first.
    pub cancels_operation_id: Option<String>,
    /// Client-chosen idempotency key.
    pub idempotency_key: Option<String>,
    /// Hash of the request the key was first used with.
    pub request_hash: Option<String>,
    /// When accepted.
    pub created_at: DateTime<Utc>,
    /// When the workflow started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its workflow history was removed.
    pub history_pruned_at: Option<DateTime<Utc>>,
}

/// One row of `instance_events`: the audit trail.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    /// Increasing id (newest is largest).
    pub id: i64,
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name.
    pub instance_name: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What kind of event (`state_changed`, `cleanup`, ...).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The operation that caused it, if any.
    pub operation_id: Option<String>,
}
