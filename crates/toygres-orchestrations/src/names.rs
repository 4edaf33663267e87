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
