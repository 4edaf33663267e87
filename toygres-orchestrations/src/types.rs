//! Inputs, outputs and the progress custom status of the workflows.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toygres_activities::model::{BackupType, Expose, InstanceState};
use toygres_activities::parameters::ParameterChange;
use toygres_activities::seal::SealedSecret;
use toygres_activities::types::{FlushArchiveInput, PlanBackupsInput, RestoreSource};
use toygres_activities::validation::InstanceName;

/// Deadlines and retry budgets of a create; chosen by the server so replays see the same values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateLimits {
    /// How long the instance may take to accept connections after deploy.
    pub ready_timeout_ms: u64,
    /// How long the deploy step (all its attempts) may take.
    pub deploy_timeout_ms: u64,
    /// Connect-and-query timeout of the connection test.
    pub probe_timeout_ms: u64,
    /// How long any other step may take.
    pub step_timeout_ms: u64,
    /// How long the whole operation may take before it fails with `deadline_exceeded`.
    pub operation_timeout_ms: u64,
    /// Attempts of a step whose errors are retryable.
    pub step_attempts: u32,
}

impl Default for CreateLimits {
    fn default() -> Self {
        Self {
            ready_timeout_ms: 120_000,
            deploy_timeout_ms: 300_000,
            probe_timeout_ms: 10_000,
            step_timeout_ms: 60_000,
            operation_timeout_ms: 900_000,
            step_attempts: 3,
        }
    }
}

/// Deadlines and retry budgets of a delete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteLimits {
    /// How long the backend delete step (all its attempts) may take.
    pub delete_timeout_ms: u64,
    /// Attempts of the backend delete.
    pub delete_attempts: u32,
    /// How long any other step may take.
    pub step_timeout_ms: u64,
    /// How long the whole operation may take before it fails with `deadline_exceeded`.
    pub operation_timeout_ms: u64,
}

impl Default for DeleteLimits {
    fn default() -> Self {
        Self {
            delete_timeout_ms: 300_000,
            delete_attempts: 5,
            step_timeout_ms: 60_000,
            operation_timeout_ms: 900_000,
        }
    }
}

/// How running instances are watched; chosen by the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthSettings {
    /// Time between checks.
    pub interval_ms: u64,
    /// Failures in a row that make an instance unhealthy.
    pub unhealthy_after: u32,
    /// Checks per workflow execution before it continues as new (bounds its history).
    pub checks_per_execution: u32,
    /// Connect-and-query timeout of one check.
    pub probe_timeout_ms: u64,
    /// Whether each check also reads whether WAL archiving fails (instances with backups).
    #[serde(default, skip_serializing_if = "toygres_activities::types::is_false")]
    pub check_archiving: bool,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval_ms: 30_000,
            unhealthy_after: 3,
            checks_per_execution: 20,
            probe_timeout_ms: 5_000,
            check_archiving: false,
        }
    }
}

/// The monitor workflow id of an instance incarnation (first generation).
pub fn monitor_id_for(uid: &str) -> String {
    format!("monitor-{uid}")
}

/// Input of the monitor-instance workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorInstanceInput {
    /// This workflow's id (also recorded on the instance).
    pub monitor_id: String,
    /// The instance's metadata id.
    pub instance_id: i64,
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Host to check.
    pub host: String,
    /// Port to check.
    pub port: u16,
    /// User to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// The sealed password.
    pub sealed_password: SealedSecret,
    /// Check settings.
    pub settings: HealthSettings,
    /// Executions so far (continue-as-new count).
    pub generation: u64,
}

