//! The orchestration registry.

use crate::names;
use crate::orchestrations::{create_instance, delete_instance, monitor_instance, reconcile_drift};
use duroxide::OrchestrationRegistry;

/// Builds the registry of every Toygres workflow.
pub fn create_orchestration_registry() -> OrchestrationRegistry {
    OrchestrationRegistry::builder()
        .register_typed(names::CREATE_INSTANCE, create_instance::run)
        .register_typed(names::DELETE_INSTANCE, delete_instance::run)
        .register_typed(names::MONITOR_INSTANCE, monitor_instance::run)
        .register_typed(names::RECONCILE_DRIFT, reconcile_drift::run)
        .build()
}
