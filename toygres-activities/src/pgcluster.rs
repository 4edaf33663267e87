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

/// How a cluster is initialized: who its bootstrap superuser is and how clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap<'a> {
    /// scram-sha-256 for every connection; the bootstrap superuser `superuser` gets the SCRAM
    /// verifier `password_verifier` (never a plaintext password: initdb stores the verifier
    /// as it is).
    Scram {
        /// The bootstrap superuser's name.
        superuser: &'a str,
        /// Its password as a SCRAM-SHA-256 verifier.
        password_verifier: &'a str,
    },
    /// Trust on the unix socket only, superuser `postgres` (the embedded control-plane
    /// database: no TCP at all).
    TrustSocketOnly,
    /// A template cluster that instances are copied from: bootstrap superuser
    /// `toygres_admin` without a password, no listen settings in its `postgresql.conf` (each
    /// copy's server is told where to listen on its command line).
    Template,
}

/// Where the postmaster of a cluster is in its life, as its `postmaster.pid` says (read without
/// starting any process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostmasterState {
    /// No postmaster runs (no pid file, or its process is gone).
    Down,
    /// It runs and is starting up (or recovering).
    Starting,
    /// It runs and accepts connections.
    Ready,
    /// It runs and is shutting down.
    Stopping,
}

/// Where a cluster listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP on 127.0.0.1, and a unix socket only in `socket_dir` when given (a private
    /// folder: for pgBackRest, which connects through one).
    Loopback {
        /// The TCP port.
        port: u16,
        /// The folder of the unix socket, if any.
        socket_dir: Option<PathBuf>,
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
    /// Who its server (and `pg_ctl`) runs as.
    pub run_as: RunAs,
    /// Who runs `initdb`, which needs an account in `/etc/passwd` (the server does not); the
    /// data dir is handed to [`PgCluster::run_as`] afterwards.
    pub init_as: RunAs,
    /// A `pg_hba.conf` outside the data dir, owned by Toygres, used instead of the data dir's
    /// (the server process can read it but never change it).
    pub hba_file: Option<PathBuf>,
    /// Owner settings passed on the postmaster's command line (those that take effect at a
    /// start); the [`PINNED_SETTINGS`] and where it listens come after them and win.
    pub settings: std::collections::BTreeMap<String, String>,
    /// Settings the control plane pins on top of [`PINNED_SETTINGS`] (they win over them):
    /// WAL archiving, when the instance has backups.
    pub pinned: Vec<(String, String)>,
}

/// Settings that Toygres decides and nobody inside the cluster may change: passed on the
/// postmaster's command line, which wins over `postgresql.conf` and `ALTER SYSTEM`
/// (`postgresql.auto.conf`). Network and authentication files, and anything that loads code.
const PINNED_SETTINGS: &[(&str, &str)] = &[
    ("dynamic_library_path", "$libdir"),
    ("shared_preload_libraries", ""),
    ("session_preload_libraries", ""),
    ("local_preload_libraries", ""),
    ("ssl", "off"),
    ("archive_mode", "off"),
];

