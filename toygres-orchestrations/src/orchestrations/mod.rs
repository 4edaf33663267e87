//! The workflows, one module each.

pub mod backup_instance;
pub mod backup_scheduler;
pub mod create_instance;
pub mod delete_instance;
pub mod monitor_instance;
pub mod reconcile_drift;
pub mod reset_password;
pub mod restart_instance;
pub mod start_instance;
pub mod stop_instance;
pub mod update_instance;
pub mod verify_backup;
pub mod warm_pool;
