//! Rows of the metadata tables.

use crate::model::{
    ArchiveStatus, BackupStatus, BackupType, Expose, HealthStatus, InstanceState, OperationKind,
    OperationStatus,
};
use chrono::{DateTime, Utc};

/// One row of `instances` (serializable: a workflow may carry it, its passwords sealed).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct InstanceRecord {
    /// Database id (stable across renames of nothing; names can be reused after delete).
    pub id: i64,
    /// Unique per incarnation; backends use it to tell their own resources from leftovers.
    pub uid: String,
    /// The instance name.
    pub name: String,
    /// The namespace it lives in (absent in rows made before instances had one, until the
    /// server's start-up gives them its default, and in records serialized before).
    #[serde(default)]
    pub namespace: Option<String>,
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
    /// The stable DNS name clients should use, where the backend gives one (absent in
    /// records serialized before there were DNS names).
    #[serde(default)]
    pub dns_name: Option<String>,
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
    /// The sealed password of the control plane's `toygres_admin` role inside the instance.
    pub sealed_admin_password: Option<String>,
    /// The sealed password of the control plane's `toygres_monitor` role inside the instance.
    pub sealed_monitor_password: Option<String>,
    /// 0: made before the control plane had roles of its own (its owner is its superuser);
    /// 1: the owner is no superuser and the control plane's roles exist.
    pub roles_version: i32,
    /// The server parameters the owner set (name -> value); server defaults are not listed.
    pub parameters: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    /// While true, deletes are refused.
    pub deletion_protection: bool,
    /// Whether its WAL archiving works (`none`: no backups).
    #[sqlx(try_from = "String")]
    pub backup_status: ArchiveStatus,
    /// The end of its newest succeeded backup.
    pub last_backup_at: Option<DateTime<Utc>>,
    /// The oldest point a restore can reach.
    pub restorable_from: Option<DateTime<Utc>>,
    /// Until when its WAL is known archived, once it no longer runs.
    pub archived_until: Option<DateTime<Utc>>,
    /// When its backups were removed (deleted instances, after the retention period).
    pub backups_expired_at: Option<DateTime<Utc>>,
}

impl InstanceRecord {
    /// Whether the instance has the control plane's roles (and an owner that is no superuser).
    pub fn has_control_plane_roles(&self) -> bool {
        self.roles_version >= crate::roles::ROLES_VERSION
    }
}

/// One row of `operations`.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
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
    /// What the request asked for, for kinds that need more than the instance (secrets sealed).
    pub request: Option<serde_json::Value>,
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

/// One row of `backups`.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct BackupRecord {
    /// `bk_` + random.
    pub id: String,
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name.
    pub instance_name: String,
    /// pgBackRest's stanza (the instance's incarnation).
    pub stanza: String,
    /// Full, differential or incremental.
    #[sqlx(try_from = "String")]
    pub r#type: BackupType,
    /// Running, succeeded or failed.
    #[sqlx(try_from = "String")]
    pub status: BackupStatus,
    /// The operation that took it.
    pub operation_id: String,
    /// pgBackRest's label, once finished.
    pub label: Option<String>,
    /// When it was accepted.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its consistent point (a restore to its end recovers to here).
    pub consistent_at: Option<DateTime<Utc>>,
    /// Size of the database it copied.
    pub size_bytes: Option<i64>,
    /// Size in the repository (compressed, and only what changed for diff and incr).
    pub repo_size_bytes: Option<i64>,
    /// WAL position where it started.
    pub start_lsn: Option<String>,
    /// WAL position where it stopped.
    pub stop_lsn: Option<String>,
    /// Error code when failed.
    pub error_code: Option<String>,
    /// Error message when failed.
    pub error_message: Option<String>,
    /// When it was last verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// What the last verify checked and found.
    pub verification: Option<serde_json::Value>,
    /// When retention removed it.
    pub expired_at: Option<DateTime<Utc>>,
}
