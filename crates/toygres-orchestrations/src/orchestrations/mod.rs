//! The workflows, one module each.

pub mod create_instance;
pub mod delete_instance;
pub mod monitor_instance;
pub mod reconcile_drift;
