//! Exit codes of the client subcommands, and the one error type that decides them.

use super::client::ClientError;

/// The command did what was asked.
pub const SUCCESS: u8 = 0;
/// The operation failed or was canceled (`--wait`, `op wait`).
pub const OPERATION_FAILED: u8 = 1;
/// Bad usage: invalid arguments, or the server rejected the request as invalid (400, 422).
pub const USAGE: u8 = 2;
/// The server could not be reached, did not answer in time, or answered 502/503/504.
pub const UNREACHABLE: u8 = 3;
/// No such instance or operation (404).
pub const NOT_FOUND: u8 = 4;
/// Conflict (409): the name is in use, or another operation holds the instance.
pub const CONFLICT: u8 = 5;
/// Any other failure: another HTTP error (405, 408, 413, 500, ...), a reply the CLI cannot
/// read, or a local I/O error.
pub const OTHER: u8 = 6;
/// Refused: no token or a wrong one (401), or a read-only token for a change (403).
pub const AUTH: u8 = 7;
/// Interrupted (Ctrl-C) while waiting; the operation goes on on the server.
pub const INTERRUPTED: u8 = 130;

/// The exit code table, as `toygres --help` shows it.
pub const EXIT_CODES_HELP: &str = "\
Client commands (create, list, get, delete, op) reach the server at TOYGRES_URL (default
http://127.0.0.1:8080; https:// too, with TOYGRES_CA_CERT for a private CA) and send
TOYGRES_TOKEN, when set, as a bearer token.

Exit codes:
  0    success
  1    the operation failed or was canceled (--wait, op wait)
  2    usage: invalid arguments, or the server rejected the request as invalid (HTTP 400, 422)
  3    server unreachable: connection failed or timed out, or HTTP 502, 503, 504
  4    not found (HTTP 404)
  5    conflict (HTTP 409): name in use, or another operation holds the instance
  6    any other error: other HTTP errors (405, 408, 413, 500, ...), an unreadable reply,
       a local I/O error
  7    refused: missing or wrong token (HTTP 401), or a read-only token for a change (HTTP 403)
  130  interrupted (Ctrl-C) while waiting; the operation goes on on the server";

/// Why a client subcommand did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments cannot work (found by the CLI itself, not by clap).
    #[error("{0}")]
    Usage(String),
    /// Talking to the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The operation ended without succeeding.
    #[error("operation {id} {status}{}: {code}: {message}", step.as_ref().map(|step| format!(" at step {step}")).unwrap_or_default())]
    OperationFailed {
        /// Operation id.
        id: String,
        /// `failed` or `canceled`.
        status: String,
        /// The step that failed, when known.
        step: Option<String>,
        /// The error code (`deploy_failed`, `canceled`, ...).
        code: String,
        /// What happened.
        message: String,
    },
    /// Ctrl-C while waiting.
    #[error("interrupted; operation {0} goes on on the server (toygres op wait {0})")]
    Interrupted(String),
    /// Writing the output or reading stdin failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Client(error) => client_exit_code(error),
            CliError::OperationFailed { .. } => OPERATION_FAILED,
            CliError::Interrupted(_) => INTERRUPTED,
            CliError::Io { .. } => OTHER,
        }
    }
}

/// The exit code of a failed request.
fn client_exit_code(error: &ClientError) -> u8 {
    match error {
        ClientError::InvalidUrl { .. } | ClientError::CaCertificate { .. } => USAGE,
        ClientError::Unreachable { .. } => UNREACHABLE,
        ClientError::Setup(_) | ClientError::InvalidReply { .. } => OTHER,
        ClientError::Api(failure) => match failure.status {
            400 | 422 => USAGE,
            401 | 403 => AUTH,
            404 => NOT_FOUND,
            409 => CONFLICT,
            502..=504 => UNREACHABLE,
            _ => OTHER,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::ApiFailure;

    fn api(status: u16) -> CliError {
        CliError::Client(ClientError::Api(ApiFailure {
            status,
            code: "x".into(),
            message: "y".into(),
            operation_id: None,
            retry_after: None,
        }))
    }

    #[test]
    fn http_statuses_map_to_documented_codes() {
        assert_eq!(api(400).exit_code(), USAGE);
        assert_eq!(api(422).exit_code(), USAGE);
        assert_eq!(api(404).exit_code(), NOT_FOUND);
        assert_eq!(api(409).exit_code(), CONFLICT);
        assert_eq!(api(503).exit_code(), UNREACHABLE);
        assert_eq!(api(401).exit_code(), AUTH);
        assert_eq!(api(403).exit_code(), AUTH);
        assert_eq!(api(405).exit_code(), OTHER);
        assert_eq!(api(413).exit_code(), OTHER);
        assert_eq!(api(500).exit_code(), OTHER);
    }

    #[test]
    fn failed_operations_name_their_step() {
        let error = CliError::OperationFailed {
            id: "op_1".into(),
            status: "failed".into(),
            step: Some("deploy".into()),
            code: "deploy_failed".into(),
            message: "no free port".into(),
        };
        assert_eq!(error.exit_code(), OPERATION_FAILED);
        assert_eq!(
            error.to_string(),
            "operation op_1 failed at step deploy: deploy_failed: no free port"
        );
    }
}
