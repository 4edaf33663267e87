//! The local backend: each instance is its own PostgreSQL cluster on this machine.
//!
//! Layout under the backend root (root-owned, mode 0711, when Toygres runs as root), one folder
//! per instance:
//! ```text
//! <root>/.locks/<name>.lock     held while one process deploys, checks or deletes <name>
//! <root>/<name>/                 root-owned, 0711
//! <root>/<name>/instance.json   ownership marker: name, uid, version, port (root, 0600)
//! <root>/<name>/pg_hba.conf     who may connect: scram-sha-256 on 127.0.0.1 (root, 0644)
//! <root>/<name>/data/           PGDATA, owned by the instance's own id (0700)
//! <root>/<name>/postgres.log    the postmaster's log (the instance's id, 0600)
//! ```
//! Instances listen on 127.0.0.1 only, authenticate with scram-sha-256, run as a user and group
//! id of their own (`1600000 + port`, see [`crate::privilege`]), and outlive the control plane:
//! [`LocalBackend::resume_all`] starts them again after a restart.

#[cfg(test)]
mod backup_tests;
mod backups;
pub mod binaries;
mod credentials;
mod pool;
#[cfg(test)]
mod pool_tests;
mod ports;
mod restore;
mod template;
#[cfg(test)]
mod test_specs;

pub use binaries::PgBinaries;

use super::{
    Backend, BackendError, DEFAULT_NAMESPACE, DeployOutcome, DeploySpec, Endpoint, InstanceRef,
    OwnedInstance, Readiness,
};
use crate::fslock::FileLock;
use crate::pgcluster::{
    Bootstrap, ClusterError, ClusterStatus, Listen, PgCluster, PostmasterState,
    remove_dir_if_present,
};
use crate::privilege::{self, RunAs};
use crate::validation::InstanceName;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The marker file that says a folder is a Toygres instance, and whose.
const MARKER: &str = "instance.json";
/// The `pg_hba.conf` of every instance, outside its data dir and owned by Toygres.
const HBA_FILE: &str = "pg_hba.conf";
/// Who may connect to an instance: password (SCRAM) logins over loopback TCP, and the control
/// plane's `toygres_admin` (pgBackRest) over the unix socket in a folder only the instance's
/// own id may enter; no replication connections.
const HBA_RULES: &str = "# Written by toygres at every start; changes are overwritten.\n\
    host all all 127.0.0.1/32 scram-sha-256\n\
    local all toygres_admin scram-sha-256\n";
/// The folder of the per-instance lock files.
const LOCKS: &str = ".locks";
/// Time between two checks while waiting for an instance to accept connections (each reads
/// `postmaster.pid`; none starts a process).
const READY_CHECK_EVERY: Duration = Duration::from_millis(10);

/// How long a restart waits for the server to accept connections (or to give up).
const RESTART_WAIT: Duration = Duration::from_secs(30);

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

/// The ownership marker stored with each instance, and what the control plane decided about
/// its server: whether it stays down, and the settings on its command line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    name: String,
    uid: String,
    postgres_version: String,
    port: u16,
    /// Stopped on purpose: nothing starts it but [`Backend::start`].
    #[serde(default)]
    stopped: bool,
    /// Owner parameters that take effect at a start, passed on the postmaster's command line.
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    /// A copy of a template that has no password yet: its server lets in only the control
    /// plane, over its private socket ([`credentials`]).
    #[serde(default)]
    awaiting_credentials: bool,
    /// Started in the warm pool, before it had a name: its server's `pg_hba.conf` and archive
    /// command live in a folder named by its port ([`pool`]).
    #[serde(default)]
    port_keyed: bool,
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
    /// Who this process is to PostgreSQL: root dropping privileges, or the current user.
    run_as: RunAs,
    /// Serializes port choice so two deploys never pick the same port.
    port_lock: tokio::sync::Mutex<()>,
    /// How instances archive their WAL and are backed up (`None`: no backups).
    backups: Option<crate::backup::BackupSettings>,
    /// The postmasters (port, pid) whose archive timer was started ([`LocalBackend::start_archive_timer`]).
    archive_timers: std::sync::Mutex<std::collections::HashSet<(u16, i32)>>,
    /// The template data dir of each major version, once known ([`template`]).
    templates: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
    /// How many started copies of each version's template wait in the warm pool ([`pool`]).
    warm_pool: std::sync::atomic::AtomicUsize,
}