impl PgCluster {
    /// Initializes the data dir when it is not initialized yet.
    ///
    /// initdb runs into a scratch dir that is renamed into place at the end, so a crash part-way
    /// leaves no half-initialized data dir behind. With [`Bootstrap::Scram`] the superuser's
    /// verifier is handed to initdb in a 0600 file that is removed as soon as initdb ends.
    pub async fn init(&self, bootstrap: Bootstrap<'_>) -> Result<bool, ClusterError> {
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
        if let Some(parent) = self.data_dir.parent()
            && !parent.exists()
        {
            self.ensure_owned_dir(parent)?;
        }
        // Made here and handed over, so that initdb needs no write access to the parent.
        std::fs::create_dir(&scratch).map_err(io_error(&scratch))?;
        crate::privilege::set_mode(&scratch, 0o700)?;
        self.init_as.hand_over(&scratch)?;
        let superuser = match bootstrap {
            Bootstrap::Scram { superuser, .. } => superuser,
            Bootstrap::TrustSocketOnly => "postgres",
            Bootstrap::Template => crate::roles::ADMIN,
        };
        let mut command = self.command_as("initdb", self.init_as);
        command.arg("-D").arg(&scratch).args([
            "-U",
            superuser,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]);
        let password_file = match bootstrap {
            Bootstrap::Scram {
                password_verifier, ..
            } => {
                let file = PasswordFile::write(
                    &PathBuf::from(format!("{}.pw", scratch.display())),
                    password_verifier,
                    self.init_as,
                )?;
                command
                    .args(["--auth=scram-sha-256"])
                    .arg(format!("--pwfile={}", file.path.display()));
                Some(file)
            }
            Bootstrap::TrustSocketOnly | Bootstrap::Template => {
                command.args(["--auth-local=trust", "--auth-host=reject"]);
                None
            }
        };
        let outcome = run(command, "initdb", INITDB_TIMEOUT).await;
        drop(password_file);
        if let Err(error) = outcome {
            let _ = remove_dir_if_present(&scratch).await;
            return Err(error);
        }
        self.append_config(&scratch, bootstrap != Bootstrap::Template)?;
        if self.run_as != self.init_as {
            self.run_as.hand_over_tree(&scratch)?;
        }
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

    /// Starts the postmaster without waiting for it to accept connections, with the
    /// [`PINNED_SETTINGS`] (and where it listens, and the Toygres-owned `pg_hba.conf`) on its
    /// command line.
    pub async fn start(&self) -> Result<(), ClusterError> {
        if self.status().await? == ClusterStatus::Running {
            return Ok(());
        }
        self.prepare_log_file()?;
        let mut command = self.command("pg_ctl");
        command
            .arg("start")
            .arg("-W")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .arg("-o")
            .arg(self.postmaster_options());
        run(command, "pg_ctl start", CTL_TIMEOUT).await
    }

    /// Starts the postmaster and waits until it accepts connections or gives up (at most
    /// `limit`): a server that cannot start with its settings fails here, with its log's reason.
    pub async fn start_waiting(&self, limit: Duration) -> Result<(), ClusterError> {
        if self.status().await? == ClusterStatus::Running {
            return Ok(());
        }
        self.prepare_log_file()?;
        let seconds = limit.as_secs().max(1);
        let mut command = self.command("pg_ctl");
        command
            .arg("start")
            .arg("-w")
            .arg("-t")
            .arg(seconds.to_string())
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .arg("-o")
            .arg(self.postmaster_options());
        match run(command, "pg_ctl start", limit + CTL_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(ClusterError::Failed { program, detail }) => Err(ClusterError::Failed {
                program,
                detail: match self.last_log_line() {
                    Some(line) => format!("{detail} | the server's log: {line}"),
                    None => detail,
                },
            }),
            Err(other) => Err(other),
        }
    }

    /// The `-c name=value` options of the postmaster (one shell word each: pg_ctl hands them
    /// to a shell).
    fn postmaster_options(&self) -> String {
        // Names are checked against pg_settings before they get here; one that is no plain
        // setting name never reaches the shell.
        let mut settings: Vec<(&str, String)> = self
            .settings
            .iter()
            .filter(|(name, _)| is_setting_name(name))
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        settings.extend(
            PINNED_SETTINGS
                .iter()
                .map(|(name, value)| (*name, (*value).to_string())),
        );
        settings.extend(
            self.pinned
                .iter()
                .map(|(name, value)| (name.as_str(), value.clone())),
        );
        match &self.listen {
            Listen::Loopback { port, socket_dir } => {
                settings.push(("listen_addresses", "127.0.0.1".into()));
                settings.push(("port", port.to_string()));
                let sockets = socket_dir
                    .as_ref()
                    .map(|dir| dir.display().to_string())
                    .unwrap_or_default();
                settings.push(("unix_socket_directories", sockets));
                if socket_dir.is_some() {
                    settings.push(("unix_socket_permissions", "0700".into()));
                }
            }
            Listen::Socket { dir } => {
                settings.push(("listen_addresses", String::new()));
                settings.push(("unix_socket_directories", dir.display().to_string()));
            }
        }
        if let Some(hba) = &self.hba_file {
            settings.push(("hba_file", hba.display().to_string()));
        }
        settings
            .iter()
            .map(|(name, value)| format!("-c {name}={}", shell_quote(value)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Creates the log file when missing (without following a link) and gives it to the user
    /// the postmaster runs as, so that it needs no write access to the folder holding it.
    fn prepare_log_file(&self) -> Result<(), ClusterError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.log_file)
            .map_err(io_error(&self.log_file))?;
        if let (Some(uid), RunAs::ServiceUser { gid, .. }) = (self.run_as.uid(), self.run_as) {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(io_error(&self.log_file))?;
        }
        Ok(())
    }

    /// Where the postmaster is in its life, read from `postmaster.pid` (no process started):
    /// the cheap check to poll while waiting for a start.
    pub fn postmaster_state(&self) -> PostmasterState {
        let Ok(contents) = std::fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return PostmasterState::Down;
        };
        let mut lines = contents.lines();
        let Some(pid) = lines
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 1)
        else {
            return PostmasterState::Down;
        };
        // SAFETY: signal 0 only checks that the process exists; no memory is involved.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            return PostmasterState::Down;
        }
        // Line 8 is the postmaster's status (PostgreSQL 10 and later).
        match lines.nth(6).map(str::trim) {
            Some("ready") | Some("standby") => PostmasterState::Ready,
            Some("stopping") => PostmasterState::Stopping,
            _ => PostmasterState::Starting,
        }
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
            Listen::Loopback { port, .. } => {
                command.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            }
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

    /// Sends the postmaster SIGHUP (what `pg_ctl reload` does), which every child passes on
    /// to its latch; returns the postmaster's pid, or `None` when none runs.
    pub fn signal_reload(&self) -> Option<i32> {
        let pid = self.postmaster_pid()?;
        // SAFETY: kill has no memory-safety preconditions; a stale pid only yields ESRCH.
        (unsafe { libc::kill(pid, libc::SIGHUP) } == 0).then_some(pid)
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let contents = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        contents
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 1)
    }

    /// Appends Toygres's settings to `postgresql.conf` (with where it listens when
    /// `with_listen`; the socket folder is made either way).
    fn append_config(&self, data_dir: &Path, with_listen: bool) -> Result<(), ClusterError> {
        let listen = match &self.listen {
            Listen::Loopback { port, .. } => {
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
        let listen = if with_listen { listen } else { String::new() };
        let config = format!(
            "\n# Added by toygres (where it listens is also pinned on the postmaster's command line)\n{listen}password_encryption = 'scram-sha-256'\nmax_connections = 100\nshared_buffers = 32MB\nlogging_collector = off\n"
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
        self.command_as(program, self.run_as)
    }

    fn command_as(&self, program: &str, identity: RunAs) -> Command {
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
        identity.apply(&mut command);
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

/// Whether `name` looks like a setting name (`work_mem`, `auto_explain.log_min_duration`).
fn is_setting_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// `value` as one single-quoted shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
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
