//! Orchestration names, following Duroxide's cross-crate convention.

/// Creates an instance. Input [`crate::types::CreateInstanceInput`], output
/// [`crate::types::CreateInstanceOutput`].
pub const CREATE_INSTANCE: &str = "toygres-orchestrations::orchestration::create-instance";

/// Deletes an instance (cancelling a create still in progress first). Input
/// [`crate::types::DeleteInstanceInput`], output `()`.
pub const DELETE_INSTANCE: &str = "toygres-orchestrations::orchestration::delete-instance";

/// Watches one running instance's health until it is deleted. Input
/// [`crate::types::MonitorInstanceInput`]; continues as new every few checks.
pub const MONITOR_INSTANCE: &str = "toygres-orchestrations::orchestration::monitor-instance";

/// Compares the metadata with what the backend owns, forever: removes orphaned resources after
/// a grace period and marks instances whose resources vanished `failed` (`backend_lost`).
/// Input [`crate::types::ReconcileDriftInput`]; one per control plane; continues as new.
pub const RECONCILE_DRIFT: &str = "toygres-orchestrations::orchestration::reconcile-drift";

/// Stops an instance's server, keeping its data. Input [`crate::types::LifecycleInput`].
pub const STOP_INSTANCE: &str = "toygres-orchestrations::orchestration::stop-instance";

/// Starts a stopped instance's server. Input [`crate::types::LifecycleInput`].
pub const START_INSTANCE: &str = "toygres-orchestrations::orchestration::start-instance";

/// Restarts an instance's server. Input [`crate::types::LifecycleInput`].
pub const RESTART_INSTANCE: &str = "toygres-orchestrations::orchestration::restart-instance";

/// Changes an instance's storage, parameters or deletion protection. Input
/// [`crate::types::UpdateInstanceInput`].
pub const UPDATE_INSTANCE: &str = "toygres-orchestrations::orchestration::update-instance";

/// Gives an instance's owner a new password. Input [`crate::types::ResetPasswordInput`].
pub const RESET_PASSWORD: &str = "toygres-orchestrations::orchestration::reset-password";

/// Takes a backup of an instance. Input [`crate::types::BackupInstanceInput`].
pub const BACKUP_INSTANCE: &str = "toygres-orchestrations::orchestration::backup-instance";

/// Restores a backup into a scratch cluster and checks it. Input
/// [`crate::types::VerifyBackupWorkflowInput`].
pub const VERIFY_BACKUP: &str = "toygres-orchestrations::orchestration::verify-backup";

/// Takes the backups that are due and removes those past retention, forever. Input
/// [`crate::types::BackupSchedulerInput`]; one per control plane; continues as new.
pub const BACKUP_SCHEDULER: &str = "toygres-orchestrations::orchestration::backup-scheduler";
/// The warm pool's refills (one per control plane while the pool is on).
pub const WARM_POOL: &str = "toygres-orchestrations::orchestration::warm-pool";