/// Input of the create-instance workflow. The password is sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateInstanceInput {
    /// The operation (also this orchestration's instance id).
    pub operation_id: String,
    /// The instance's metadata id.
    pub instance_id: i64,
    /// The instance's incarnation id.
    pub uid: String,
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// The owner role users connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// The owner's sealed password (in inputs recorded before the control plane had roles of
    /// its own, the owner was the bootstrap superuser).
    pub sealed_password: SealedSecret,
    /// The sealed password of the control plane's `toygres_admin` (absent in inputs recorded
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_admin_password: Option<SealedSecret>,
    /// The sealed password of the control plane's `toygres_monitor` (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_monitor_password: Option<SealedSecret>,
    /// How clients reach the instance (absent in inputs recorded before it existed: internal).
    #[serde(default = "toygres_activities::types::internal")]
    pub expose: Expose,
    /// The DNS label a public instance asks for.
    #[serde(default)]
    pub dns_label: Option<String>,
    /// Deadlines and retry budgets.
    pub limits: CreateLimits,
    /// How the instance is watched once running.
    pub health: HealthSettings,
    /// Server parameters the owner asked for (absent: none, and in inputs recorded before
    /// creates took parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<InitialParameters>,
    /// The backups the new instance's data comes from (absent: initdb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestorePlan>,
}

/// The parameters a create sets before the instance is handed over.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitialParameters {
    /// Those a reload applies (`ALTER SYSTEM`).
    pub reload: Vec<ParameterChange>,
    /// Those that take effect at a start (the server's command line; a restart applies them).
    pub start: BTreeMap<String, String>,
}

/// Output of the create-instance workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateInstanceOutput {
    /// Where the instance listens.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// What `SELECT version()` answered.
    pub server_version: String,
}

/// Input of the delete-instance workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteInstanceInput {
    /// The operation (also this orchestration's instance id).
    pub operation_id: String,
    /// The instance's metadata id.
    pub instance_id: i64,
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The incarnation whose resources go (absent in inputs recorded before deletes named
    /// one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// A create still in progress, to cancel before deleting.
    pub cancels_operation_id: Option<String>,
    /// Deadlines and retry budgets.
    pub limits: DeleteLimits,
    /// A final backup, or the archiving of the current WAL, before the instance goes (absent:
    /// no backups, and in inputs recorded before deletes kept backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_backups: Option<SaveBackups>,
}

/// Deadlines and retry budgets of the operations that change an existing instance (stop,
/// start, restart, update, reset_password); chosen by the server so replays see the same values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeLimits {
    /// How long the server may take to accept connections after a start or restart.
    pub ready_timeout_ms: u64,
    /// Connect-and-query timeout of a connection test.
    pub probe_timeout_ms: u64,
    /// How long any other step may take.
    pub step_timeout_ms: u64,
    /// How long the whole operation may take before it fails with `deadline_exceeded`.
    pub operation_timeout_ms: u64,
    /// Attempts of a step whose errors are retryable.
    pub step_attempts: u32,
}

impl Default for ChangeLimits {
    fn default() -> Self {
        Self {
            ready_timeout_ms: 120_000,
            probe_timeout_ms: 10_000,
            step_timeout_ms: 60_000,
            operation_timeout_ms: 900_000,
            step_attempts: 3,
        }
    }
}

/// What every operation that changes an existing instance knows of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationTarget {
    /// The operation (also this orchestration's instance id).
    pub operation_id: String,
    /// The instance's metadata id.
    pub instance_id: i64,
    /// Instance name.
    pub name: InstanceName,
    /// Its namespace (absent: the backend's default, as in inputs recorded before instances
    /// had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its incarnation.
    pub uid: String,
    /// Where it listens.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The owner role.
    pub user: String,
    /// The database to connect to.
    pub database: String,
    /// The sealed password of the control plane's `toygres_admin`.
    pub sealed_admin_password: SealedSecret,
    /// The sealed password of the control plane's `toygres_monitor`.
    pub sealed_monitor_password: SealedSecret,
    /// Deadlines and retry budgets.
    pub limits: ChangeLimits,
    /// How the instance is watched once running (a start gives it a new monitor).
    pub health: HealthSettings,
}

