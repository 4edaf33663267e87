//! Inputs and outputs of the activities. Passwords only ever appear sealed.

use crate::error::ActivityError;
use crate::model::{Expose, InstanceState};
use crate::seal::SealedSecret;
use crate::validation::InstanceName;
use serde::{Deserialize, Serialize};

/// Input of `deploy-postgres`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployInput {
    /// Instance name.
    pub name: InstanceName,
    /// Instance incarnation id.
    pub uid: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// The sealed superuser password.
    pub sealed_password: SealedSecret,
    /// How clients reach the instance (absent in inputs recorded before it existed: internal).
    #[serde(default = "internal")]
    pub expose: Expose,
    /// The DNS label a public instance asks for.
    #[serde(default)]
    pub dns_label: Option<String>,
}

/// The exposure of inputs recorded before the field existed.
pub fn internal() -> Expose {
    Expose::Internal
}

/// Output of `deploy-postgres`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployOutput {
    /// True when existing resources were adopted instead of created.
    pub adopted: bool,
}

/// Input of `wait-for-ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitForReadyInput {
    /// Instance name.
    pub name: InstanceName,
    /// How long the activity itself waits before reporting not-ready.
    pub wait_ms: u64,
}

/// Output of `wait-for-ready`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WaitForReadyOutput {
    /// Whether the instance accepts connections.
    pub ready: bool,
    /// What was seen when not ready.
    pub detail: Option<String>,
}

/// Input of `get-connection-strings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionInfoInput {
    /// Instance name.
    pub name: InstanceName,
    /// User to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
}

/// Output of `get-connection-strings`: how to reach the instance (never with a password).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `postgresql://user@host:port/database`, without the password.
    pub connection_uri: String,
}

/// Input of `test-connection`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestConnectionInput {
    /// The instance's name.
    pub name: InstanceName,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// The sealed password.
    pub sealed_password: SealedSecret,
    /// Connect-and-query timeout.
    pub timeout_ms: u64,
}

/// Output of `test-connection`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestConnectionOutput {
    /// What `SELECT version()` answered.
    pub server_version: String,
}

/// Input of `delete-postgres`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletePostgresInput {
    /// Instance name.
    pub name: InstanceName,
}

/// Input of `start-operation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartOperationInput {
    /// The operation.
    pub operation_id: String,
    /// The instance it works on (for logs).
    pub name: InstanceName,
}

/// Input of `transition-instance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransitionInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name (for logs).
    pub name: InstanceName,
    /// The operation holding the instance.
    pub operation_id: String,
    /// The target state.
    pub to: InstanceState,
    /// Why, for the audit trail.
    pub message: String,
}

/// Output of the conditional metadata activities.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    /// False when the row was no longer in a state the change may follow (a no-op).
    pub applied: bool,
}

/// Input of `complete-create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteCreateInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name (for logs).
    pub name: InstanceName,
    /// The create operation.
    pub operation_id: String,
    /// Where the instance runs.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The monitor workflow that will watch its health.
    pub monitor_id: String,
    /// The operation result shown to users.
    pub result: serde_json::Value,
}

/// Input of `complete-delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteDeleteInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name (for logs).
    pub name: InstanceName,
    /// The delete operation.
    pub operation_id: String,
}

/// Input of `fail-operation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailOperationInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name (for logs).
    pub name: InstanceName,
    /// The failed operation.
    pub operation_id: String,
    /// The step that failed.
    pub step: String,
    /// What went wrong.
    pub error: ActivityError,
    /// What was cleaned up, appended to the audit event.
    pub cleanup_note: String,
}

/// Input of `cancel-operation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelOperationInput {
    /// The operation (and orchestration) to cancel.
    pub operation_id: String,
    /// The instance it works on (for logs).
    pub name: InstanceName,
    /// Why, recorded on the canceled operation.
    pub reason: String,
    /// How long the activity waits for the orchestration to stop before reporting back.
    pub wait_ms: u64,
}

/// Output of `cancel-operation`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CancelOperationOutput {
    /// Whether the canceled orchestration has stopped.
    pub stopped: bool,
}

/// Input of `check-health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckHealthInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name.
    pub name: InstanceName,
    /// The monitor running the check.
    pub monitor_id: String,
    /// Unique per check, so a retried check is recorded once.
    pub check_id: String,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// User to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// The sealed password.
    pub sealed_password: SealedSecret,
    /// Connect-and-query timeout.
    pub timeout_ms: u64,
    /// Failures in a row that make the instance unhealthy.
    pub unhealthy_after: u32,
}

/// Output of `check-health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckHealthOutput {
    /// False when the instance is no longer running or no longer watched by this monitor.
    pub monitored: bool,
}

/// Input of `stop-monitor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopMonitorInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name.
    pub name: InstanceName,
    /// How long the activity waits for the monitor to stop before reporting back.
    pub wait_ms: u64,
}

/// Output of `stop-monitor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StopMonitorOutput {
    /// Whether the instance's monitor (if any) has stopped.
    pub stopped: bool,
}

/// Input of `prune-history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneHistoryInput {
    /// The workflow whose earlier executions are removed.
    pub workflow_id: String,
    /// The instance it belongs to (for logs).
    pub name: InstanceName,
}

/// Input of `detect-drift` (it looks at everything).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DetectDriftInput {}

/// A running instance whose backend resources are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostInstance {
    /// The instance's database id.
    pub instance_id: i64,
    /// Its name.
    pub name: InstanceName,
}

/// Output of `detect-drift`: where the metadata and the backend disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Backend resources with no live instance.
    pub orphans: Vec<InstanceName>,
    /// Running instances (with no operation in progress) whose backend resources are gone.
    pub lost: Vec<LostInstance>,
}

/// Input of `remove-orphan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveOrphanInput {
    /// The name the orphaned resources are under.
    pub name: InstanceName,
}

/// Input of `mark-backend-lost`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkBackendLostInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// Its name.
    pub name: InstanceName,
}

/// Names the instance an activity input concerns, for log spans (`-` when none).
pub trait ActivityInput {
    /// The instance name.
    fn instance(&self) -> &str;
}

impl ActivityInput for DetectDriftInput {
    fn instance(&self) -> &str {
        "-"
    }
}

macro_rules! activity_input {
    ($($input:ty),+ $(,)?) => {
        $(impl ActivityInput for $input {
            fn instance(&self) -> &str {
                self.name.as_str()
            }
        })+
    };
}

activity_input!(
    DeployInput,
    WaitForReadyInput,
    ConnectionInfoInput,
    TestConnectionInput,
    DeletePostgresInput,
    StartOperationInput,
    TransitionInput,
    CompleteCreateInput,
    CompleteDeleteInput,
    FailOperationInput,
    CancelOperationInput,
    CheckHealthInput,
    StopMonitorInput,
    PruneHistoryInput,
    RemoveOrphanInput,
    MarkBackendLostInput,
);