impl LocalBackend {
    /// Prepares the backend root; fails when no PostgreSQL binaries are found or the root is
    /// unusable.
    pub fn new(config: LocalConfig) -> Result<Self, BackendError> {
        Self::build(config, None)
    }

    /// A backend whose instances archive their WAL and are backed up as `backups` says
    /// (pgBackRest: docs/backups.md).
    pub fn with_backups(
        config: LocalConfig,
        backups: crate::backup::BackupSettings,
    ) -> Result<Self, BackendError> {
        Self::build(config, Some(backups))
    }

    fn build(
        config: LocalConfig,
        backups: Option<crate::backup::BackupSettings>,
    ) -> Result<Self, BackendError> {
        let binaries = PgBinaries::discover(config.bin_dir.as_deref());
        if binaries.versions().is_empty() {
            return Err(BackendError::Permanent(
                "no PostgreSQL server binaries found (set TOYGRES_PG_BIN_DIR or install postgresql)".into(),
            ));
        }
        let run_as = RunAs::detect().map_err(permanent)?;
        std::fs::create_dir_all(config.root.join(LOCKS)).map_err(permanent)?;
        // Instance users may pass through the root to their own folder, but not list it.
        privilege::keep_for_root(&run_as, &config.root, 0o711).map_err(permanent)?;
        privilege::keep_for_root(&run_as, &config.root.join(LOCKS), 0o700).map_err(permanent)?;
        run_as
            .check_traversable_by_instances(&config.root.join("x"))
            .map_err(permanent)?;
        if let Some(settings) = &backups {
            backups::prepare_repository(&run_as, settings)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root: config.root,
                binaries,
                ports: config.ports,
                run_as,
                port_lock: tokio::sync::Mutex::new(()),
                backups,
                archive_timers: Default::default(),
                templates: Default::default(),
                warm_pool: Default::default(),
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

    /// Starts every owned instance that is not running and not stopped on purpose (after a
    /// control-plane restart), moving
    /// instances made before they had OS identities of their own onto theirs first. Returns the
    /// names started; failures are reported per instance and do not stop the rest.
    pub async fn resume_all(&self) -> Vec<(InstanceName, Result<bool, BackendError>)> {
        let mut results = Vec::new();
        for owned in self.list_owned().await.unwrap_or_default() {
            let name = owned.name;
            let outcome = async {
                let _guard = self.lock(&name).await?;
                let Some(marker) = self.read_marker(&name)? else {
                    return Ok(false);
                };
                let cluster = self.cluster(&name, &marker).await?;
                self.secure_layout(&name, &cluster).await?;
                if marker.stopped {
                    return Ok(false);
                }
                match cluster.status().await.map_err(transient)? {
                    ClusterStatus::Stopped => {
                        self.launch(&name, &marker, &cluster).await.map(|_| true)
                    }
                    _ => Ok(false),
                }
            }
            .await;
            results.push((name, outcome));
        }
        results
    }

    /// The identity the server of the instance on `port` runs as.
    pub async fn instance_user(&self, port: u16) -> Result<RunAs, BackendError> {
        let service = self.inner.run_as;
        tokio::task::spawn_blocking(move || service.for_instance(port))
            .await
            .map_err(transient)?
            .map_err(permanent)
    }

    /// The data dir of instance `name` (for tests and drills).
    pub fn data_dir(&self, name: &InstanceName) -> PathBuf {
        match self.read_marker(name) {
            Ok(Some(marker)) => self.home(name, &marker).join("data"),
            _ => self.instance_dir(name).join("data"),
        }
    }

    /// The folder of instance `name`'s cluster (data dir, log, socket): its own folder, or, for
    /// an instance born in the warm pool, the folder of its port, where its server started
    /// before it had a name (a running server's data dir cannot move).
    fn home(&self, name: &InstanceName, marker: &Marker) -> PathBuf {
        if marker.port_keyed {
            self.port_folder(marker.port)
        } else {
            self.instance_dir(name)
        }
    }

    fn instance_dir(&self, name: &InstanceName) -> PathBuf {
        self.inner.root.join(name.as_str())
    }

    /// The lock on instance `name`, held across processes (replicas share the root): deploy,
    /// readiness and delete of one instance never interleave.
    async fn lock(&self, name: &InstanceName) -> Result<FileLock, BackendError> {
        FileLock::acquire(&self.lock_path(name))
            .await
            .map_err(transient)
    }

    /// The lock file of instance `name`.
    pub fn lock_path(&self, name: &InstanceName) -> PathBuf {
        self.inner
            .root
            .join(LOCKS)
            .join(format!("{}.lock", name.as_str()))
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
        let bytes = serde_json::to_vec_pretty(marker).map_err(permanent)?;
        write_file_atomically(&dir, MARKER, &bytes, 0o600)
    }

    /// The cluster of instance `name`, run as the instance's own OS user.
    async fn cluster(
        &self,
        name: &InstanceName,
        marker: &Marker,
    ) -> Result<PgCluster, BackendError> {
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
        let dir = self.home(name, marker);
        Ok(PgCluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            // A private socket for the control plane (first credentials, pgBackRest).
            listen: Listen::Loopback {
                port: marker.port,
                socket_dir: Some(self.socket_dir(name, marker)),
            },
            run_as: self.instance_user(marker.port).await?,
            init_as: self.inner.run_as,
            hba_file: Some(self.hba_path(name, marker)),
            settings: marker.parameters.clone(),
            pinned: self.archive_settings(name, marker),
        })
    }

    /// The same cluster, driven as whoever owns its data dir now (to stop one that an
    /// earlier layout left owned by another user).
    fn as_data_owner(&self, cluster: &PgCluster) -> Result<PgCluster, BackendError> {
        let mut owned = cluster.clone();
        if cluster.data_dir.exists() {
            owned.run_as = self
                .inner
                .run_as
                .owner_of(&cluster.data_dir)
                .map_err(permanent)?;
        }
        Ok(owned)
    }

    /// Makes the instance folder root's, and its data dir its own id's: moves an instance made
    /// before instances had ids of their own (stopping it first if it runs as the shared
    /// `postgres` user). The caller holds the instance's lock.
    async fn secure_layout(
        &self,
        name: &InstanceName,
        cluster: &PgCluster,
    ) -> Result<(), BackendError> {
        privilege::keep_for_root(&self.inner.run_as, &self.instance_dir(name), 0o711)
            .map_err(permanent)?;
        let (Some(expected), true) = (cluster.run_as.uid(), cluster.data_dir.exists()) else {
            return Ok(());
        };
        let current = self.as_data_owner(cluster)?;
        if current.run_as.uid() == Some(expected) {
            return Ok(());
        }
        tracing::info!(instance = %name, "moving a local instance onto an OS identity of its own");
        current.stop().await.map_err(transient)?;
        cluster
            .run_as
            .hand_over_tree(&cluster.data_dir)
            .map_err(permanent)?;
        // The old identity's socket folder goes; the next start makes it the new one's.
        if let Listen::Loopback {
            socket_dir: Some(socket_dir),
            ..
        } = &cluster.listen
        {
            remove_dir_if_present(socket_dir).await.map_err(transient)?;
        }
        Ok(())
    }

    /// Writes the instance's `pg_hba.conf` and starts its postmaster.
    async fn launch(
        &self,
        name: &InstanceName,
        marker: &Marker,
        cluster: &PgCluster,
    ) -> Result<(), BackendError> {
        self.write_hba(name, marker)?;
        self.prepare_socket_dir(cluster)?;
        cluster.start().await.map_err(transient)
    }

    /// Creates the private folder of the cluster's unix socket (when it has one), its own.
    fn prepare_socket_dir(&self, cluster: &PgCluster) -> Result<(), BackendError> {
        if let Listen::Loopback {
            socket_dir: Some(dir),
            ..
        } = &cluster.listen
        {
            privilege::make_private_dir(&cluster.run_as, dir).map_err(permanent)?;
        }
        Ok(())
    }

    /// Where the server of instance `name` reads its `pg_hba.conf`: in its folder, or (born
    /// in the warm pool) in the folder of its port.
    fn hba_path(&self, name: &InstanceName, marker: &Marker) -> PathBuf {
        if marker.port_keyed {
            self.port_folder(marker.port).join(HBA_FILE)
        } else {
            self.instance_dir(name).join(HBA_FILE)
        }
    }

    /// Writes the instance's `pg_hba.conf` (Toygres's, whatever was there).
    fn write_hba(&self, name: &InstanceName, marker: &Marker) -> Result<(), BackendError> {
        let path = self.hba_path(name, marker);
        let folder = path.parent().unwrap_or(&self.inner.root);
        write_file_atomically(
            folder,
            HBA_FILE,
            credentials::hba_rules(marker).as_bytes(),
            0o644,
        )
    }

    /// Starts the deployed instance's server (when it is not running) and, for a copy that has
    /// no password yet, gives its bootstrap superuser one; else makes sure a server that was
    /// running applies the rules in its `pg_hba.conf` (an earlier attempt may have written the
    /// real ones without the server reading them).
    async fn start_with_credentials(
        &self,
        spec: &DeploySpec,
        marker: &mut Marker,
        cluster: &PgCluster,
        was_running: bool,
    ) -> Result<(), BackendError> {
        self.launch(&spec.name, marker, cluster).await?;
        if marker.awaiting_credentials {
            self.set_first_credentials(
                &spec.name,
                marker,
                cluster,
                &spec.superuser,
                &spec.superuser_verifier,
            )
            .await
        } else if was_running {
            self.apply_hba(cluster, marker.port).await
        } else {
            Ok(())
        }
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
            stopped: false,
            parameters: BTreeMap::new(),
            awaiting_credentials: false,
            port_keyed: false,
        };
        let dir = self.instance_dir(&spec.name);
        std::fs::create_dir_all(&dir).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &dir, 0o711).map_err(permanent)?;
        self.write_marker(&spec.name, &marker)?;
        Ok(marker)
    }

    async fn claimed_ports(&self) -> HashSet<u16> {
        let mut ports = self.pooled_ports();
        for owned in self.list_owned().await.unwrap_or_default() {
            if let Ok(Some(marker)) = self.read_marker(&owned.name) {
                ports.insert(marker.port);
            }
        }
        ports
    }

    /// The marker of incarnation `uid` of `name`; the caller holds the instance's lock.
    fn incarnation(&self, name: &InstanceName, uid: &str) -> Result<Marker, BackendError> {
        match self.read_marker(name)? {
            Some(marker) if marker.uid == uid => Ok(marker),
            _ => Err(BackendError::NotDeployed(format!("{name} ({uid})"))),
        }
    }

    /// Stops and removes an instance folder (its backups stay, in the vault's keeping); the
    /// caller holds the instance's lock.
    async fn remove(&self, name: &InstanceName) -> Result<(), BackendError> {
        let dir = self.instance_dir(name);
        let marker = self.read_marker(name)?;
        let home = marker
            .as_ref()
            .map_or_else(|| dir.clone(), |marker| self.home(name, marker));
        if let Some(marker) = marker {
            let cluster = self.cluster(name, &marker).await?;
            self.as_data_owner(&cluster)?
                .stop()
                .await
                .map_err(transient)?;
            self.keep_backups_in_vault(&marker.uid)?;
            if marker.port_keyed {
                remove_dir_if_present(&self.port_folder(marker.port))
                    .await
                    .map_err(transient)?;
            }
        }
        let socket_dir = crate::socket_dir::socket_dir_for(&home);
        if crate::socket_dir::is_detached(&home, &socket_dir) {
            remove_dir_if_present(&socket_dir)
                .await
                .map_err(transient)?;
        }
        remove_dir_if_present(&dir).await.map_err(transient)
    }
}

