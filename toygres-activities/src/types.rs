//! Inputs and outputs of the activities. Passwords only ever appear sealed.

use crate::backend::InstanceRef;
pub use crate::backup::agent::{RestoreSource, RestoreTarget, Verification};
pub use crate::backup::info::BackupSummary;
use crate::error::ActivityError;
pub use crate::metadata::{InstanceChanges, MonitorChange};
use crate::model::{BackupType, Expose, InstanceState, OperationStatus};
pub use crate::parameters::ParameterChange;
use crate::seal::SealedSecret;
use crate::validation::InstanceName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Input of `deploy-postgres`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Instance incarnation id.
    pub uid: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// The sealed password of the bootstrap superuser.
    pub sealed_password: SealedSecret,
    /// The bootstrap superuser: `toygres_admin`; absent in inputs recorded before the control
    /// plane had roles of its own, whose superuser is the owner `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser: Option<String>,
    /// How clients reach the instance (absent in inputs recorded before it existed: internal).
    #[serde(default = "internal")]
    pub expose: Expose,
    /// The DNS label a public instance asks for.
    #[serde(default)]
    pub dns_label: Option<String>,
}

/// For `skip_serializing_if`: a flag left out while false, so inputs recorded before it
/// existed serialize as they did.
pub fn is_false(value: &bool) -> bool {
    !*value
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
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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
    /// `postgresql://user@host:port/database`, without the password: on the DNS name when
    /// there is one.
    pub connection_uri: String,
    /// The stable DNS name clients should use, where the backend gives one (absent in
    /// histories recorded before there were DNS names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

/// Input of `test-connection`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestConnectionInput {
    /// The instance's name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The incarnation whose resources go. Absent in inputs recorded before deletes named one:
    /// then every incarnation of the name goes but a running instance's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Input of `configure-roles`: the control plane's roles and the owner's inside an instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigureRolesInput {
    /// The instance.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Major PostgreSQL version (what hardening applies depends on it).
    pub postgres_version: String,
    /// The owner role users get (`postgres`).
    pub owner: String,
    /// The owner's sealed password.
    pub sealed_owner_password: SealedSecret,
    /// The sealed password of the administering role `toygres_admin`.
    pub sealed_admin_password: SealedSecret,
    /// The sealed password of the monitoring role `toygres_monitor`.
    pub sealed_monitor_password: SealedSecret,
    /// Connect-and-configure timeout.
    pub timeout_ms: u64,
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
    /// Its DNS name, where it has one (absent in histories recorded before there were DNS
    /// names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
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
    /// Where an instance that was moving between states ends (what the backend showed after
    /// the failure); absent: `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<InstanceState>,
}

/// Output of `fail-operation`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailOutcome {
    /// Whether this call recorded the failure (false: the operation had finished already,
    /// perhaps successfully, and nothing was changed).
    pub recorded: bool,
    /// The operation's status after the call.
    pub status: OperationStatus,
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
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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
    /// Whether to also read whether WAL archiving fails (absent in inputs recorded before).
    #[serde(default, skip_serializing_if = "is_false")]
    pub check_archiving: bool,
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
    /// Why it stops, for its history (absent in inputs recorded before: a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Output of `stop-monitor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StopMonitorOutput {
    /// Whether the instance's monitor (if any) has stopped.
    pub stopped: bool,
}

/// Input of `refill-pool`: the size comes from the server that runs it (`TOYGRES_WARM_POOL`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefillPoolInput {}

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
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Output of `detect-drift`: where the metadata and the backend disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Backend resources of incarnations no live instance is (reports recorded before
    /// incarnations were reported hold bare names).
    pub orphans: Vec<OrphanedResources>,
    /// Running instances (with no operation in progress) whose backend resources are gone.
    pub lost: Vec<LostInstance>,
}

