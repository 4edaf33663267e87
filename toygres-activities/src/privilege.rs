//! Running PostgreSQL binaries as unprivileged users.
//!
//! PostgreSQL refuses to run as root. When Toygres itself runs as root, the embedded
//! control-plane cluster runs as the `postgres` system user (created when missing), and every
//! local instance's server runs as a user and group id of its own ([`RunAs::for_instance`]:
//! `1600000 + port`, with no entry in `/etc/passwd`: PostgreSQL's server needs none, and only
//! `initdb`, which runs as `postgres`, does), so that no instance's server process can read the
//! control-plane database's socket or files, or another instance's files. Directories Toygres
//! creates for them are handed to the identity that needs them. When Toygres does not run as root,
//! everything runs as the current user and only PostgreSQL's own privileges separate tenants
//! (docs/security.md).

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
    /// The id an instance's server would run as is not free.
    #[error("the server of the instance on port {port}: {message}")]
    InstanceUser {
        /// The instance's port.
        port: u16,
        /// What went wrong.
        message: String,
    },
    /// Changing a path's owner or mode failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The user and group id of the server of the local instance on TCP port `p` are
/// `INSTANCE_ID_BASE + p`: far above the ranges `useradd` hands out, and the same on every
/// replica sharing a data dir.
pub const INSTANCE_ID_BASE: u32 = 1_600_000;

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

    /// Whether Toygres runs as root (and PostgreSQL processes as other users).
    pub fn is_privileged(&self) -> bool {
        matches!(self, RunAs::ServiceUser { .. })
    }

    /// The user id processes run as (`None`: this process's own).
    pub fn uid(&self) -> Option<u32> {
        match *self {
            RunAs::ServiceUser { uid, .. } => Some(uid),
            RunAs::CurrentUser => None,
        }
    }

    /// Who the server of the local instance on `port` runs as: its own user and group id
    /// (`INSTANCE_ID_BASE + port`) when Toygres runs as root, else the current user. Fails when
    /// an account on this machine already has that id (its owner could read the instance).
    pub fn for_instance(&self, port: u16) -> Result<RunAs, PrivilegeError> {
        if !self.is_privileged() {
            return Ok(RunAs::CurrentUser);
        }
        let id = INSTANCE_ID_BASE + u32::from(port);
        instance_ids::check_unused(port, id)?;
        Ok(RunAs::ServiceUser { uid: id, gid: id })
    }

    /// The identity that keeps the backups of deleted instances (`INSTANCE_ID_BASE - 1`: no
    /// instance's server runs as it, so none can read them); this process's own when not root.
    pub fn vault(&self) -> RunAs {
        if !self.is_privileged() {
            return RunAs::CurrentUser;
        }
        let id = INSTANCE_ID_BASE - 1;
        RunAs::ServiceUser { uid: id, gid: id }
    }

    /// The identity that owns `path` (to stop a cluster whose data dir another user owns).
    pub fn owner_of(&self, path: &Path) -> Result<RunAs, PrivilegeError> {
        use std::os::unix::fs::MetadataExt as _;
        if !self.is_privileged() {
            return Ok(RunAs::CurrentUser);
        }
        let meta = std::fs::symlink_metadata(path).map_err(io_error(path))?;
        Ok(RunAs::ServiceUser {
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    /// Gives `path` and everything below it to this identity, never following a symbolic link
    /// (the tree may hold links a tenant planted); a no-op when not root.
    pub fn hand_over_tree(&self, path: &Path) -> Result<(), PrivilegeError> {
        let RunAs::ServiceUser { uid, gid } = *self else {
            return Ok(());
        };
        let meta = std::fs::symlink_metadata(path).map_err(io_error(path))?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_error(path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).map_err(io_error(path))? {
                let entry = entry.map_err(io_error(path))?;
                self.hand_over_tree(&entry.path())?;
            }
        }
        Ok(())
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

    /// Checks that any user can traverse every ancestor of `path` (instance users own none of
    /// them); a no-op when not root.
    pub fn check_traversable_by_instances(&self, path: &Path) -> Result<(), PrivilegeError> {
        use std::os::unix::fs::MetadataExt as _;
        if !self.is_privileged() {
            return Ok(());
        }
        for ancestor in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if meta.mode() & 0o001 == 0 {
                return Err(PrivilegeError::Unreachable(path.display().to_string()));
            }
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

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> PrivilegeError + '_ {
    move |source| PrivilegeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Sets the mode of `path` (not following a final symbolic link: `path` is ours).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), PrivilegeError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error(path))
}

/// Makes `path` a private folder (0700) of `owner`: creates it, or takes it over when it is
/// already a real folder (never a link) of `owner`'s or this process's; anything else at that
/// path (someone else's folder under a shared temporary directory) is refused.
pub fn make_private_dir(owner: &RunAs, path: &Path) -> Result<(), PrivilegeError> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::create_dir(path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io_error(path)(error));
        }
        _ => {}
    }
    let meta = std::fs::symlink_metadata(path).map_err(io_error(path))?;
    let owner_uid = match *owner {
        RunAs::ServiceUser { uid, .. } => uid,
        RunAs::CurrentUser => meta.uid(),
    };
    let ours = meta.uid() == owner_uid || meta.uid() == current_uid();
    if !meta.is_dir() || !ours {
        return Err(PrivilegeError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("exists and is not a folder of ours; remove it"),
        });
    }
    set_mode(path, 0o700)?;
    owner.hand_over(path)
}

/// This process's effective user id.
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes `path` (a directory Toygres created) owned by root with `mode`; a no-op when not root.
pub fn keep_for_root(run_as: &RunAs, path: &Path, mode: u32) -> Result<(), PrivilegeError> {
    if !run_as.is_privileged() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(io_error(path))?;
    set_mode(path, mode)
}

/// The ids of local instances' servers: checked once per process that no account holds them.
mod instance_ids {
    use super::PrivilegeError;
    use std::collections::HashSet;
    use std::process::Stdio;
    use std::sync::{Mutex, OnceLock};

    fn checked() -> &'static Mutex<HashSet<u32>> {
        static CHECKED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
        CHECKED.get_or_init(|| Mutex::new(HashSet::new()))
    }

    /// Fails when a user or group with id `id` exists on this machine.
    pub(super) fn check_unused(port: u16, id: u32) -> Result<(), PrivilegeError> {
        if checked()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id)
        {
            return Ok(());
        }
        for database in ["passwd", "group"] {
            let output = std::process::Command::new("getent")
                .args([database, &id.to_string()])
                .stdin(Stdio::null())
                .output()
                .map_err(|error| PrivilegeError::InstanceUser {
                    port,
                    message: format!("getent: {error}"),
                })?;
            if output.status.success() {
                return Err(PrivilegeError::InstanceUser {
                    port,
                    message: format!(
                        "id {id} belongs to an account of this machine ({}); instances need ids of their own: choose another TOYGRES_PORT_RANGE",
                        String::from_utf8_lossy(&output.stdout).trim()
                    ),
                });
            }
        }
        checked()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id);
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
