//! An embedded PostgreSQL cluster: the control-plane database of the embedded default, and the
//! throwaway database server of the tests.
//!
//! It listens on a unix socket only (no TCP port to collide with), trusts only that socket
//! (mode 0700), and outlives the process that started it: the next start finds it running and
//! reuses it. A file lock serializes processes that start it at the same time.

use crate::backend::local::PgBinaries;
use crate::fslock::FileLock;
use crate::pgcluster::{Bootstrap, ClusterError, ClusterStatus, Listen, PgCluster};
use crate::privilege::RunAs;
use crate::socket_dir::socket_dir_for;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failure to start or reach the embedded cluster.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No PostgreSQL binaries are installed.
    #[error("no PostgreSQL server binaries found; install postgresql or set TOYGRES_PG_BIN_DIR")]
    NoBinaries,
    /// Driving the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The lock file could not be taken.
    #[error("lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// It did not accept connections in time.
    #[error(
        "the embedded PostgreSQL in {0} did not accept connections within 60 s (see its postgres.log)"
    )]
    NotReady(String),
}

/// A running embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    cluster: PgCluster,
    socket_dir: PathBuf,
}

impl EmbeddedPostgres {
    /// Initializes (first time) and starts the cluster under `dir`, or reuses it when it runs.
    pub async fn ensure_running(dir: &Path, bin_dir: Option<&Path>) -> Result<Self, EmbeddedError> {
        let bin_dir = newest_bin_dir(bin_dir)?;
        let run_as = RunAs::detect().map_err(ClusterError::from)?;
        let dir = std::path::absolute(dir).map_err(|source| ClusterError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let lock_path = dir.join("embedded.lock");
        let _lock = FileLock::acquire(&lock_path)
            .await
            .map_err(|source| EmbeddedError::Lock {
                path: lock_path.display().to_string(),
                source,
            })?;
        let socket_dir = socket_dir_for(&dir);
        let cluster = PgCluster {
            bin_dir,
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            listen: Listen::Socket {
                dir: socket_dir.clone(),
            },
            run_as,
            init_as: run_as,
            hba_file: None,
            settings: Default::default(),
            pinned: Vec::new(),
        };
        cluster.ensure_owned_dir(&dir)?;
        // Only its own user may enter: local instances run as other users (docs/security.md).
        crate::privilege::set_mode(&dir, 0o700).map_err(ClusterError::from)?;
        run_as
            .check_reachable(&cluster.data_dir)
            .map_err(ClusterError::from)?;
        cluster.init(Bootstrap::TrustSocketOnly).await?;
        cluster.ensure_owned_dir(&socket_dir)?;
        crate::privilege::set_mode(&socket_dir, 0o700).map_err(ClusterError::from)?;
        if cluster.status().await? != ClusterStatus::Running {
            cluster.start().await?;
        }
        if !cluster.wait_accepting(Duration::from_secs(60)).await? {
            return Err(EmbeddedError::NotReady(dir.display().to_string()));
        }
        Ok(Self {
            cluster,
            socket_dir,
        })
    }

    /// A connection URL for `database` as the `postgres` superuser, over the unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// Stops the cluster (fast shutdown).
    pub async fn stop(&self) -> Result<(), EmbeddedError> {
        Ok(self.cluster.stop().await?)
    }

    /// Stops the cluster under `dir` if one runs there, without starting anything.
    pub async fn stop_in(dir: &Path, bin_dir: Option<&Path>) -> Result<(), EmbeddedError> {
        let bin_dir = newest_bin_dir(bin_dir)?;
        let cluster = PgCluster {
            bin_dir,
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            listen: Listen::Socket {
                dir: socket_dir_for(dir),
            },
            run_as: RunAs::detect().map_err(ClusterError::from)?,
            init_as: RunAs::detect().map_err(ClusterError::from)?,
            hba_file: None,
            settings: Default::default(),
            pinned: Vec::new(),
        };
        Ok(cluster.stop().await?)
    }

    /// The URL of `database` on the cluster under `dir` (running or not).
    pub fn url_in(dir: &Path, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            socket_dir_for(dir).display()
        )
    }
}

/// The folder of the newest installed PostgreSQL (or of `configured`).
fn newest_bin_dir(configured: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    let binaries = PgBinaries::discover(configured);
    let version = binaries.newest().ok_or(EmbeddedError::NoBinaries)?;
    Ok(binaries
        .bin_dir(&version)
        .ok_or(EmbeddedError::NoBinaries)?
        .to_path_buf())
}