/// Resources of one incarnation that no live instance is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OrphanRepr")]
pub struct OrphanedResources {
    /// The name they are under.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Their incarnation (`None` in reports recorded before incarnations were reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl OrphanedResources {
    /// What the drift reconciler remembers them by (name and incarnation).
    pub fn key(&self) -> String {
        match &self.uid {
            Some(uid) => format!("{}/{uid}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// How orphans appear in recorded reports: bare names (older) or name and incarnation.
#[derive(Deserialize)]
#[serde(untagged)]
enum OrphanRepr {
    Name(InstanceName),
    Incarnation {
        name: InstanceName,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        uid: Option<String>,
    },
}

impl From<OrphanRepr> for OrphanedResources {
    fn from(repr: OrphanRepr) -> Self {
        match repr {
            OrphanRepr::Name(name) => Self {
                name,
                namespace: None,
                uid: None,
            },
            OrphanRepr::Incarnation {
                name,
                namespace,
                uid,
            } => Self {
                name,
                namespace,
                uid,
            },
        }
    }
}

/// Input of `remove-orphan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveOrphanInput {
    /// The name the orphaned resources are under.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Their incarnation; absent in inputs recorded before incarnations were reported (then
    /// every incarnation of the name goes, unless a live instance has the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Input of `mark-backend-lost`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkBackendLostInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// Its name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Input of `stop-postgres` and `start-postgres`: one incarnation of an instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncarnationInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its incarnation.
    pub uid: String,
}

/// Input of `restart-postgres`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartPostgresInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its incarnation.
    pub uid: String,
    /// The settings the server runs with from now on (on its command line); absent: the ones
    /// it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
}

/// Input of `resize-storage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeStorageInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its incarnation.
    pub uid: String,
    /// The new size in GiB (never less than the old).
    pub storage_gb: u32,
}

/// Where the control plane reaches an instance as its superuser `toygres_admin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminEndpoint {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// The sealed password of `toygres_admin`.
    pub sealed_admin_password: SealedSecret,
    /// Connect-and-run timeout.
    pub timeout_ms: u64,
}

/// Input of `set-parameters`: settings a reload applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetParametersInput {
    /// The instance, as `toygres_admin`.
    pub admin: AdminEndpoint,
    /// The changes (none of them needs a restart).
    pub changes: Vec<ParameterChange>,
}

/// Input of `set-owner-password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetOwnerPasswordInput {
    /// The instance, as `toygres_admin`.
    pub admin: AdminEndpoint,
    /// The owner role.
    pub owner: String,
    /// Its new password, sealed.
    pub sealed_password: SealedSecret,
}

/// Input of `observe-instance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObserveInstanceInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How long to wait for a starting server to accept connections.
    pub wait_ms: u64,
}

/// Output of `observe-instance`: the state the backend shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObservedState {
    /// `running` (accepts connections), `stopped` (stopped on purpose) or `failed`.
    pub state: InstanceState,
    /// What was seen, when not running.
    pub detail: Option<String>,
}

/// Input of `complete-operation`: the success of an operation other than a create or delete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteOperationInput {
    /// The instance's database id.
    pub instance_id: i64,
    /// The instance's name (for logs).
    pub name: InstanceName,
    /// The operation holding the instance.
    pub operation_id: String,
    /// The states the instance may be in.
    pub expected: Vec<InstanceState>,
    /// The state it ends in.
    pub to: InstanceState,
    /// What else changes on it.
    pub changes: InstanceChanges,
    /// The operation's result.
    pub result: Option<serde_json::Value>,
    /// For the audit trail.
    pub message: String,
}

/// Input of `take-backup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeBackupInput {
    /// Instance name.
    pub name: InstanceName,
    /// Its incarnation (the stanza).
    pub uid: String,
    /// The backup row (and pgBackRest annotation).
    pub backup_id: String,
    /// Full, differential or incremental.
    pub kind: BackupType,
    /// The sealed password of `toygres_admin`, whom pgBackRest connects as.
    pub sealed_admin_password: SealedSecret,
    /// Whether the server is stopped (an offline backup).
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
}

/// Input of `complete-backup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteBackupInput {
    /// Instance name (for logs).
    pub name: InstanceName,
    /// The instance's database id.
    pub instance_id: i64,
    /// Its incarnation (the stanza).
    pub uid: String,
    /// The backup row.
    pub backup_id: String,
    /// What pgBackRest says of it.
    pub summary: BackupSummary,
    /// Whether this finishes the backup operation (not for a delete's final backup).
    pub finish_operation: bool,
}

/// Input of `flush-archive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlushArchiveInput {
    /// Instance name.
    pub name: InstanceName,
    /// The instance's database id.
    pub instance_id: i64,
    /// Its incarnation.
    pub uid: String,
    /// The sealed password of `toygres_admin`.
    pub sealed_admin_password: SealedSecret,
}

