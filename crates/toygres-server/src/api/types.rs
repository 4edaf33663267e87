//! Response (and documented request) shapes of the API, as ../shared/API.md specifies them.

use crate::service::OperationView;
use chrono::{DateTime, Utc};
use serde::Serialize;
use toygres_activities::metadata::{EventRecord, InstanceRecord};
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
    /// `creating`, `running`, `deleting`, `deleted` or `failed`.
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
    /// Connection URI, never with a password.
    pub connection_uri: Option<String>,
    /// The error when failed.
    pub error: Option<InstanceError>,
    /// Health.
    pub health: Health,
    /// The latest operation on it.
    pub last_operation_id: String,
    /// When the create was accepted.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<&InstanceRecord> for Instance {
    fn from(record: &InstanceRecord) -> Self {
        let connection_uri = match (&record.host, record.port) {
            (Some(host), Some(port)) => Some(format!(
                "postgresql://{}@{host}:{port}/{}",
                record.username, record.database_name
            )),
            _ => None,
        };
        Self {
            name: record.name.clone(),
            state: record.state.to_string(),
            backend: record.backend.clone(),
            postgres_version: record.postgres_version.clone(),
            storage_gb: record.storage_gb,
            expose: record.expose.to_string(),
            host: record.host.clone(),
            port: record.port,
            database: record.database_name.clone(),
            user: record.username.clone(),
            connection_uri,
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
            last_operation_id: record.last_operation_id.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
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

/// An operation (a create or delete request in progress or done).
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    /// `op_...`.
    pub id: String,
    /// `create` or `delete`.
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
    /// The superuser password: shown here, and nowhere else, ever.
    pub password: String,
}

/// `202` body of `DELETE /instances/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteAcceptedBody {
    /// The instance.
    pub instance: Instance,
    /// The delete operation.
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
