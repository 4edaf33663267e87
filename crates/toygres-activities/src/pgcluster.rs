//! One PostgreSQL cluster on this machine, driven with the installed binaries.
//!
//! Used by the local backend (one cluster per instance) and by the server's embedded
//! control-plane database. Every call is idempotent: initializing an initialized cluster,
//! starting a running one or stopping a stopped one succeeds without doing anything.

use crate::privilege::{PrivilegeError, RunAs};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// How long one `initdb` may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one `pg_ctl` or `pg_isready` call may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failure while driving a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A binary could not be run at all.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The binary.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A binary ran and failed.
    #[error("{program} failed: {detail}")]
    Failed {
        /// The binary.
        program: String,
        /// Its last lines of output.
        detail: String,
    },
    /// A binary did not finish in time.
    #[error("{program} did not finish within {seconds} s")]
    Timeout {
        /// The binary.
        program: String,
        /// The limit.
        seconds: u64,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Dropping privileges failed.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
}

/// How clients authenticate to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// scram-sha-256 for every connection; the superuser password is set at initdb.
    Scram,
    /// Trust on the unix socket only (the embedded control-plane database: no TCP at all).
    TrustSocketOnly,
}

/// Where a cluster listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP on 127.0.0.1 only, no unix socket.
    Loopback {
        /// The TCP port.
        port: u16,
    },
    /// A unix socket in this directory only, no TCP.
    Socket {
        /// The socket directory.
        dir: PathBuf,
    },
}

/// Whether a cluster's postmaster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStatus {
    /// The postmaster runs.
    Running,
    /// The data dir exists, no postmaster runs.
    Stopped,
    /// There is no initialized data dir.
    Missing,
}

/// One cluster: its binaries, data dir, listen address and the user it runs as.
#[derive(Debug, Clone)]
pub struct PgCluster {
    /// Folder of `initdb`, `pg_ctl`, `pg_isready`.
    pub bin_dir: PathBuf,
    /// The data directory (`PGDATA`).
    pub data_dir: PathBuf,
    /// Where the postmaster writes its log.
    pub log_file: PathBuf,
    /// Where it listens.
    pub listen: Listen,
    /// Who its processes run as.
    pub run_as: RunAs,
}

impl PgCluster {
    /// Initializes the data dir when it is not initialized yet.
    ///
    /// initdb runs into a scratch dir that is renamed into place at the end, so a crash part-way
    /// leaves no half-initialized data dir behind. With [`AuthMethod::Scram`] the password is
    /// handed to initdb in a 0600 file that is removed as soon as initdb ends.
    pub async fn init(
        &self,
        auth: AuthMethod,
        superuser_password: Option<&str>,
    ) -> Result<bool, ClusterError> {
        if self.data_dir.join("PG_VERSION").exists() {
            return Ok(false);
        }
        // A scratch dir of our own: an initdb orphaned by a killed process may still be writing
        // into an older one, which is removed (making that initdb fail harmlessly).
        let scratch = self.data_dir.with_extension(format!(
            "initdb-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        self.remove_stale_scratch_dirs().await?;
        if let Some(parent) = self.data_dir.parent() {
            self.ensure_owned_dir(parent)?;
        }
        let mut command = self.command("initdb");
        command.arg("-D").arg(&scratch).args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]);
        let password_file = match auth {
            AuthMethod::Scram => {
                let file = PasswordFile::write(
                    &PathBuf::from(format!("{}.pw", scratch.display())),
                    superuser_password.unwrap_or(""),
                    self.run_as,
                )?;
                command
                    .args(["--auth=scram-sha-256"])
                    .arg(format!("--pwfile={}", file.path.display()));
                Some(file)
            }
            AuthMethod::TrustSocketOnly => {
                command.args(["--auth-local=trust", "--auth-host=reject"]);
                None
            }
        };
        let outcome = run(command, "initdb", INITDB_TIMEOUT).await;
        drop(password_file);
        outcome?;
        self.append_config(&scratch)?;
        std::fs::rename(&scratch, &self.data_dir).map_err(io_error(&self.data_dir))?;
        Ok(true)
    }

    /// Removes scratch dirs (and password files) of earlier, interrupted initdb runs.
    async fn remove_stale_scratch_dirs(&self) -> Result<(), ClusterError> {
        let (Some(parent), Some(name)) = (self.data_dir.parent(), self.data_dir.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.initdb", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(parent) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            if entry.path().is_dir() {
                remove_dir_if_present(&entry.path()).await?;
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Starts the postmaster without waiting for it to accept connections.
    pub async fn start(&self) -> Result<(), ClusterError> {
        if self.status().await? == ClusterStatus::Running {
            return Ok(());
        }
        let mut command = self.command("pg_ctl");
        command
            .arg("start")
            .arg("-W")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file);
        run(command, "pg_ctl start", CTL_TIMEOUT).await
    }

    /// Whether the postmaster runs.
    pub async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        if !self.data_dir.join("PG_VERSION").exists() {
            return Ok(ClusterStatus::Missing);
        }
        let mut command = self.command("pg_ctl");
        command.arg("status").arg("-D").arg(&self.data_dir);
        let output = output_within(command, "pg_ctl status", CTL_TIMEOUT).await?;
        // pg_ctl status: 0 = running, 3 = not running, 4 = no accessible data dir.
        Ok(match output.status.code() {
            Some(0) => ClusterStatus::Running,
            Some(4) => ClusterStatus::Missing,
            _ => ClusterStatus::Stopped,
        })
    }

