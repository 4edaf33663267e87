//! Running PostgreSQL binaries as an unprivileged user.
//!
//! PostgreSQL refuses to run as root. When Toygres itself runs as root, every `initdb`, `pg_ctl`
//! and `postgres` runs as the `postgres` system user (created when missing), and the directories
//! Toygres creates for them are handed to that user.

use std::path::Path;
use std::process::Stdio;

/// The system user PostgreSQL runs as when Toygres runs as root.
pub const SERVICE_USER: &str = "postgres";

/// Why the service user could not be resolved or prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Looking up or creating the user failed.
    #[error("cannot resolve the '{SERVICE_USER}' system user: {0}")]
    User(String),
    /// Handing a path to the user failed.
    #[error("cannot hand {path} to the '{SERVICE_USER}' user: {source}")]
    Chown {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A directory above a path is not traversable by the service user.
    #[error(
        "{0} is not reachable by the '{SERVICE_USER}' user (a parent directory lacks o+x); choose another data dir or chmod o+x it"
    )]
    Unreachable(String),
}

/// Who PostgreSQL processes run as: this process's user, or a dropped-to service user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// Not root: run as ourselves.
    CurrentUser,
    /// Root: run as this uid/gid.
    ServiceUser {
        /// The user id.
        uid: u32,
        /// The primary group id.
        gid: u32,
    },
}

impl RunAs {
    /// Decides who PostgreSQL runs as, creating the service user when root and it is missing.
    pub fn detect() -> Result<Self, PrivilegeError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(RunAs::CurrentUser);
        }
        if let Some(ids) = lookup_user(SERVICE_USER)? {
            return Ok(ids);
        }
        let created = std::process::Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(SERVICE_USER)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| PrivilegeError::User(format!("useradd: {error}")))?;
        if !created.status.success() && lookup_user(SERVICE_USER)?.is_none() {
            let stderr = String::from_utf8_lossy(&created.stderr);
            return Err(PrivilegeError::User(format!(
                "useradd failed: {}",
                stderr.trim()
            )));
        }
        lookup_user(SERVICE_USER)?
            .ok_or_else(|| PrivilegeError::User("user still missing after useradd".into()))
    }

    /// Makes `command` run as this identity.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        if let RunAs::ServiceUser { uid, gid } = *self {
            command.uid(uid).gid(gid);
        }
    }

    /// Gives `path` (not recursively) to the service user; a no-op when not root.
    pub fn hand_over(&self, path: &Path) -> Result<(), PrivilegeError> {
        if let RunAs::ServiceUser { uid, gid } = *self {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| {
                PrivilegeError::Chown {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Checks that the service user can traverse every ancestor of `path`.
    pub fn check_reachable(&self, path: &Path) -> Result<(), PrivilegeError> {
        use std::os::unix::fs::MetadataExt as _;
        let RunAs::ServiceUser { uid, .. } = *self else {
            return Ok(());
        };
        for ancestor in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            let traversable =
                meta.mode() & 0o001 != 0 || (meta.uid() == uid && meta.mode() & 0o100 != 0);
            if !traversable {
                return Err(PrivilegeError::Unreachable(path.display().to_string()));
            }
        }
        Ok(())
    }
}

/// Looks a user up through `getent`, returning its uid and primary gid.
fn lookup_user(name: &str) -> Result<Option<RunAs>, PrivilegeError> {
    let output = std::process::Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| PrivilegeError::User(format!("getent: {error}")))?;
    if !output.status.success() {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    let parse = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u32>().ok())
    };
    match (parse(2), parse(3)) {
        (Some(uid), Some(gid)) => Ok(Some(RunAs::ServiceUser { uid, gid })),
        _ => Err(PrivilegeError::User(format!(
            "unexpected passwd entry for {name}"
        ))),
    }
}
