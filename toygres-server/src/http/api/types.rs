//! Response (and documented request) shapes of the API, as ../shared/API.md specifies them.

use crate::plane::OperationView;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use toygres_activities::metadata::{BackupRecord, EventRecord, InstanceRecord};
use utoipa::ToSchema;

/// Body of `POST /instances`. Unknown fields are rejected.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CreateInstanceBody {
    /// DNS-1123 label, 1-40 characters, starting with a letter.
    #[schema(pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", max_length = 40)]
    name: String,
    /// 12-128 printable characters; generated when absent.
    #[schema(min_length = 12, max_length = 128, nullable)]
    password: Option<String>,
    /// Major version the backend offers; the newest when absent.
    #[schema(nullable)]
    postgres_version: Option<String>,
    /// Storage in GiB, 1-1024 (default 10).
    #[schema(minimum = 1, maximum = 1024, nullable)]
    storage_gb: Option<u32>,
    /// `internal` (default) or `public`.
    #[schema(nullable, pattern = "^(internal|public)$")]
    expose: Option<String>,
    /// DNS label for public instances.
    #[schema(
        nullable,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    )]
    dns_label: Option<String>,
    /// The Kubernetes namespace the instance goes into: one the server is configured to allow
    /// (the configured default when absent). The local backend has one namespace, `default`.
    #[schema(
        nullable,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    )]
    namespace: Option<String>,
    /// Server parameters (`{"max_connections": "200"}`), checked against the version's own
    /// `pg_settings`; at most 100.
    #[schema(nullable, value_type = Option<HashMap<String, String>>)]
    parameters: Option<HashMap<String, String>>,
    /// Refuse deletes while true (default false).
    #[schema(nullable)]
    deletion_protection: Option<bool>,
    /// Make the new instance a copy of another instance's data, from its backups.
    #[schema(nullable)]
    restore_from: Option<RestoreFromBody>,
}

/// What a new instance restores from: `instance`'s backups, at the end of `backup_id`, at
/// `point_in_time` (inside its restore window), or (neither) as of now.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RestoreFromBody {
    /// The source instance (live, or deleted while its backups are kept).
    #[schema(pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", max_length = 40)]
    instance: String,
    /// A backup of it (`bk_...`).
    #[schema(nullable)]
    backup_id: Option<String>,
    /// An RFC 3339 moment.
    #[schema(nullable, format = DateTime)]
    point_in_time: Option<String>,
}

/// Body of `POST /instances/{name}/backups` (optional).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BackupBody {
    /// `full` (default), `diff` (changes since the last full) or `incr` (since the last backup).
    #[schema(nullable, pattern = "^(full|diff|incr)$")]
    r#type: Option<String>,
}

/// Body of `PATCH /instances/{name}`: at least one field. Unknown fields are rejected.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UpdateInstanceBody {
    /// New storage in GiB, 1-1024; it only grows.
    #[schema(minimum = 1, maximum = 1024, nullable)]
    storage_gb: Option<u32>,
    /// Parameters to set; `null` returns one to the server's default. Checked against the
    /// version's own `pg_settings`; those that need a restart restart the instance.
    #[schema(nullable, value_type = Option<HashMap<String, Option<String>>>)]
    parameters: Option<HashMap<String, Option<String>>>,
    /// Refuse deletes while true.
    #[schema(nullable)]
    deletion_protection: Option<bool>,
}

/// Body of `POST /instances/{name}/reset-password` (optional).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ResetPasswordBody {
    /// 12-128 printable characters; generated when absent.
    #[schema(min_length = 12, max_length = 128, nullable)]
    password: Option<String>,
}

/// An instance's error.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceError {
    /// Error code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// An instance's health as last checked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `healthy`, `unhealthy` or `unknown` (not checked yet).
    pub status: String,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// Latency of the last check.
    pub latency_ms: Option<u64>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
}

