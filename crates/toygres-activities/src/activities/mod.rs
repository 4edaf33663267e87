//! The activities, one module each: its `NAME` (Duroxide's cross-crate convention
//! `toygres-activities::activity::{name}`) and its `run` function.

pub mod cancel_operation;
pub mod check_health;
pub mod complete_create;
pub mod complete_delete;
pub mod delete_postgres;
pub mod deploy_postgres;
pub mod detect_drift;
pub mod fail_operation;
pub mod get_connection_strings;
pub mod mark_backend_lost;
pub mod prune_history;
pub mod remove_orphan;
pub mod start_operation;
pub mod stop_monitor;
pub mod test_connection;
pub mod transition_instance;
pub mod wait_for_ready;

use crate::backend::BackendError;
use crate::error::{ActivityError, ErrorCode};
use crate::metadata::MetadataError;

/// Maps a backend failure to the activity error of a step whose failures carry `code`.
pub(crate) fn backend_failure(code: ErrorCode, error: BackendError) -> ActivityError {
    match error {
        BackendError::UnsupportedVersion { .. } => {
            ActivityError::permanent(ErrorCode::UnsupportedVersion, error.to_string())
        }
        error if error.is_retryable() => ActivityError::transient(code, error.to_string()),
        error => ActivityError::permanent(code, error.to_string()),
    }
}

/// Maps a metadata failure to a retryable activity error.
pub(crate) fn metadata_failure(error: MetadataError) -> ActivityError {
    ActivityError::transient(ErrorCode::MetadataFailed, error.to_string())
}
