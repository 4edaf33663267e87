//! The roles inside an instance, and who may do what there (docs/security.md, "who can do what").
//!
//! - The owner ([`OWNER`], `postgres`): what users get. Not a superuser; owns the `postgres`
//!   database; may create databases, roles and trusted extensions. Never a member of
//!   `pg_read_server_files`, `pg_write_server_files` or `pg_execute_server_program`.
//! - [`ADMIN`] (`toygres_admin`): the control plane's superuser (the bootstrap superuser of
//!   instances made since it exists), for password resets, parameters and backups.
//! - [`MONITOR`] (`toygres_monitor`): the control plane's health checks (`pg_monitor`).
//!
//! Every password reaches PostgreSQL as a SCRAM-SHA-256 verifier computed here
//! ([`scram_verifier`]), never in plaintext. [`configure`] sets all three roles up, idempotently;
//! [`legacy`] moves an instance made before these roles existed (whose owner was its bootstrap
//! superuser) onto them.

pub mod legacy;
pub(crate) mod sql;

use crate::backend::{Backend, Endpoint};
use crate::validation::InstanceName;
use std::time::Duration;

/// The owner role users get.
pub const OWNER: &str = "postgres";
/// The control plane's administering role (a superuser).
pub const ADMIN: &str = "toygres_admin";
/// The control plane's monitoring role.
pub const MONITOR: &str = "toygres_monitor";

/// The `roles_version` of instances that have the control plane's roles (see the metadata).
pub const ROLES_VERSION: i32 = 1;

/// Why configuring an instance's roles failed.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    /// The backend could not open a connection.
    #[error("unreachable: {0}")]
    Unreachable(#[from] crate::backend::BackendError),
    /// Connecting or a statement failed.
    #[error("{0}")]
    Postgres(String),
    /// The server refused a statement for what it says (a bad value, a missing object): the
    /// same statement fails again.
    #[error("{0}")]
    Refused(String),
    /// No answer in time.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The version is not a major version number.
    #[error("unknown PostgreSQL version {0:?}")]
    Version(String),
}

impl RolesError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RolesError::Unreachable(error) => error.is_retryable(),
            RolesError::Postgres(_) | RolesError::Timeout(_) => true,
            RolesError::Version(_) | RolesError::Refused(_) => false,
        }
    }
}

/// The SCRAM-SHA-256 verifier of `password` (random salt, 4096 iterations): what PostgreSQL
/// stores, from which the password cannot be recovered.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The passwords of the three roles, in memory only.
#[derive(Clone)]
pub struct RolePasswords {
    /// The owner's.
    pub owner: String,
    /// `toygres_admin`'s.
    pub admin: String,
    /// `toygres_monitor`'s.
    pub monitor: String,
}

impl std::fmt::Debug for RolePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolePasswords { .. }")
    }
}

/// Where an instance is and as whom the control plane connects to it.
#[derive(Clone)]
pub struct AdminTarget {
    /// The instance.
    pub name: InstanceName,
    /// Its namespace (`None`: the backend's default).
    pub namespace: Option<String>,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// The superuser to connect as.
    pub user: String,
    /// Its password, in memory only.
    pub password: String,
}

impl AdminTarget {
    /// The instance, where its backend finds it.
    pub fn instance(&self) -> crate::backend::InstanceRef<'_> {
        crate::backend::InstanceRef::new(&self.name, self.namespace.as_deref())
    }
}

/// Sets up the owner, `toygres_admin` and `toygres_monitor` in a new instance (connecting as
/// `toygres_admin`, its bootstrap superuser), and closes what the owner must not reach.
/// Idempotent: running it again sets the same state.
pub async fn configure(
    backend: &dyn Backend,
    target: &AdminTarget,
    postgres_version: &str,
    passwords: &RolePasswords,
    timeout: Duration,
) -> Result<(), RolesError> {
    let major = major_version(postgres_version)?;
    let statements = sql::configure(major, passwords);
    within(timeout, async {
        let session = sql::AdminSession::open(backend, target, "postgres").await?;
        session.run_in_transaction(&statements).await
    })
    .await
}

/// Gives role `role` the password `password` (as a SCRAM verifier computed here), connected as
/// the instance's superuser. Sessions already open stay; new logins need the new password.
pub async fn set_password(
    backend: &dyn Backend,
    target: &AdminTarget,
    role: &str,
    password: &str,
    timeout: Duration,
) -> Result<(), RolesError> {
    let statement = sql::set_password(role, password)?;
    within(timeout, async {
        let session = sql::AdminSession::open(backend, target, "postgres").await?;
        session.execute(&statement).await
    })
    .await
}

/// The major version number of `version` (`"15"`).
fn major_version(version: &str) -> Result<u32, RolesError> {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .ok_or_else(|| RolesError::Version(version.to_string()))
}

async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, RolesError>>,
) -> Result<T, RolesError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RolesError::Timeout(limit.as_millis()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_are_scram_and_salted() {
        let first = scram_verifier("correct horse battery staple");
        let second = scram_verifier("correct horse battery staple");
        assert!(first.starts_with("SCRAM-SHA-256$4096:"), "{first}");
        assert_ne!(first, second, "each verifier has its own salt");
        assert!(!first.contains("horse"));
    }

    #[test]
    fn major_versions() {
        assert_eq!(major_version("15").ok(), Some(15));
        assert_eq!(major_version("16.4").ok(), Some(16));
        assert!(major_version("x").is_err());
    }
}
