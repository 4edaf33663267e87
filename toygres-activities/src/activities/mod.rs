//! The activities, one module each: its `NAME` (Duroxide's cross-crate convention
//! `toygres-activities::activity::{name}`) and its `run` function.

pub mod cancel_operation;
pub mod check_health;
pub mod complete_backup;
pub mod complete_create;
pub mod complete_delete;
pub mod complete_operation;
pub mod configure_roles;
pub mod delete_postgres;
pub mod deploy_postgres;
pub mod deploy_restored;
pub mod detect_drift;
pub mod expire_backups;
pub mod fail_operation;
pub mod flush_archive;
pub mod get_connection_strings;
pub mod mark_backend_lost;
pub mod observe_instance;
pub mod plan_backups;
pub mod prune_history;
pub mod record_verification;
pub mod refill_pool;
pub mod remove_orphan;
pub mod request_backup;
pub mod resize_storage;
pub mod restart_postgres;
pub mod set_owner_password;
pub mod set_parameters;
pub mod start_operation;
pub mod start_postgres;
pub mod stop_monitor;
pub mod stop_postgres;
pub mod take_backup;
pub mod test_connection;
pub mod transition_instance;
pub mod verify_backup;
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
        BackendError::Unsupported(_) => {
            ActivityError::permanent(ErrorCode::UnsupportedByBackend, error.to_string())
        }
        error if error.is_retryable() => ActivityError::transient(code, error.to_string()),
        error => ActivityError::permanent(code, error.to_string()),
    }
}

/// The backups the backend runs; a backend that runs none fails the step for good.
pub(crate) fn backup_agent(
    deps: &crate::registry::ActivityDeps,
) -> Result<&dyn crate::backup::agent::InstanceBackups, ActivityError> {
    deps.backend.backups().ok_or_else(|| {
        ActivityError::permanent(
            ErrorCode::UnsupportedByBackend,
            format!(
                "the {} backend does not run backups (or backups are off)",
                deps.backend.kind()
            ),
        )
    })
}

/// Maps a pgBackRest failure while doing `what` to a `backup_failed` activity error.
pub(crate) fn backup_error(what: &str, error: crate::backup::BackupError) -> ActivityError {
    let message = format!("{what}: {error}");
    if error.is_retryable() {
        ActivityError::transient(ErrorCode::BackupFailed, message)
    } else {
        ActivityError::permanent(ErrorCode::BackupFailed, message)
    }
}

/// Maps a metadata failure to a retryable activity error.
pub(crate) fn metadata_failure(error: MetadataError) -> ActivityError {
    ActivityError::transient(ErrorCode::MetadataFailed, error.to_string())
}

/// Opens a sealed password; a key that cannot open it is a permanent `secret_unavailable`.
pub(crate) fn open_password(
    deps: &crate::registry::ActivityDeps,
    sealed: &crate::seal::SealedSecret,
) -> Result<String, ActivityError> {
    deps.secret_key
        .open(sealed)
        .map_err(|error| ActivityError::permanent(ErrorCode::SecretUnavailable, error.to_string()))
}

/// Where to connect to an instance as its owner, with the password opened.
pub(crate) fn owner_target(
    deps: &crate::registry::ActivityDeps,
    instance: crate::backend::InstanceRef<'_>,
    host: String,
    port: u16,
    user: String,
    database: String,
    sealed: &crate::seal::SealedSecret,
) -> Result<crate::probe::ConnectTarget, ActivityError> {
    let password = open_password(deps, sealed)?;
    Ok(crate::probe::ConnectTarget {
        name: instance.name.clone(),
        namespace: instance.namespace.map(str::to_string),
        host,
        port,
        user,
        database,
        password,
    })
}

/// Where to connect to an instance as its `toygres_admin`, with the password opened.
pub(crate) fn admin_target(
    deps: &crate::registry::ActivityDeps,
    admin: &crate::types::AdminEndpoint,
) -> Result<crate::roles::AdminTarget, ActivityError> {
    Ok(crate::roles::AdminTarget {
        name: admin.name.clone(),
        namespace: admin.namespace.clone(),
        endpoint: crate::backend::Endpoint {
            host: admin.host.clone(),
            port: admin.port,
        },
        user: crate::roles::ADMIN.to_string(),
        password: open_password(deps, &admin.sealed_admin_password)?,
    })
}

/// Maps a failure of work done as `toygres_admin` to the activity error of a step whose
/// failures carry `code`: a statement the server refused fails for good.
pub(crate) fn admin_failure(
    code: ErrorCode,
    what: String,
    error: crate::roles::RolesError,
) -> ActivityError {
    let message = format!("{what}: {error}");
    if error.is_retryable() {
        ActivityError::transient(code, message)
    } else {
        ActivityError::permanent(code, message)
    }
}

/// Cancels workflow `id` and waits up to `wait` (at most 10 s) for it to end. Returns whether
/// it has ended (a workflow that never started counts as ended).
pub(crate) async fn cancel_and_wait(
    client: &duroxide::Client,
    id: &str,
    reason: String,
    wait: std::time::Duration,
) -> Result<bool, ActivityError> {
    let internal = |error: duroxide::ClientError| {
        ActivityError::transient(ErrorCode::Internal, error.to_string())
    };
    client
        .cancel_instance(id.to_string(), reason)
        .await
        .map_err(internal)?;
    let deadline = tokio::time::Instant::now() + wait.min(std::time::Duration::from_secs(10));
    loop {
        match client
            .get_orchestration_status(id)
            .await
            .map_err(internal)?
        {
            duroxide::OrchestrationStatus::Running { .. }
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            duroxide::OrchestrationStatus::Running { .. } => return Ok(false),
            _ => return Ok(true),
        }
    }
}
