//! The parts of the API's JSON that the CLI reads (tables, waiting). `-o json` prints the
//! server's JSON itself, never these.

use super::client::ClientError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// An instance, as `GET /instances/{name}` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceView {
    /// Name.
    pub name: String,
    /// The namespace it lives in (absent from servers older than namespaces).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `creating`, `running`, `stopping`, `stopped`, `starting`, `updating`, `deleting`,
    /// `deleted` or `failed`.
    pub state: String,
    /// `local` or `kubernetes`.
    pub backend: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: i64,
    /// `internal` or `public`.
    pub expose: String,
    /// Host, once known.
    pub host: Option<String>,
    /// Port, once known.
    pub port: Option<u16>,
    /// Database to connect to.
    pub database: String,
    /// User to connect as.
    pub user: String,
    /// Connection URI without password, once known.
    pub connection_uri: Option<String>,
    /// Why it failed.
    pub error: Option<ErrorView>,
    /// Health as last checked.
    pub health: Option<HealthView>,
    /// Parameters the owner set.
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Whether deletes are refused.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Its backups at a glance (servers before backups have none).
    #[serde(default)]
    pub backup: Option<InstanceBackupView>,
    /// The latest operation on it.
    pub last_operation_id: Option<String>,
    /// When the create was accepted.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// An instance's backups at a glance.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceBackupView {
    /// `ok`, `failing` or `none`.
    pub status: String,
    /// The end of its newest succeeded backup.
    pub last_backup_at: Option<String>,
    /// What a restore can reach.
    pub restore_window: Option<RestoreWindowView>,
}

/// The moments a restore can reach.
#[derive(Debug, Clone, Deserialize)]
pub struct RestoreWindowView {
    /// The earliest.
    pub earliest: String,
    /// The latest.
    pub latest: String,
}

/// A backup, as `GET /instances/{name}/backups` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct BackupView {
    /// `bk_...`.
    pub id: String,
    /// The instance it is of.
    pub instance: String,
    /// `full`, `diff` or `incr`.
    pub r#type: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// When it was accepted.
    pub started_at: String,
    /// A restore of its end recovers to here.
    pub consistent_at: Option<String>,
    /// Size of the database it copied.
    pub size_bytes: Option<i64>,
    /// Size in the repository.
    pub repo_size_bytes: Option<i64>,
    /// pgBackRest's label.
    pub label: Option<String>,
    /// Why it failed.
    pub error: Option<BackupErrorView>,
    /// The operation that took it.
    pub operation_id: String,
    /// When retention removed it.
    pub expired_at: Option<String>,
    /// When it was last verified.
    pub verified_at: Option<String>,
    /// What the last verify checked.
    pub verification: Option<Value>,
}

/// A backup's error.
#[derive(Debug, Clone, Deserialize)]
pub struct BackupErrorView {
    /// Error code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// The `202` body of a backup or a verify.
#[derive(Debug, Clone, Deserialize)]
pub struct BackupAcceptedView {
    /// The backup.
    pub backup: BackupView,
    /// The operation to follow.
    pub operation: OperationView,
}

/// An instance's error.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorView {
    /// Error code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// An instance's health.
#[derive(Debug, Clone, Deserialize)]
pub struct HealthView {
    /// `healthy`, `unhealthy` or `unknown`.
    pub status: String,
}

/// An operation, as `GET /operations/{id}` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct OperationView {
    /// `op_...`.
    pub id: String,
    /// `create`, `delete`, `stop`, `start`, `restart`, `update` or `reset_password`.
    pub kind: String,
    /// Instance name.
    pub instance: String,
    /// `pending`, `running`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// The current step, or the step that failed.
    pub step: Option<String>,
    /// Steps done out of steps in all.
    pub progress: ProgressView,
    /// Why it failed or was canceled.
    pub error: Option<OperationErrorView>,
    /// The result when succeeded.
    pub result: Option<Value>,
    /// When accepted.
    pub created_at: String,
    /// When its workflow started.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
}

impl OperationView {
    /// Whether the operation has ended (succeeded, failed or canceled).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "canceled")
    }

    /// Whether it ended well.
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

/// Steps done out of steps in all.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ProgressView {
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
}

/// An operation's error.
#[derive(Debug, Clone, Deserialize)]
pub struct OperationErrorView {
    /// Error code.
    pub code: String,
    /// What happened.
    pub message: String,
    /// Whether running the request again may succeed.
    pub retryable: bool,
}

/// A page of a list.
#[derive(Debug, Clone, Deserialize)]
pub struct PageView<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor of the next page, or none on the last one.
    pub next_cursor: Option<String>,
}

/// The `202` body of every change (`POST /instances`, `DELETE`, `PATCH`, the actions).
#[derive(Debug, Clone, Deserialize)]
pub struct AcceptedView {
    /// The instance as recorded.
    pub instance: InstanceView,
    /// The operation to follow.
    pub operation: OperationView,
    /// The password (create and reset-password only).
    pub password: Option<String>,
}

/// Reads list items (kept as the server sent them) as `T`s.
pub fn parse_items<T: DeserializeOwned>(
    items: &[Box<RawValue>],
    what: &str,
) -> Result<Vec<T>, ClientError> {
    items
        .iter()
        .map(|item| {
            serde_json::from_str(item.get()).map_err(|error| ClientError::InvalidReply {
                from: what.to_string(),
                detail: format!("not the expected JSON: {error}"),
            })
        })
        .collect()
}

/// Reads `value` (a body of the server) as `T`; a mismatch is an unexpected reply.
pub fn parse<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, ClientError> {
    T::deserialize(value).map_err(|error| ClientError::InvalidReply {
        from: what.to_string(),
        detail: format!("not the expected JSON: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_an_operation_and_knows_when_it_ended() -> Result<(), ClientError> {
        let body = json!({
            "id": "op_1", "kind": "create", "instance": "db", "status": "running",
            "step": "deploy", "progress": {"done": 0, "total": 5}, "error": null,
            "result": null, "created_at": "2025-01-01T00:00:00Z", "started_at": null,
            "finished_at": null, "some_future_field": 1
        });
        let operation: OperationView = parse(&body, "GET /operations/op_1")?;
        assert!(!operation.is_finished());
        assert_eq!(operation.step.as_deref(), Some("deploy"));
        let ended = OperationView {
            status: "canceled".into(),
            ..operation
        };
        assert!(ended.is_finished() && !ended.succeeded());
        assert!(parse::<OperationView>(&json!({"id": 1}), "x").is_err());
        Ok(())
    }
}
