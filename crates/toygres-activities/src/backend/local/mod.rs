//! The local backend: each instance is its own PostgreSQL cluster on this machine.
//!
//! Layout under the backend root, one folder per instance:
//! ```text
//! <root>/<name>/instance.json   ownership marker: name, uid, version, port
//! <root>/<name>/data/           PGDATA
//! <root>/<name>/postgres.log    the postmaster's log
//! ```
//! Instances listen on 127.0.0.1 only, authenticate with scram-sha-256, and outlive the
//! control plane: [`LocalBackend::resume_all`] starts them again after a restart.

mod binaries;
mod ports;

pub use binaries::PgBinaries;

use super::{Backend, BackendError, DeployOutcome, DeploySpec, Endpoint, Readiness};
use crate::fslock::FileLock;
use crate::pgcluster::{
    AuthMethod, ClusterError, ClusterStatus, Listen, PgCluster, remove_dir_if_present,
};
use crate::privilege::RunAs;
use crate::validation::InstanceName;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The marker file that says a folder is a Toygres instance, and whose.
const MARKER: &str = "instance.json";

/// Settings of the local backend.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Folder holding one sub-folder per instance.
    pub root: PathBuf,
    /// Folder of the PostgreSQL binaries; discovered when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Ports handed to instances.
    pub ports: RangeInclusive<u16>,
}

impl LocalConfig {
    /// The default port range, 15432-15999.
    pub const DEFAULT_PORTS: RangeInclusive<u16> = 15432..=15999;
}

/// The ownership marker stored with each instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    name: String,
    uid: String,
    postgres_version: String,
    port: u16,
}

/// Runs each instance as a `postgres` process on this machine.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    binaries: PgBinaries,
    ports: RangeInclusive<u16>,
    run_as: RunAs,
    /// One lock per instance name: deploy and delete of one instance never interleave.
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serializes port choice so two deploys never pick the same port.
    port_lock: tokio::sync::Mutex<()>,
}