/// An instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instance {
    /// Name.
    pub name: String,
    /// The namespace it lives in (Kubernetes; `default` on the local backend). Null only for
    /// an instance an older server created during a rolling upgrade, until a server of this
    /// version starts and gives it its configured default.
    pub namespace: Option<String>,
    /// `creating`, `running`, `stopping`, `stopped`, `starting`, `updating`, `deleting`,
    /// `deleted` or `failed`.
    pub state: String,
    /// `local` or `kubernetes`.
    pub backend: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: i32,
    /// `internal` or `public`.
    pub expose: String,
    /// Host, once known.
    pub host: Option<String>,
    /// Port, once known.
    pub port: Option<i32>,
    /// Database to connect to.
    pub database: String,
    /// User to connect as.
    pub user: String,
    /// The stable DNS name of a public instance, where the backend gives one (on Kubernetes,
    /// its `dns_label` in the cloud's zone); it may take a while to resolve after the create.
    pub dns_name: Option<String>,
    /// Connection URI, never with a password: on `dns_name` where there is one, on `host`
    /// otherwise.
    pub connection_uri: Option<String>,
    /// Connection URI on `host` (the address), never with a password.
    pub connection_uri_ip: Option<String>,
    /// The error when failed.
    pub error: Option<InstanceError>,
    /// Health.
    pub health: Health,
    /// The server parameters the owner set; server defaults are not listed.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Whether deletes are refused.
    pub deletion_protection: bool,
    /// Its backups.
    pub backup: InstanceBackup,
    /// The latest operation on it.
    pub last_operation_id: String,
    /// When the create was accepted.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The connection URIs of an instance, never with a password: `(on the DNS name where there
/// is one, else on the address; on the address)`; both `None` until it has an address.
fn connection_uris(record: &InstanceRecord) -> (Option<String>, Option<String>) {
    let uri = |host: &str| {
        record.port.map(|port| {
            format!(
                "postgresql://{}@{host}:{port}/{}",
                record.username, record.database_name
            )
        })
    };
    let on_address = record.host.as_deref().and_then(uri);
    let preferred = match &record.dns_name {
        Some(name) if on_address.is_some() => uri(name),
        _ => on_address.clone(),
    };
    (preferred, on_address)
}

impl From<&InstanceRecord> for Instance {
    fn from(record: &InstanceRecord) -> Self {
        let (connection_uri, connection_uri_ip) = connection_uris(record);
        Self {
            name: record.name.clone(),
            namespace: record.namespace.clone(),
            state: record.state.to_string(),
            backend: record.backend.clone(),
            postgres_version: record.postgres_version.clone(),
            storage_gb: record.storage_gb,
            expose: record.expose.to_string(),
            host: record.host.clone(),
            port: record.port,
            database: record.database_name.clone(),
            user: record.username.clone(),
            dns_name: record.dns_name.clone(),
            connection_uri,
            connection_uri_ip,
            error: record.error_code.as_ref().map(|code| InstanceError {
                code: code.clone(),
                message: record.error_message.clone().unwrap_or_default(),
            }),
            health: Health {
                status: record.health_status.to_string(),
                checked_at: record.health_checked_at,
                latency_ms: record
                    .health_latency_ms
                    .and_then(|ms| u64::try_from(ms).ok()),
                consecutive_failures: u32::try_from(record.health_consecutive_failures)
                    .unwrap_or(0),
            },
            parameters: record.parameters.0.clone(),
            deletion_protection: record.deletion_protection,
            backup: InstanceBackup::from(record),
            last_operation_id: record.last_operation_id.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// An instance's backups at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceBackup {
    /// `ok` (WAL archiving works), `failing` (the last archive attempt failed) or `none` (no
    /// backups).
    pub status: String,
    /// The end of its newest succeeded backup.
    pub last_backup_at: Option<DateTime<Utc>>,
    /// What a restore can reach.
    pub restore_window: Option<RestoreWindow>,
}

/// The moments a restore of an instance's backups can reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreWindow {
    /// The end of its oldest kept backup.
    pub earliest: DateTime<Utc>,
    /// Now (it runs), or what was archived when it stopped or went.
    pub latest: DateTime<Utc>,
}

impl From<&InstanceRecord> for InstanceBackup {
    fn from(record: &InstanceRecord) -> Self {
        Self {
            status: record.backup_status.to_string(),
            last_backup_at: record.last_backup_at,
            restore_window: crate::plane::restore_window(record)
                .map(|(earliest, latest)| RestoreWindow { earliest, latest }),
        }
    }
}

/// A backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backup {
    /// `bk_...`.
    pub id: String,
    /// The instance it is of.
    pub instance: String,
    /// `full`, `diff` or `incr`.
    pub r#type: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// When it was accepted.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its consistent point: a restore of its end recovers to here.
    pub consistent_at: Option<DateTime<Utc>>,
    /// Size of the database it copied.
    pub size_bytes: Option<i64>,
    /// Size in the repository (compressed; only what changed for `diff` and `incr`).
    pub repo_size_bytes: Option<i64>,
    /// WAL position where it started.
    pub start_lsn: Option<String>,
    /// WAL position where it stopped.
    pub stop_lsn: Option<String>,
    /// pgBackRest's label (for restoring by hand).
    pub label: Option<String>,
    /// The error when failed.
    pub error: Option<InstanceError>,
    /// The operation that took it.
    pub operation_id: String,
    /// When retention removed it (then it can no longer be restored).
    pub expired_at: Option<DateTime<Utc>>,
    /// When it was last verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// What the last verify checked and found.
    #[schema(value_type = Option<Object>)]
    pub verification: Option<serde_json::Value>,
}