/// Writes `name` in `dir` through a scratch file renamed into place (never following a link
/// someone may have left at either path), with `mode`.
fn write_file_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), BackendError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let scratch = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&scratch);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&scratch)
        .map_err(transient)?;
    file.write_all(bytes).map_err(transient)?;
    privilege::set_mode(&scratch, mode).map_err(permanent)?;
    std::fs::rename(&scratch, dir.join(name)).map_err(transient)
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
        refuse_namespace(spec)?;
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
        let _guard = self.lock(&spec.name).await?;
        let started = std::time::Instant::now();
        let existing = self.read_marker(&spec.name)?;
        let (mut marker, mut outcome) = match existing {
            Some(marker) if marker.uid == spec.uid => (marker, DeployOutcome::Adopted),
            Some(_) => {
                // A leftover of an older instance with this name: it is not ours to adopt.
                self.remove(&spec.name).await?;
                (self.claim_new(spec).await?, DeployOutcome::Created)
            }
            None => {
                // A folder without a marker is a leftover of a claim that crashed early.
                remove_dir_if_present(&self.instance_dir(&spec.name))
                    .await
                    .map_err(transient)?;
                (self.claim_new(spec).await?, DeployOutcome::Created)
            }
        };
        let cluster = self.cluster(&spec.name, &marker).await?;
        self.secure_layout(&spec.name, &cluster).await?;
        if !cluster.data_dir.join("PG_VERSION").exists() && spec.superuser != crate::roles::ADMIN {
            // A create started before the control plane had roles: its owner is the bootstrap
            // superuser, as initdb makes it (the roles' conversion relies on that).
            let bootstrap = Bootstrap::Scram {
                superuser: &spec.superuser,
                password_verifier: &spec.superuser_verifier,
            };
            cluster.init(bootstrap).await.map_err(transient)?;
            outcome = DeployOutcome::Created;
        } else if !cluster.data_dir.join("PG_VERSION").exists() {
            // A copy of the template, without passwords until the server is up.
            if !marker.awaiting_credentials {
                marker.awaiting_credentials = true;
                self.write_marker(&spec.name, &marker)?;
            }
            self.copy_template(
                &spec.postgres_version,
                &cluster.data_dir,
                marker.port,
                cluster.run_as,
            )
            .await?;
            outcome = DeployOutcome::Created;
        }
        let placed = started.elapsed();
        let was_running = cluster.postmaster_state() != PostmasterState::Down;
        if was_running && marker.port_keyed {
            // Born in the warm pool, so running already: its archive script archives nothing
            // until it names the stanza, which is made while the server gets its credentials.
            let for_stanza = marker.clone();
            let (stanza, started_up) = tokio::join!(
                self.prepare_stanza(&spec.name, &for_stanza, &cluster),
                self.start_with_credentials(spec, &mut marker, &cluster, was_running),
            );
            stanza?;
            started_up?;
            self.write_archive_script(&spec.name, &marker)?;
        } else {
            // The stanza exists before the server archives its first segment.
            self.prepare_stanza(&spec.name, &marker, &cluster).await?;
            self.write_archive_script(&spec.name, &marker)?;
            self.start_with_credentials(spec, &mut marker, &cluster, was_running)
                .await?;
        }
        tracing::debug!(
            instance = %spec.name,
            ?outcome,
            from_pool = marker.port_keyed,
            data_ms = placed.as_millis() as u64,
            rest_ms = (started.elapsed() - placed).as_millis() as u64,
            "deployed"
        );
        Ok(outcome)
    }

    async fn readiness(&self, instance: InstanceRef<'_>) -> Result<Readiness, BackendError> {
        let name = instance.name;
        // Under the instance's lock: a readiness check may restart the instance, and must never
        // do so while a delete is removing it.
        let _guard = self.lock(name).await?;
        let Some(marker) = self.read_marker(name)? else {
            return Ok(Readiness::Missing);
        };
        let cluster = self.cluster(name, &marker).await?;
        if !cluster.data_dir.join("PG_VERSION").exists() {
            return Ok(Readiness::Missing);
        }
        if marker.stopped {
            return Ok(Readiness::Stopped);
        }
        match cluster.postmaster_state() {
            PostmasterState::Down => {
                // It may have crashed or never come up (for example, its port was taken).
                let detail = cluster
                    .last_log_line()
                    .unwrap_or_else(|| "postgres is not running".into());
                self.launch(name, &marker, &cluster).await?;
                Ok(Readiness::NotReady(format!(
                    "restarted; last log line: {detail}"
                )))
            }
            PostmasterState::Starting => Ok(Readiness::NotReady("postgres is starting".into())),
            PostmasterState::Stopping => {
                Ok(Readiness::NotReady("postgres is shutting down".into()))
            }
            PostmasterState::Ready => {
                let address = (std::net::Ipv4Addr::LOCALHOST, marker.port);
                match tokio::net::TcpStream::connect(address).await {
                    Ok(_) => {
                        self.start_archive_timer(&cluster, marker.port);
                        Ok(Readiness::Ready)
                    }
                    Err(error) => Ok(Readiness::NotReady(format!(
                        "postgres is ready but 127.0.0.1:{} refused: {error}",
                        marker.port
                    ))),
                }
            }
        }
    }

    async fn wait_ready(
        &self,
        instance: InstanceRef<'_>,
        limit: Duration,
    ) -> Result<Readiness, BackendError> {
        let name = instance.name;
        // One full check (under the lock; it restarts a postmaster that is down), then while the
        // postmaster starts, only its `postmaster.pid` is read: no process is started and no
        // lock taken, so checking often is cheap and a create loses no time.
        let deadline = tokio::time::Instant::now() + limit;
        let readiness = self.readiness(instance).await?;
        let Readiness::NotReady(mut detail) = readiness else {
            return Ok(readiness);
        };
        let Some(marker) = self.read_marker(name)? else {
            return Ok(Readiness::Missing);
        };
        let cluster = self.cluster(name, &marker).await?;
        let started = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            // 10 ms while a start is expected to finish, then less often.
            let pause = if started.elapsed() < Duration::from_secs(2) {
                READY_CHECK_EVERY
            } else {
                Duration::from_millis(100)
            };
            tokio::time::sleep(pause).await;
            match cluster.postmaster_state() {
                PostmasterState::Starting | PostmasterState::Stopping => continue,
                // Ready (confirmed with a connection) or down (restarted): the full check says.
                PostmasterState::Ready | PostmasterState::Down => {
                    match self.readiness(instance).await? {
                        Readiness::NotReady(seen) => detail = seen,
                        other => return Ok(other),
                    }
                }
            }
        }
        Ok(Readiness::NotReady(detail))
    }

    async fn endpoint(&self, instance: InstanceRef<'_>) -> Result<Endpoint, BackendError> {
        let name = instance.name;
        let marker = self
            .read_marker(name)?
            .ok_or_else(|| BackendError::NotDeployed(name.to_string()))?;
        Ok(Endpoint {
            host: "127.0.0.1".into(),
            port: marker.port,
        })
    }

    async fn delete(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        let name = instance.name;
        let _guard = self.lock(name).await?;
        // A claim of a pooled cluster that crashed before it was moved into place.
        self.release_pool_claim(uid).await?;
        match self.read_marker(name)? {
            // Another incarnation of the name lives here now: nothing of `uid` is left.
            Some(marker) if marker.uid != uid => Ok(()),
            _ => self.remove(name).await,
        }
    }

    async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError> {
        let entries = match std::fs::read_dir(&self.inner.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(transient(error)),
        };
        let mut owned: Vec<OwnedInstance> = entries
            .flatten()
            .filter_map(|entry| InstanceName::parse(&entry.file_name().to_string_lossy()).ok())
            .filter_map(|name| match self.read_marker(&name) {
                Ok(Some(marker)) => Some(OwnedInstance {
                    name,
                    namespace: None,
                    uid: Some(marker.uid),
                }),
                _ => None,
            })
            .collect();
        owned.sort();
        Ok(owned)
    }

    async fn stop(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        let name = instance.name;
        let _guard = self.lock(name).await?;
        let mut marker = self.incarnation(name, uid)?;
        if !marker.stopped {
            // The decision first: a readiness check or a control-plane restart in between must
            // not start it again.
            marker.stopped = true;
            self.write_marker(name, &marker)?;
        }
        let cluster = self.cluster(name, &marker).await?;
        cluster.stop().await.map_err(transient)
    }

    async fn start(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        let name = instance.name;
        let _guard = self.lock(name).await?;
        let mut marker = self.incarnation(name, uid)?;
        if marker.stopped {
            marker.stopped = false;
            self.write_marker(name, &marker)?;
        }
        let cluster = self.cluster(name, &marker).await?;
        self.secure_layout(name, &cluster).await?;
        self.launch(name, &marker, &cluster).await
    }

    async fn restart(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        let _guard = self.lock(name).await?;
        let mut marker = self.incarnation(name, uid)?;
        let running = self.cluster(name, &marker).await?;
        if let Some(parameters) = parameters
            && *parameters != marker.parameters
        {
            marker.parameters = parameters.clone();
            self.write_marker(name, &marker)?;
        }
        running.stop().await.map_err(transient)?;
        if marker.stopped {
            marker.stopped = false;
            self.write_marker(name, &marker)?;
        }
        let cluster = self.cluster(name, &marker).await?;
        self.write_hba(name, &marker)?;
        self.prepare_socket_dir(&cluster)?;
        // Waits until it accepts connections or exits: a server that cannot start with its
        // settings is reported at once (with its log's reason), not at the ready deadline.
        cluster
            .start_waiting(RESTART_WAIT)
            .await
            .or_else(|error| match error {
                // Still starting (a long recovery): the workflow's readiness wait goes on.
                ClusterError::Failed { detail, .. } if detail.contains("did not start in time") => {
                    Ok(())
                }
                ClusterError::Failed { detail, .. } => Err(BackendError::Permanent(format!(
                    "the server did not start: {detail}"
                ))),
                other => Err(transient(other)),
            })
    }

    fn warm_pool(&self) -> Option<&dyn super::WarmPool> {
        Some(self as &dyn super::WarmPool)
    }

    fn backups(&self) -> Option<&dyn crate::backup::agent::InstanceBackups> {
        self.inner
            .backups
            .is_some()
            .then_some(self as &dyn crate::backup::agent::InstanceBackups)
    }

    async fn deploy_restored(
        &self,
        spec: &DeploySpec,
        source: &crate::backup::agent::RestoreSource,
    ) -> Result<DeployOutcome, BackendError> {
        refuse_namespace(spec)?;
        self.deploy_restored_here(spec, source).await
    }

    async fn resize(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        _storage_gb: u32,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        // A local instance's data lives on this machine's file system and takes what it
        // needs; the size is the control plane's record (docs/operations.md).
        let _guard = self.lock(name).await?;
        self.incarnation(name, uid).map(|_| ())
    }
}