impl OperationTarget {
    /// The target of operation `operation_id` on `instance` (which ran and has the control
    /// plane's roles: the claim made sure).
    pub fn for_instance(
        instance: &toygres_activities::metadata::InstanceRecord,
        operation_id: &str,
        limits: ChangeLimits,
        health: HealthSettings,
    ) -> Result<Self, String> {
        let missing = |what: &str| format!("instance {} has no {what}", instance.name);
        let port = instance.port.ok_or_else(|| missing("port"))?;
        let sealed = |value: &Option<String>, what: &str| {
            value
                .clone()
                .map(SealedSecret::from_stored)
                .ok_or_else(|| missing(what))
        };
        Ok(Self {
            operation_id: operation_id.to_string(),
            instance_id: instance.id,
            name: InstanceName::parse(&instance.name).map_err(|error| error.to_string())?,
            namespace: instance.namespace.clone(),
            uid: instance.uid.clone(),
            host: instance.host.clone().ok_or_else(|| missing("host"))?,
            port: u16::try_from(port).map_err(|error| error.to_string())?,
            user: instance.username.clone(),
            database: instance.database_name.clone(),
            sealed_admin_password: sealed(&instance.sealed_admin_password, "admin password")?,
            sealed_monitor_password: sealed(&instance.sealed_monitor_password, "monitor password")?,
            limits,
            health,
        })
    }
}

/// Input of stop-instance, start-instance and restart-instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleInput {
    /// The instance.
    pub target: OperationTarget,
    /// Whether the instance archives its WAL (a stop then flushes it first, so a restore
    /// from the stopped instance loses nothing).
    #[serde(default, skip_serializing_if = "toygres_activities::types::is_false")]
    pub archives: bool,
}

/// Input of backup-instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupInstanceInput {
    /// The instance.
    pub target: OperationTarget,
    /// The backup row.
    pub backup_id: String,
    /// Full, differential or incremental.
    pub kind: BackupType,
    /// How long the backup itself may take.
    pub backup_timeout_ms: u64,
}

/// Input of verify-backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyBackupWorkflowInput {
    /// The operation (also this orchestration's instance id).
    pub operation_id: String,
    /// The instance the backup is of (live or deleted).
    pub instance_id: i64,
    /// Its name.
    pub name: InstanceName,
    /// Its stanza.
    pub stanza: String,
    /// The backup row.
    pub backup_id: String,
    /// pgBackRest's label of it.
    pub label: String,
    /// How long the restore and checks may take.
    pub verify_timeout_ms: u64,
}

/// Input of the backup scheduler, carried across continue-as-new.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupSchedulerInput {
    /// This workflow's id.
    pub workflow_id: String,
    /// Time between passes.
    pub tick_ms: u64,
    /// What is due and what expired.
    pub plan: PlanBackupsInput,
    /// Deadlines of the backup operations it starts.
    pub limits: ChangeLimits,
    /// How instances are watched (carried in their targets).
    pub health: HealthSettings,
    /// How long one backup may take.
    pub backup_timeout_ms: u64,
    /// Passes per execution before it continues as new.
    pub ticks_per_execution: u32,
    /// Executions so far.
    pub generation: u64,
}

/// Input of the warm-pool workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmPoolInput {
    /// This workflow's id.
    pub workflow_id: String,
    /// Time between refills.
    pub tick_ms: u64,
    /// How long one refill may take.
    pub refill_timeout_ms: u64,
    /// Refills per execution before it continues as new.
    pub ticks_per_execution: u32,
    /// Executions so far.
    pub generation: u64,
}

/// What a create restores from, decided when the request was accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The source's stanza and the target.
    pub source: RestoreSource,
    /// A live source whose current WAL must be archived first (a time or latest target).
    pub flush: Option<FlushArchiveInput>,
    /// How long the restore may take.
    pub restore_timeout_ms: u64,
}

/// What a delete does with backups before the instance goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaveBackups {
    /// The backup row of a final full backup, when one was asked for.
    pub final_backup_id: Option<String>,
    /// Whether the server runs (else the final backup is taken offline, and no WAL is
    /// flushed: a clean stop flushed it).
    pub online: bool,
    /// The sealed password of `toygres_admin`.
    pub sealed_admin_password: SealedSecret,
    /// How long it may take.
    pub timeout_ms: u64,
}

/// Input of update-instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateInstanceInput {
    /// The instance.
    pub target: OperationTarget,
    /// What changes.
    pub plan: UpdatePlan,
}

