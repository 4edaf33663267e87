//! Running `pgbackrest` as the identity that owns a cluster's data, tied to this process: if
//! the server dies, pgBackRest is told to stop (it releases its lock and marks a backup
//! aborted), so a killed server never leaves a backup running.

use super::BackupError;
use crate::privilege::RunAs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// One stanza, as one identity sees it through one configuration file.
#[derive(Debug, Clone)]
pub struct PgBackRest {
    /// The binary.
    pub binary: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The stanza.
    pub stanza: String,
    /// Who runs it.
    pub run_as: RunAs,
}

impl PgBackRest {
    /// Runs `pgbackrest <command> <args>` within `limit`, with `PGPASSWORD` set to `password`
    /// when given (it connects as `toygres_admin`; the password never reaches a command
    /// line). Returns its standard output.
    pub async fn run(
        &self,
        command: &str,
        args: &[String],
        password: Option<&str>,
        limit: Duration,
    ) -> Result<String, BackupError> {
        let mut process = Command::new(&self.binary);
        process
            .arg(format!("--config={}", self.config.display()))
            .arg(format!("--stanza={}", self.stanza))
            .args(args)
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .kill_on_drop(true);
        if let Some(parent) = self.config.parent() {
            process.current_dir(parent);
        }
        if let Some(password) = password {
            process.env("PGPASSWORD", password);
        }
        self.run_as.apply(&mut process);
        die_with_parent(&mut process);
        let output = tokio::time::timeout(limit, process.output())
            .await
            .map_err(|_| BackupError::Run {
                command: command.into(),
                message: format!("did not finish within {} s", limit.as_secs()),
            })?
            .map_err(|error| BackupError::Run {
                command: command.into(),
                message: format!("cannot run {}: {error}", self.binary.display()),
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        Err(BackupError::Failed {
            command: command.into(),
            code: output.status.code().unwrap_or(-1),
            message: lines[lines.len().saturating_sub(4)..].join(" | "),
        })
    }
}

/// Makes the child get SIGTERM when the thread that started it (a runtime worker, living as
/// long as this process) ends.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Writes `text` to `path` (mode 0600) through a scratch file renamed into place, owned by
/// `owner`: configuration files hold repository credentials.
pub fn write_private(path: &Path, text: &str, owner: RunAs) -> Result<(), BackupError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |error: std::io::Error| BackupError::Io(format!("{}: {error}", path.display()));
    let scratch = path.with_extension("tmp");
    let _ = std::fs::remove_file(&scratch);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&scratch)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    owner
        .hand_over(&scratch)
        .map_err(|error| BackupError::Io(error.to_string()))?;
    std::fs::rename(&scratch, path).map_err(io)
}

/// Creates `dir` and its `lock`, `log` and `spool` folders for `owner` (mode 0700).
pub fn prepare_work_dir(dir: &Path, owner: RunAs) -> Result<(), BackupError> {
    for path in [
        dir.to_path_buf(),
        dir.join("lock"),
        dir.join("log"),
        dir.join("spool"),
    ] {
        std::fs::create_dir_all(&path)
            .map_err(|error| BackupError::Io(format!("{}: {error}", path.display())))?;
        crate::privilege::set_mode(&path, 0o700)
            .and_then(|()| owner.hand_over(&path))
            .map_err(|error| BackupError::Io(error.to_string()))?;
    }
    Ok(())
}