/// A local instance lives in the one [`DEFAULT_NAMESPACE`]; the API refuses any other before
/// a create is accepted, and so does a deploy.
fn refuse_namespace(spec: &DeploySpec) -> Result<(), BackendError> {
    match spec.namespace.as_deref() {
        None | Some(DEFAULT_NAMESPACE) => Ok(()),
        Some(other) => Err(BackendError::Unsupported(format!(
            "the local backend has no namespaces (asked for {other}; its one is {DEFAULT_NAMESPACE})"
        ))),
    }
}

/// A short suffix that differs between calls in one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_sharing_a_root_take_turns_on_one_instance()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = crate::testkit::shared_tempdir()?;
        let config = LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: 1..=1,
        };
        // Two server processes on one data dir are two backends on one root.
        let first = LocalBackend::new(config.clone())?;
        let second = LocalBackend::new(config)?;
        let name = InstanceName::parse("shared")?;
        // The first replica works on the instance (here: holds its lock)...
        let held = FileLock::acquire(&first.lock_path(&name)).await?;
        let deleting = tokio::spawn({
            let second = second.clone();
            let name = name.clone();
            async move { second.delete(InstanceRef::in_default(&name), "ins_x").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !deleting.is_finished(),
            "the other replica's delete must wait for the lock"
        );
        // ...and the other one goes on once it is released.
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), deleting).await???;
        Ok(())
    }
}