/// What an update changes, decided and checked when the request was accepted (and recorded
/// with the operation, so the workflow can be started from the record alone).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The state the instance was in (and returns to).
    pub resume: InstanceState,
    /// New storage size, when it grows.
    pub storage_gb: Option<u32>,
    /// New deletion protection, when it changes.
    pub deletion_protection: Option<bool>,
    /// Parameter changes a reload applies, and the values they replace (to roll back).
    pub reload: Vec<ParameterChange>,
    /// The changes that undo [`UpdatePlan::reload`].
    pub reload_undo: Vec<ParameterChange>,
    /// The server's command-line settings before and after, when they change.
    pub start: Option<StartParametersChange>,
    /// Every parameter the owner set, after the update (when parameters change).
    pub parameters: Option<BTreeMap<String, String>>,
}

/// A change of the settings on a server's command line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartParametersChange {
    /// What the server runs with now.
    pub before: BTreeMap<String, String>,
    /// What it runs with after the update.
    pub after: BTreeMap<String, String>,
}

/// Input of reset-password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetPasswordInput {
    /// The instance.
    pub target: OperationTarget,
    /// The owner's new password, sealed.
    pub sealed_password: SealedSecret,
}

/// The custom status every workflow publishes: the current step and progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    /// The step running now.
    pub step: String,
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
}

/// Step names of create-instance, in order.
pub const CREATE_STEPS: [&str; 6] = [
    "deploy",
    "wait_ready",
    "connection_info",
    "configure_roles",
    "test_connection",
    "finalize",
];

/// Step names of create-instance 1.0.0 (before the control plane had roles of its own).
pub const CREATE_STEPS_V1_0: [&str; 5] = [
    "deploy",
    "wait_ready",
    "connection_info",
    "test_connection",
    "finalize",
];

/// Step names of delete-instance, in order (`cancel_create` only when it overtook a create;
/// skipped, it counts as done).
pub const DELETE_STEPS: [&str; 5] = [
    "cancel_create",
    "stop_monitor",
    "mark_deleting",
    "delete_resources",
    "finalize",
];

/// Step names of stop-instance, in order (`flush_archive` with nothing to do counts as done).
pub const STOP_STEPS: [&str; 4] = ["mark_stopping", "flush_archive", "stop_server", "finalize"];

/// Step names of backup-instance, in order.
pub const BACKUP_STEPS: [&str; 2] = ["backup", "finalize"];

/// Step names of verify-backup, in order.
pub const VERIFY_STEPS: [&str; 2] = ["verify", "finalize"];

/// Step names of delete-instance 1.1.0, in order (skipped steps count as done).
pub const DELETE_STEPS_V1_1: [&str; 6] = [
    "cancel_create",
    "stop_monitor",
    "save_backups",
    "mark_deleting",
    "delete_resources",
    "finalize",
];

/// Step names of start-instance, in order.
pub const START_STEPS: [&str; 5] = [
    "mark_starting",
    "start_server",
    "wait_ready",
    "test_connection",
    "finalize",
];

/// Step names of restart-instance, in order.
pub const RESTART_STEPS: [&str; 5] = [
    "mark_updating",
    "restart_server",
    "wait_ready",
    "test_connection",
    "finalize",
];

/// Step names of update-instance, in order (steps with nothing to do count as done).
pub const UPDATE_STEPS: [&str; 5] = [
    "mark_updating",
    "resize_storage",
    "set_parameters",
    "restart_server",
    "finalize",
];

/// Step names of reset-password, in order.
pub const RESET_PASSWORD_STEPS: [&str; 4] = [
    "mark_updating",
    "set_password",
    "test_connection",
    "finalize",
];

/// Input of the reconcile-drift workflow, carried across continue-as-new.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileDriftInput {
    /// This workflow's id.
    pub workflow_id: String,
    /// Time between scans.
    pub interval_ms: u64,
    /// How long resources must stay orphaned before they are removed.
    pub grace_ms: u64,
    /// Scans per execution before it continues as new.
    pub scans_per_execution: u32,
    /// Executions so far.
    pub generation: u64,
    /// Scans so far (the clock of the grace period).
    pub scan: u64,
    /// Orphaned names and the scan that first saw them.
    pub orphan_since: std::collections::BTreeMap<String, u64>,
    /// Instances (by id) seen lost, and the scan that first saw them.
    pub lost_since: std::collections::BTreeMap<i64, u64>,
}
