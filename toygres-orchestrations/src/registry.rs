//! The orchestration registry.

use crate::names;
use crate::orchestrations::{
    backup_instance, backup_scheduler, create_instance, delete_instance, monitor_instance,
    reconcile_drift, reset_password, restart_instance, start_instance, stop_instance,
    update_instance, verify_backup, warm_pool,
};
use duroxide::OrchestrationRegistry;

/// Builds the registry of every Toygres workflow.
pub fn create_orchestration_registry() -> OrchestrationRegistry {
    OrchestrationRegistry::builder()
        // 1.0.0 stays for creates that were running when the server was upgraded.
        .register_typed(names::CREATE_INSTANCE, create_instance::v1_0::run)
        .register_versioned_typed(
            names::CREATE_INSTANCE,
            create_instance::VERSION_1_1,
            create_instance::run_1_1,
        )
        .register_versioned_typed(
            names::CREATE_INSTANCE,
            create_instance::VERSION_1_2,
            create_instance::run_1_2,
        )
        .register_versioned_typed(
            names::CREATE_INSTANCE,
            create_instance::VERSION_1_3,
            create_instance::run_1_3,
        )
        .register_versioned_typed(
            names::CREATE_INSTANCE,
            create_instance::VERSION,
            create_instance::run,
        )
        .register_typed(names::DELETE_INSTANCE, delete_instance::run_1_0)
        .register_versioned_typed(
            names::DELETE_INSTANCE,
            delete_instance::VERSION_1_1,
            delete_instance::run_1_1,
        )
        .register_versioned_typed(
            names::DELETE_INSTANCE,
            delete_instance::VERSION,
            delete_instance::run,
        )
        .register_typed(names::MONITOR_INSTANCE, monitor_instance::run)
        .register_typed(names::RECONCILE_DRIFT, reconcile_drift::run)
        .register_typed(names::STOP_INSTANCE, stop_instance::run)
        .register_typed(names::START_INSTANCE, start_instance::run)
        .register_typed(names::RESTART_INSTANCE, restart_instance::run)
        .register_typed(names::UPDATE_INSTANCE, update_instance::run)
        .register_typed(names::RESET_PASSWORD, reset_password::run)
        .register_typed(names::BACKUP_INSTANCE, backup_instance::run)
        .register_typed(names::VERIFY_BACKUP, verify_backup::run)
        .register_typed(names::BACKUP_SCHEDULER, backup_scheduler::run)
        .register_typed(names::WARM_POOL, warm_pool::run)
        .build()
}
