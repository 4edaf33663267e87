//! Typed errors that cross the activity/orchestration boundary.
//!
//! Duroxide carries activity failures as strings; [`ActivityError`] is encoded as JSON in that
//! string so that the workflow (and, from it, the API) sees a stable error code, a message safe
//! to show a user, and whether retrying may help.

use serde::{Deserialize, Serialize};

/// Stable error codes reported on failed operations and instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The backend could not create the instance's resources.
    DeployFailed,
    /// The backend could not remove the instance's resources.
    DeleteFailed,
    /// The instance did not accept connections before its deadline.
    DeadlineExceeded,
    /// The instance is up but refused or failed a connection with its own credentials.
    ConnectionFailed,
    /// The requested PostgreSQL version is not offered by the backend.
    UnsupportedVersion,
    /// The backend's resources for the instance disappeared.
    BackendLost,
    /// A sealed secret could not be opened (wrong key or corrupted data).
    SecretUnavailable,
    /// The metadata store failed.
    MetadataFailed,
    /// The operation was canceled by a later request.
    Canceled,
    /// The server could not be stopped.
    StopFailed,
    /// The server could not be started again.
    StartFailed,
    /// The server could not be restarted (new settings are rolled back).
    RestartFailed,
    /// A change of the instance (storage, parameters, password) could not be made.
    UpdateFailed,
    /// The instance is not in a state the step applies to.
    InvalidState,
    /// The backend cannot do this; the message says why.
    UnsupportedByBackend,
    /// A backup could not be taken (or WAL not archived).
    BackupFailed,
    /// A backup could not be restored.
    RestoreFailed,
    /// A restored backup failed its checks.
    VerifyFailed,
    /// Anything else; the message says what.
    Internal,
}

impl ErrorCode {
    /// The snake_case wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DeployFailed => "deploy_failed",
            ErrorCode::DeleteFailed => "delete_failed",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::ConnectionFailed => "connection_failed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::BackendLost => "backend_lost",
            ErrorCode::SecretUnavailable => "secret_unavailable",
            ErrorCode::MetadataFailed => "metadata_failed",
            ErrorCode::Canceled => "canceled",
            ErrorCode::StopFailed => "stop_failed",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::RestartFailed => "restart_failed",
            ErrorCode::UpdateFailed => "update_failed",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::UnsupportedByBackend => "unsupported_by_backend",
            ErrorCode::BackupFailed => "backup_failed",
            ErrorCode::RestoreFailed => "restore_failed",
            ErrorCode::VerifyFailed => "verify_failed",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one activity or workflow step, with a code, a user-safe message and retryability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ActivityError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What happened, without secrets.
    pub message: String,
    /// Whether running the same step again may succeed.
    pub retryable: bool,
}

impl ActivityError {
    /// A failure that may go away when the step is retried.
    pub fn transient(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: false,
        }
    }

    /// Encodes the error as the string Duroxide carries.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{}: {}", self.code, self.message))
    }

    /// Decodes a Duroxide error string; strings that are not ours become [`ErrorCode::Internal`].
    pub fn decode(raw: &str) -> Self {
        serde_json::from_str(raw)
            .unwrap_or_else(|_| Self::transient(ErrorCode::Internal, raw.to_string()))
    }
}

impl From<ActivityError> for String {
    fn from(error: ActivityError) -> Self {
        error.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_duroxide_string() {
        let error = ActivityError::permanent(ErrorCode::DeadlineExceeded, "not ready after 60 s");
        assert_eq!(ActivityError::decode(&error.encode()), error);
    }

    #[test]
    fn foreign_strings_decode_as_internal() {
        let decoded = ActivityError::decode("timeout: activity timed out");
        assert_eq!(decoded.code, ErrorCode::Internal);
        assert_eq!(decoded.message, "timeout: activity timed out");
    }
}
