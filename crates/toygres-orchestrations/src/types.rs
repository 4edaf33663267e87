//! Inputs, outputs and the progress custom status of the workflows.

use serde::{Deserialize, Serialize};
use toygres_activities::model::Expose;
use toygres_activities::seal::SealedSecret;
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
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval_ms: 30_000,
            unhealthy_after: 3,
            checks_per_execution: 20,
            probe_timeout_ms: 5_000,
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
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Superuser to connect as.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// The sealed superuser password.
    pub sealed_password: SealedSecret,
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
    /// A create still in progress, to cancel before deleting.
    pub cancels_operation_id: Option<String>,
    /// Deadlines and retry budgets.
    pub limits: DeleteLimits,
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
pub const CREATE_STEPS: [&str; 5] = [
    "deploy",
    "wait_ready",
    "connection_info",
    "test_connection",
    "finalize",
];

/// Step names of delete-instance, in order.
pub const DELETE_STEPS: [&str; 4] = [
    "cancel_create",
    "mark_deleting",
    "delete_resources",
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