/// Output of `flush-archive`: everything committed before this moment is archived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flushed {
    /// The moment.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Input of `deploy-restored`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRestoredInput {
    /// The new instance.
    pub deploy: DeployInput,
    /// Whose backups, up to where.
    pub source: RestoreSource,
}

/// Input of `verify-backup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyBackupInput {
    /// The instance the backup is of (for logs).
    pub name: InstanceName,
    /// Its stanza.
    pub stanza: String,
    /// pgBackRest's label of the backup.
    pub label: String,
}

/// Input of `record-verification`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordVerificationInput {
    /// The instance the backup is of (for logs).
    pub name: InstanceName,
    /// The backup.
    pub backup_id: String,
    /// The verify operation.
    pub operation_id: String,
    /// What was checked and found.
    pub verification: serde_json::Value,
    /// Whether the verify failed (the operation's failure is recorded apart).
    pub failed: bool,
}

/// Input of `plan-backups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanBackupsInput {
    /// A running instance whose newest succeeded backup is older than this is due.
    pub interval_ms: u64,
    /// After a failed attempt, the next one waits this long.
    pub retry_ms: u64,
    /// Backups of deleted instances are kept this long.
    pub retention_ms: u64,
    /// At most this many of each kind per pass.
    pub limit: u32,
}

/// Output of `plan-backups`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupPlan {
    /// Instances due for a backup: (database id, name, latest operation).
    pub due: Vec<(i64, InstanceName, String)>,
    /// Deleted instances whose backups expired: (database id, name, stanza).
    pub expired: Vec<(i64, InstanceName, String)>,
}

/// Input of `request-backup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestBackupInput {
    /// The instance.
    pub name: InstanceName,
    /// Its latest operation when it was found due (the claim applies only if unchanged).
    pub last_operation_id: String,
    /// Steps of a backup operation, for its progress.
    pub progress_total: i32,
    /// Unique per request (chosen by the workflow): the operation and backup ids derive from
    /// it, so a retried request records nothing twice.
    pub request_id: String,
}

/// Output of `request-backup`: the recorded operation and backup, and the instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestedBackup {
    /// The instance as claimed.
    pub instance: crate::metadata::InstanceRecord,
    /// The backup operation.
    pub operation_id: String,
    /// The backup row.
    pub backup_id: String,
    /// Its type.
    pub kind: BackupType,
}

/// Input of `expire-backups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpireBackupsInput {
    /// The deleted instance (for logs).
    pub name: InstanceName,
    /// Its database id.
    pub instance_id: i64,
    /// Its stanza.
    pub stanza: String,
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
    ConfigureRolesInput,
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
    IncarnationInput,
    RestartPostgresInput,
    ResizeStorageInput,
    AdminEndpoint,
    ObserveInstanceInput,
    CompleteOperationInput,
    TakeBackupInput,
    CompleteBackupInput,
    FlushArchiveInput,
    VerifyBackupInput,
    RecordVerificationInput,
    RequestBackupInput,
    ExpireBackupsInput,
);

impl ActivityInput for PlanBackupsInput {
    fn instance(&self) -> &str {
        "-"
    }
}

impl ActivityInput for RefillPoolInput {
    fn instance(&self) -> &str {
        "-"
    }
}

impl ActivityInput for DeployRestoredInput {
    fn instance(&self) -> &str {
        self.deploy.name.as_str()
    }
}

impl ActivityInput for SetParametersInput {
    fn instance(&self) -> &str {
        self.admin.name.as_str()
    }
}

impl ActivityInput for SetOwnerPasswordInput {
    fn instance(&self) -> &str {
        self.admin.name.as_str()
    }
}

/// `instance()` for inputs that name an instance and its namespace.
macro_rules! placed {
    ($($input:ty),* $(,)?) => {
        $(impl $input {
            /// The instance, where its backend finds it.
            pub fn instance(&self) -> InstanceRef<'_> {
                InstanceRef::new(&self.name, self.namespace.as_deref())
            }
        })*
    };
}

placed!(
    LostInstance,
    MarkBackendLostInput,
    DeployInput,
    WaitForReadyInput,
    ConnectionInfoInput,
    TestConnectionInput,
    DeletePostgresInput,
    ConfigureRolesInput,
    CheckHealthInput,
    OrphanedResources,
    RemoveOrphanInput,
    IncarnationInput,
    RestartPostgresInput,
    ResizeStorageInput,
    AdminEndpoint,
    ObserveInstanceInput,
);