impl LocalBackend {
    /// Prepares the backend root; fails when no PostgreSQL binaries are found or the root is
    /// unusable.
    pub fn new(config: LocalConfig) -> Result<Self, BackendError> {
        let binaries = PgBinaries::discover(config.bin_dir.as_deref());
        if binaries.versions().is_empty() {
            return Err(BackendError::Permanent(
                "no PostgreSQL server binaries found (set TOYGRES_PG_BIN_DIR or install postgresql)".into(),
            ));
        }
        let run_as = RunAs::detect().map_err(permanent)?;
        std::fs::create_dir_all(&config.root).map_err(permanent)?;
        run_as.hand_over(&config.root).map_err(permanent)?;
        run_as
            .check_reachable(&config.root.join("x"))
            .map_err(permanent)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: config.root,
                binaries,
                ports: config.ports,
                run_as,
                name_locks: Mutex::new(HashMap::new()),
                port_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The backend root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The newest PostgreSQL version offered.
    pub fn default_version(&self) -> Option<String> {
        self.inner.binaries.newest()
    }

    /// Starts every owned instance that is not running (after a control-plane restart).
    /// Returns the names started; failures are reported per instance and do not stop the rest.
    pub async fn resume_all(&self) -> Vec<(InstanceName, Result<bool, BackendError>)> {
        let mut results = Vec::new();
        for name in self.list_owned().await.unwrap_or_default() {
            let outcome = async {
                let _guard = self.lock(&name).await;
                let Some(marker) = self.read_marker(&name)? else {
                    return Ok(false);
                };
                let cluster = self.cluster(&name, &marker)?;
                match cluster.status().await.map_err(transient)? {
                    ClusterStatus::Stopped => {
                        cluster.start().await.map(|_| true).map_err(transient)
                    }
                    _ => Ok(false),
                }
            }
            .await;
            results.push((name, outcome));
        }
        results
    }

    fn instance_dir(&self, name: &InstanceName) -> PathBuf {
        self.inner.root.join(name.as_str())
    }

    async fn lock(&self, name: &InstanceName) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .inner
                .name_locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(name.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn read_marker(&self, name: &InstanceName) -> Result<Option<Marker>, BackendError> {
        let path = self.instance_dir(name).join(MARKER);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| BackendError::Permanent(format!("{}: {error}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(transient(error)),
        }
    }

    fn write_marker(&self, name: &InstanceName, marker: &Marker) -> Result<(), BackendError> {
        let dir = self.instance_dir(name);
        let scratch = dir.join(format!("{MARKER}.tmp"));
        let bytes = serde_json::to_vec_pretty(marker).map_err(permanent)?;
        std::fs::write(&scratch, bytes).map_err(transient)?;
        std::fs::rename(&scratch, dir.join(MARKER)).map_err(transient)
    }

    fn cluster(&self, name: &InstanceName, marker: &Marker) -> Result<PgCluster, BackendError> {
        let bin_dir = self
            .inner
            .binaries
            .bin_dir(&marker.postgres_version)
            .ok_or_else(|| {
                BackendError::Permanent(format!(
                    "PostgreSQL {} binaries are no longer installed",
                    marker.postgres_version
                ))
            })?;
        let dir = self.instance_dir(name);
        Ok(PgCluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            listen: Listen::Loopback { port: marker.port },
            run_as: self.inner.run_as,
        })
    }

    /// Claims a port and writes the marker for a new instance.
    async fn claim(&self, spec: &DeploySpec) -> Result<Marker, BackendError> {
        let _ports = self.inner.port_lock.lock().await;
        // Replicas sharing this root choose ports one at a time too.
        let _shared = FileLock::acquire(&self.inner.root.join(".ports.lock"))
            .await
            .map_err(transient)?;
        let claimed = self.claimed_ports().await;
        let port = ports::pick_free_port(&self.inner.ports, &claimed).ok_or_else(|| {
            BackendError::NoFreePort(format!(
                "{}-{}",
                self.inner.ports.start(),
                self.inner.ports.end()
            ))
        })?;
        let marker = Marker {
            name: spec.name.to_string(),
            uid: spec.uid.clone(),
            postgres_version: spec.postgres_version.clone(),
            port,
        };
        let dir = self.instance_dir(&spec.name);
        std::fs::create_dir_all(&dir).map_err(transient)?;
        self.inner.run_as.hand_over(&dir).map_err(permanent)?;
        self.write_marker(&spec.name, &marker)?;
        Ok(marker)
    }

    async fn claimed_ports(&self) -> HashSet<u16> {
        let mut ports = HashSet::new();
        for name in self.list_owned().await.unwrap_or_default() {
            if let Ok(Some(marker)) = self.read_marker(&name) {
                ports.insert(marker.port);
            }
        }
        ports
    }

    /// Stops and removes an instance folder; the caller holds the name lock.
    async fn remove(&self, name: &InstanceName) -> Result<(), BackendError> {
        let dir = self.instance_dir(name);
        if let Some(marker) = self.read_marker(name)? {
            let cluster = self.cluster(name, &marker)?;
            cluster.stop().await.map_err(transient)?;
        }
        remove_dir_if_present(&dir).await.map_err(transient)
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn versions(&self) -> Vec<String> {
        self.inner.binaries.versions()
    }

    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError> {
        if self
            .inner
            .binaries
            .bin_dir(&spec.postgres_version)
            .is_none()
        {
            return Err(BackendError::UnsupportedVersion {
                requested: spec.postgres_version.clone(),
                offered: self.versions().join(", "),
            });
        }
        let _guard = self.lock(&spec.name).await;
        let existing = self.read_marker(&spec.name)?;
        let (marker, mut outcome) = match existing {
            Some(marker) if marker.uid == spec.uid => (marker, DeployOutcome::Adopted),
            Some(_) => {
                // A leftover of an older instance with this name: it is not ours to adopt.
                self.remove(&spec.name).await?;
                (self.claim(spec).await?, DeployOutcome::Created)
            }
            None => {
                // A folder without a marker is a leftover of a claim that crashed early.
                remove_dir_if_present(&self.instance_dir(&spec.name))
                    .await
                    .map_err(transient)?;
                (self.claim(spec).await?, DeployOutcome::Created)
            }
        };
        let cluster = self.cluster(&spec.name, &marker)?;
        if cluster
            .init(AuthMethod::Scram, Some(&spec.password))
            .await
            .map_err(transient)?
        {
            outcome = DeployOutcome::Created;
        }
        cluster.start().await.map_err(transient)?;
        Ok(outcome)
    }

    async fn readiness(&self, name: &InstanceName) -> Result<Readiness, BackendError> {
        // Under the name lock: a readiness check may restart the instance, and must never do
        // so while a delete is removing it.
        let _guard = self.lock(name).await;
        let Some(marker) = self.read_marker(name)? else {
            return Ok(Readiness::Missing);
        };
        let cluster = self.cluster(name, &marker)?;
        match cluster.status().await.map_err(transient)? {
            ClusterStatus::Missing => Ok(Readiness::Missing),
            ClusterStatus::Stopped => {
                // It may have crashed or never come up (for example, its port was taken).
                let detail = cluster
                    .last_log_line()
                    .unwrap_or_else(|| "postgres is not running".into());
                cluster.start().await.map_err(transient)?;
                Ok(Readiness::NotReady(format!(
                    "restarted; last log line: {detail}"
                )))
            }
            ClusterStatus::Running if cluster.accepts_connections().await.map_err(transient)? => {
                Ok(Readiness::Ready)
            }
            ClusterStatus::Running => Ok(Readiness::NotReady("postgres is starting".into())),
        }
    }

    async fn endpoint(&self, name: &InstanceName) -> Result<Endpoint, BackendError> {
        let marker = self
            .read_marker(name)?
            .ok_or_else(|| BackendError::NotDeployed(name.to_string()))?;
        Ok(Endpoint {
            host: "127.0.0.1".into(),
            port: marker.port,
        })
    }

    async fn delete(&self, name: &InstanceName) -> Result<(), BackendError> {
        let _guard = self.lock(name).await;
        self.remove(name).await
    }

    async fn list_owned(&self) -> Result<Vec<InstanceName>, BackendError> {
        let entries = match std::fs::read_dir(&self.inner.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(transient(error)),
        };
        let mut names: Vec<InstanceName> = entries
            .flatten()
            .filter(|entry| entry.path().join(MARKER).exists())
            .filter_map(|entry| InstanceName::parse(&entry.file_name().to_string_lossy()).ok())
            .collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(names)
    }
}

fn transient(error: impl std::fmt::Display) -> BackendError {
    BackendError::Transient(error.to_string())
}

fn permanent(error: impl std::fmt::Display) -> BackendError {
    BackendError::Permanent(error.to_string())
}

impl From<ClusterError> for BackendError {
    fn from(error: ClusterError) -> Self {
        transient(error)
    }
}