impl From<&BackupRecord> for Backup {
    fn from(record: &BackupRecord) -> Self {
        Self {
            id: record.id.clone(),
            instance: record.instance_name.clone(),
            r#type: record.r#type.to_string(),
            status: record.status.to_string(),
            started_at: record.started_at,
            finished_at: record.finished_at,
            consistent_at: record.consistent_at,
            size_bytes: record.size_bytes,
            repo_size_bytes: record.repo_size_bytes,
            start_lsn: record.start_lsn.clone(),
            stop_lsn: record.stop_lsn.clone(),
            label: record.label.clone(),
            error: record.error_code.as_ref().map(|code| InstanceError {
                code: code.clone(),
                message: record.error_message.clone().unwrap_or_default(),
            }),
            operation_id: record.operation_id.clone(),
            expired_at: record.expired_at,
            verified_at: record.verified_at,
            verification: record.verification.clone(),
        }
    }
}

/// `202` body of `POST /instances/{name}/backups` and `.../verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupAcceptedBody {
    /// The backup (being taken, or being verified).
    pub backup: Backup,
    /// The operation.
    pub operation: Operation,
}

/// A page of backups.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// The backups, newest first.
    pub items: Vec<Backup>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Steps done out of steps in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
}

/// An operation's error.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationError {
    /// Error code (`deploy_failed`, `deadline_exceeded`, `canceled`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
    /// Whether running the request again may succeed.
    pub retryable: bool,
}

/// An operation (a request that changes an instance, in progress or done).
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    /// `op_...`.
    pub id: String,
    /// `create`, `delete`, `stop`, `start`, `restart`, `update`, `reset_password`, `backup` or
    /// `verify_backup`.
    pub kind: String,
    /// The instance name.
    pub instance: String,
    /// `pending`, `running`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// The current step, or the step that failed.
    pub step: Option<String>,
    /// Progress.
    pub progress: Progress,
    /// The error when failed or canceled.
    pub error: Option<OperationError>,
    /// The result when succeeded (create: `server_version`, `elapsed_ms`).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// When accepted.
    pub created_at: DateTime<Utc>,
    /// When its workflow started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&OperationView> for Operation {
    fn from(view: &OperationView) -> Self {
        let record = &view.record;
        Self {
            id: record.id.clone(),
            kind: record.kind.to_string(),
            instance: record.instance_name.clone(),
            status: view.status.to_string(),
            step: view.step.clone(),
            progress: Progress {
                done: view.done,
                total: view.total,
            },
            error: view.error.as_ref().map(|error| OperationError {
                code: error.code.to_string(),
                message: error.message.clone(),
                retryable: error.retryable,
            }),
            result: record.result.clone(),
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
        }
    }
}

/// `202` body of `POST /instances`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateAcceptedBody {
    /// The instance as recorded.
    pub instance: Instance,
    /// The create operation.
    pub operation: Operation,
    /// The owner's password: shown here, and nowhere else, ever.
    pub password: String,
}

/// `202` body of `POST /instances/{name}/reset-password`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetPasswordAcceptedBody {
    /// The instance.
    pub instance: Instance,
    /// The reset_password operation.
    pub operation: Operation,
    /// The owner's new password: shown here, and nowhere else, ever.
    pub password: String,
}

/// `202` body of the other changes (`DELETE`, `PATCH`, stop, start, restart).
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationAcceptedBody {
    /// The instance.
    pub instance: Instance,
    /// The operation.
    pub operation: Operation,
}

/// A page of instances.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    /// The instances.
    pub items: Vec<Instance>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of operations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationList {
    /// The operations, newest first.
    pub items: Vec<Operation>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One audit event of an instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Kind (`state_changed`, `operation_failed`, `delete_requested`, ...).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The operation that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

impl From<&EventRecord> for Event {
    fn from(record: &EventRecord) -> Self {
        Self {
            at: record.at,
            kind: record.kind.clone(),
            message: record.message.clone(),
            operation_id: record.operation_id.clone(),
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events, newest first.
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: String,
}