    /// Whether the server accepts connections right now.
    pub async fn accepts_connections(&self) -> Result<bool, ClusterError> {
        let mut command = self.command("pg_isready");
        match &self.listen {
            Listen::Loopback { port } => command.args(["-h", "127.0.0.1", "-p", &port.to_string()]),
            Listen::Socket { dir } => command.arg("-h").arg(dir),
        };
        command.args(["-t", "2", "-q"]);
        Ok(output_within(command, "pg_isready", CTL_TIMEOUT)
            .await?
            .status
            .success())
    }

    /// Waits until the server accepts connections, checking every 20 ms, for at most `limit`.
    pub async fn wait_accepting(&self, limit: Duration) -> Result<bool, ClusterError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.accepts_connections().await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the postmaster: a fast shutdown, then an immediate one, then SIGKILL.
    pub async fn stop(&self) -> Result<(), ClusterError> {
        for mode in ["fast", "immediate"] {
            if self.status().await? != ClusterStatus::Running {
                return Ok(());
            }
            let mut command = self.command("pg_ctl");
            command
                .arg("stop")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", mode, "-w", "-t", "20"]);
            if run(command, "pg_ctl stop", CTL_TIMEOUT).await.is_ok() {
                return Ok(());
            }
        }
        if let Some(pid) = self.postmaster_pid() {
            // SAFETY: kill has no memory-safety preconditions; a stale pid only yields ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        Ok(())
    }

    /// The last non-empty line of the postmaster log, for error messages.
    pub fn last_log_line(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log_file).ok()?;
        log.lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .map(str::to_string)
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let contents = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        contents
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 1)
    }

    fn append_config(&self, data_dir: &Path) -> Result<(), ClusterError> {
        let listen = match &self.listen {
            Listen::Loopback { port } => {
                format!(
                    "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                )
            }
            Listen::Socket { dir } => {
                self.ensure_owned_dir(dir)?;
                format!(
                    "listen_addresses = ''\nunix_socket_directories = '{}'\nunix_socket_permissions = 0700\n",
                    dir.display().to_string().replace('\'', "''")
                )
            }
        };
        let config = format!(
            "\n# Added by toygres\n{listen}password_encryption = 'scram-sha-256'\nmax_connections = 100\nshared_buffers = 32MB\nlogging_collector = off\n"
        );
        let path = data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        file.write_all(config.as_bytes()).map_err(io_error(&path))
    }

    /// Creates `dir` (and parents) when missing and hands it to the service user.
    pub fn ensure_owned_dir(&self, dir: &Path) -> Result<(), ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        self.run_as.hand_over(dir)?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("PGPASSWORD")
            .env("LC_ALL", "C")
            .kill_on_drop(true);
        if let Some(parent) = self.data_dir.parent().filter(|parent| parent.exists()) {
            command.current_dir(parent);
        }
        self.run_as.apply(&mut command);
        command
    }
}

/// A 0600 file holding a password for initdb, removed when dropped.
struct PasswordFile {
    path: PathBuf,
}

impl PasswordFile {
    fn write(path: &Path, password: &str, run_as: RunAs) -> Result<Self, ClusterError> {
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error(path))?;
        let guard = Self {
            path: path.to_path_buf(),
        };
        run_as.hand_over(path)?;
        file.write_all(password.as_bytes())
            .map_err(io_error(path))?;
        Ok(guard)
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A short suffix that differs between calls in one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Removes a directory tree, treating "not found" as done.
pub async fn remove_dir_if_present(path: &Path) -> Result<(), ClusterError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(error)),
        _ => Ok(()),
    }
}

async fn output_within(
    mut command: Command,
    program: &str,
    limit: Duration,
) -> Result<std::process::Output, ClusterError> {
    match tokio::time::timeout(limit, command.output()).await {
        Err(_) => Err(ClusterError::Timeout {
            program: program.to_string(),
            seconds: limit.as_secs(),
        }),
        Ok(Err(source)) => Err(ClusterError::Spawn {
            program: program.to_string(),
            source,
        }),
        Ok(Ok(output)) => Ok(output),
    }
}

async fn run(command: Command, program: &str, limit: Duration) -> Result<(), ClusterError> {
    let output = output_within(command, program, limit).await?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let detail: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = detail[detail.len().saturating_sub(3)..].join(" | ");
    Err(ClusterError::Failed {
        program: program.to_string(),
        detail: tail,
    })
}
