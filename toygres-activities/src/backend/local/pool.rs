//! The warm pool: copies of each version's template already started and waiting, unassigned,
//! so that a create claims one instead of copying and starting. A pooled cluster is not an
//! instance (no marker, so it is not listed, monitored or drifted); it runs as the identity of
//! its port, lets in only the control plane over its private socket, and archives nothing
//! until claimed.
//!
//! ```text
//! <root>/.pool/.lock              held while a claim or a drain looks at the slots
//! <root>/.pool/.refill.lock       held by the one process refilling
//! <root>/.pool/<slot>.lock        held while the slot is made
//! <root>/.pool/<slot>/slot.json   version, port, ready
//! <root>/.ports/<port>/data, postgres.log, run/, pg_hba.conf, pgbackrest-archive.sh
//!                                 the cluster, named by its port
//! ```
//! A claim writes the instance's marker into the slot and renames the slot's folder to the
//! instance's, both under the pool's lock: the rename is atomic, so a slot goes to one create
//! only, and a crash between the two leaves a slot that names its create, which that create's
//! retry takes (or its delete removes). The cluster itself does not move (a running server's
//! data dir, socket and the paths on its command line cannot): it lives in the folder of its
//! port, which it keeps as an instance.

use super::backups::{archive_pins, shell_word};
use super::{LocalBackend, MARKER, Marker, permanent, transient, write_file_atomically};
use crate::backend::{BackendError, DeploySpec, PoolReport};
use crate::fslock::FileLock;
use crate::pgcluster::{Listen, PgCluster, PostmasterState, remove_dir_if_present};
use crate::privilege;
use crate::socket_dir::socket_dir_for;
use crate::validation::InstanceName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The pool's folder under the backend root.
const POOL: &str = ".pool";
/// The folder of port-named files under the backend root.
const PORTS: &str = ".ports";
/// A slot's description.
const SLOT: &str = "slot.json";
/// The archive script of a port (pgBackRest checks that the archive command names it).
const ARCHIVE_SCRIPT: &str = "pgbackrest-archive.sh";
/// How long a pooled server may take to accept connections once started.
const SLOT_START: Duration = Duration::from_secs(60);

/// One pooled cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Slot {
    /// Its PostgreSQL major version.
    version: String,
    /// Its port (and so its identity).
    port: u16,
    /// Started and accepting connections: it may be claimed.
    ready: bool,
}

/// A slot found in the pool's folder.
struct FoundSlot {
    dir: PathBuf,
    slot: Option<Slot>,
    claimed_by: Option<Marker>,
}

impl LocalBackend {
    /// Sets how many started copies of each version's template wait in the pool (0: none;
    /// the next refill removes what is there).
    pub fn set_warm_pool(&self, per_version: usize) {
        self.inner.warm_pool.store(per_version, Ordering::Relaxed);
    }

    /// How many started copies of each version's template the pool keeps.
    pub fn warm_pool_size(&self) -> usize {
        self.inner.warm_pool.load(Ordering::Relaxed)
    }

    fn pool_dir(&self) -> PathBuf {
        self.inner.root.join(POOL)
    }

    /// The folder of files named by `port` (its server's `pg_hba.conf` and archive script).
    pub(super) fn port_folder(&self, port: u16) -> PathBuf {
        self.inner.root.join(PORTS).join(port.to_string())
    }

    /// The archive script of the server on `port`.
    pub(super) fn archive_script_path(&self, port: u16) -> PathBuf {
        self.port_folder(port).join(ARCHIVE_SCRIPT)
    }

    /// The archive command of a server that started in the pool: its port's script.
    pub(super) fn port_keyed_archive_command(&self, port: u16) -> String {
        [
            "/bin/sh".to_string(),
            self.archive_script_path(port).display().to_string(),
        ]
        .iter()
        .map(|word| shell_word(word))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Points the archive script of an instance born in the pool at its own stanza (nothing
    /// for other instances, or without backups).
    pub(super) fn write_archive_script(
        &self,
        name: &InstanceName,
        marker: &Marker,
    ) -> Result<(), BackendError> {
        if !marker.port_keyed || self.inner.backups.is_none() {
            return Ok(());
        }
        let words: Vec<String> = self
            .archive_push_words(name, marker)
            .iter()
            .map(|word| shell_word(word))
            .collect();
        let script = format!(
            "# Written by toygres: where instance {name} ({}) archives its WAL.\nexec {} \"$1\"\n",
            marker.uid,
            words.join(" ")
        );
        self.write_port_file(marker.port, ARCHIVE_SCRIPT, &script)
    }

    /// Writes `file` in the folder of `port` (root's, readable by the port's server).
    fn write_port_file(&self, port: u16, file: &str, text: &str) -> Result<(), BackendError> {
        let folder = self.port_folder(port);
        std::fs::create_dir_all(&folder).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &self.inner.root.join(PORTS), 0o711)
            .map_err(permanent)?;
        privilege::keep_for_root(&self.inner.run_as, &folder, 0o711).map_err(permanent)?;
        write_file_atomically(&folder, file, text.as_bytes(), 0o644)
    }

    /// The ports of pooled clusters (made, being made or mid-claim).
    pub(super) fn pooled_ports(&self) -> HashSet<u16> {
        self.slots()
            .iter()
            .filter_map(|found| found.slot.as_ref().map(|slot| slot.port))
            .collect()
    }

    /// Every slot folder in the pool.
    fn slots(&self) -> Vec<FoundSlot> {
        let Ok(entries) = std::fs::read_dir(self.pool_dir()) else {
            return Vec::new();
        };
        let mut slots: Vec<FoundSlot> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| {
                let dir = entry.path();
                let slot = std::fs::read(dir.join(SLOT))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                let claimed_by = std::fs::read(dir.join(MARKER))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                FoundSlot {
                    dir,
                    slot,
                    claimed_by,
                }
            })
            .collect();
        slots.sort_by(|a, b| a.dir.cmp(&b.dir));
        slots
    }

    /// The marker of a new instance: a pooled cluster taken for it when one of its version is
    /// ready (and the pool can hand one to it), else a free port for a copy to come.
    pub(super) async fn claim_new(&self, spec: &DeploySpec) -> Result<Marker, BackendError> {
        match self.take_from_pool(spec).await? {
            Some(marker) => Ok(marker),
            None => self.claim(spec).await,
        }
    }

    /// Moves a ready pooled cluster into the place of instance `spec.name` (the caller holds
    /// the instance's lock and has removed whatever was there), or the one an interrupted claim
    /// for this very create left named after it.
    async fn take_from_pool(&self, spec: &DeploySpec) -> Result<Option<Marker>, BackendError> {
        let target = self.instance_dir(&spec.name);
        // A create from before the control plane's roles makes its cluster with initdb.
        if !self.pool_dir().exists() || spec.superuser != crate::roles::ADMIN {
            return Ok(None);
        }
        // Port choices see a slot either in the pool or as the instance, never neither.
        let _ports = self.inner.port_lock.lock().await;
        let _shared = FileLock::acquire(&self.inner.root.join(".ports.lock"))
            .await
            .map_err(transient)?;
        let _pool = FileLock::acquire(&self.pool_dir().join(".lock"))
            .await
            .map_err(transient)?;
        let slots = self.slots();
        let interrupted = slots.iter().find_map(|found| match &found.claimed_by {
            Some(marker) if marker.uid == spec.uid && marker.name == spec.name.as_str() => {
                Some((found.dir.clone(), marker.clone()))
            }
            _ => None,
        });
        let (dir, marker) = match interrupted {
            Some(found) => found,
            None => {
                let Some((dir, slot)) = slots.into_iter().find_map(|found| match found.slot {
                    Some(slot)
                        if slot.ready
                            && slot.version == spec.postgres_version
                            && found.claimed_by.is_none()
                            && self.slot_cluster_state(slot.port) == PostmasterState::Ready =>
                    {
                        Some((found.dir, slot))
                    }
                    _ => None,
                }) else {
                    return Ok(None);
                };
                let marker = Marker::pooled_for(spec, slot.version, slot.port);
                let bytes = serde_json::to_vec_pretty(&marker).map_err(permanent)?;
                write_file_atomically(&dir, MARKER, &bytes, 0o600)?;
                (dir, marker)
            }
        };
        std::fs::rename(&dir, &target).map_err(transient)?;
        let _ = std::fs::remove_file(target.join(SLOT));
        let _ = std::fs::remove_file(dir.with_extension("lock"));
        tracing::info!(instance = %spec.name, port = marker.port, "took a started cluster from the warm pool");
        Ok(Some(marker))
    }

    /// Whether the server of the slot on `port` is up (from its `postmaster.pid`).
    fn slot_cluster_state(&self, port: u16) -> PostmasterState {
        let home = self.port_folder(port);
        let probe = PgCluster {
            bin_dir: PathBuf::new(),
            data_dir: home.join("data"),
            log_file: home.join("postgres.log"),
            listen: Listen::Socket { dir: home },
            run_as: self.inner.run_as,
            init_as: self.inner.run_as,
            hba_file: None,
            settings: Default::default(),
            pinned: Vec::new(),
        };
        probe.postmaster_state()
    }

    /// Removes a slot an interrupted claim left named after incarnation `uid` (its create
    /// gave up and deletes what it made).
    pub(super) async fn release_pool_claim(&self, uid: &str) -> Result<(), BackendError> {
        if !self.pool_dir().exists() {
            return Ok(());
        }
        let _pool = FileLock::acquire(&self.pool_dir().join(".lock"))
            .await
            .map_err(transient)?;
        for found in self.slots() {
            if found
                .claimed_by
                .as_ref()
                .is_some_and(|marker| marker.uid == uid)
            {
                self.remove_slot(&found).await?;
            }
        }
        Ok(())
    }

    /// Tops the pool up to the configured number of ready clusters per version (or trims it),
    /// after removing what crashed makers and dead servers left. One process refills at a
    /// time; another finding it busy returns at once.
    pub async fn refill_pool(&self) -> Result<PoolReport, BackendError> {
        let per_version = self.warm_pool_size();
        std::fs::create_dir_all(self.pool_dir()).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &self.pool_dir(), 0o711).map_err(permanent)?;
        let Some(_refilling) =
            FileLock::try_acquire(&self.pool_dir().join(".refill.lock")).map_err(transient)?
        else {
            // Another process is refilling.
            return Ok(PoolReport {
                per_version,
                ..PoolReport::default()
            });
        };
        let mut report = PoolReport {
            per_version,
            removed: self.sweep_pool().await?,
            ..PoolReport::default()
        };
        for version in self.inner.binaries.versions() {
            let ready: Vec<FoundSlot> = self
                .slots()
                .into_iter()
                .filter(|found| {
                    found.claimed_by.is_none()
                        && found
                            .slot
                            .as_ref()
                            .is_some_and(|slot| slot.ready && slot.version == version)
                })
                .collect();
            for extra in ready.iter().skip(per_version) {
                let _pool = FileLock::acquire(&self.pool_dir().join(".lock"))
                    .await
                    .map_err(transient)?;
                // Still unclaimed under the lock?
                if !extra.dir.join(MARKER).exists() && extra.dir.exists() {
                    self.remove_slot(extra).await?;
                    report.removed += 1;
                }
            }
            for _ in ready.len()..per_version {
                self.make_slot(&version).await?;
                report.made += 1;
            }
            report.ready += per_version;
        }
        Ok(report)
    }

    /// Stops and removes every pooled cluster (at shutdown, or when the pool is turned off).
    pub async fn drain_pool(&self) -> Result<usize, BackendError> {
        if !self.pool_dir().exists() {
            return Ok(0);
        }
        let _pool = FileLock::acquire(&self.pool_dir().join(".lock"))
            .await
            .map_err(transient)?;
        let mut removed = 0;
        for found in self.slots() {
            let lock = found.dir.with_extension("lock");
            // A slot being made is its maker's to finish (or the next sweep's to remove).
            let Some(_making) = FileLock::try_acquire(&lock).map_err(transient)? else {
                continue;
            };
            self.remove_slot(&found).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes slots whose maker died, or whose server is gone; returns how many.
    async fn sweep_pool(&self) -> Result<usize, BackendError> {
        let _pool = FileLock::acquire(&self.pool_dir().join(".lock"))
            .await
            .map_err(transient)?;
        let mut removed = 0;
        for found in self.slots() {
            if found.claimed_by.is_some() {
                continue;
            }
            let Some(_making) =
                FileLock::try_acquire(&found.dir.with_extension("lock")).map_err(transient)?
            else {
                continue;
            };
            let dead = match &found.slot {
                Some(slot) if slot.ready => {
                    self.slot_cluster_state(slot.port) == PostmasterState::Down
                }
                // Not ready and nobody making it: a maker died.
                _ => true,
            };
            if dead {
                self.remove_slot(&found).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The cluster of a slot, as its server runs (in the folder of its port).
    async fn slot_cluster(&self, slot: &Slot) -> Result<PgCluster, BackendError> {
        let home = self.port_folder(slot.port);
        let bin_dir = self.inner.binaries.bin_dir(&slot.version).ok_or_else(|| {
            BackendError::Permanent(format!(
                "PostgreSQL {} binaries are no longer installed",
                slot.version
            ))
        })?;
        let pinned = match &self.inner.backups {
            Some(settings) => archive_pins(settings, &self.port_keyed_archive_command(slot.port)),
            None => Vec::new(),
        };
        Ok(PgCluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: home.join("data"),
            log_file: home.join("postgres.log"),
            listen: Listen::Loopback {
                port: slot.port,
                socket_dir: Some(socket_dir_for(&home)),
            },
            run_as: self.instance_user(slot.port).await?,
            init_as: self.inner.run_as,
            hba_file: Some(home.join(super::HBA_FILE)),
            settings: Default::default(),
            pinned,
        })
    }

    /// Stops a slot's server and removes its folders.
    async fn remove_slot(&self, found: &FoundSlot) -> Result<(), BackendError> {
        if let Some(slot) = &found.slot {
            if let Ok(cluster) = self.slot_cluster(slot).await {
                self.as_data_owner(&cluster)?
                    .stop()
                    .await
                    .map_err(transient)?;
                let socket = socket_dir_for(&self.port_folder(slot.port));
                if crate::socket_dir::is_detached(&self.port_folder(slot.port), &socket) {
                    remove_dir_if_present(&socket).await.map_err(transient)?;
                }
            }
            remove_dir_if_present(&self.port_folder(slot.port))
                .await
                .map_err(transient)?;
        }
        remove_dir_if_present(&found.dir).await.map_err(transient)?;
        let _ = std::fs::remove_file(found.dir.with_extension("lock"));
        Ok(())
    }

    /// Makes one ready slot of `version`: a port, a copy of the template, its server started
    /// and accepting connections.
    async fn make_slot(&self, version: &str) -> Result<(), BackendError> {
        let id = crate::ids::derived(
            "slot_",
            &format!(
                "{}-{}-{:?}",
                std::process::id(),
                super::unique_suffix(),
                std::time::SystemTime::now()
            ),
        );
        let dir = self.pool_dir().join(&id);
        let Some(_making) =
            FileLock::try_acquire(&dir.with_extension("lock")).map_err(transient)?
        else {
            return Err(transient("a pool slot id was taken twice".to_string()));
        };
        let mut slot = {
            let _ports = self.inner.port_lock.lock().await;
            let _shared = FileLock::acquire(&self.inner.root.join(".ports.lock"))
                .await
                .map_err(transient)?;
            let claimed = self.claimed_ports().await;
            let port =
                super::ports::pick_free_port(&self.inner.ports, &claimed).ok_or_else(|| {
                    BackendError::NoFreePort(format!(
                        "{}-{}",
                        self.inner.ports.start(),
                        self.inner.ports.end()
                    ))
                })?;
            std::fs::create_dir(&dir).map_err(transient)?;
            privilege::keep_for_root(&self.inner.run_as, &dir, 0o711).map_err(permanent)?;
            let slot = Slot {
                version: version.to_string(),
                port,
                ready: false,
            };
            write_slot(&dir, &slot)?;
            slot
        };
        let cluster = self.slot_cluster(&slot).await?;
        // A folder of this port left by something else is no cluster of ours.
        remove_dir_if_present(&self.port_folder(slot.port))
            .await
            .map_err(transient)?;
        self.write_port_file(
            slot.port,
            super::HBA_FILE,
            super::credentials::BOOTSTRAP_HBA_RULES,
        )?;
        if self.inner.backups.is_some() {
            self.write_port_file(
                slot.port,
                ARCHIVE_SCRIPT,
                "# Written by toygres: this pooled server is not an instance yet.\n\
                 echo 'toygres: not an instance yet; nothing is archived' >&2\nexit 1\n",
            )?;
        }
        self.copy_template(version, &cluster.data_dir, slot.port, cluster.run_as)
            .await?;
        self.prepare_socket_dir(&cluster)?;
        cluster.start().await.map_err(transient)?;
        super::credentials::wait_accepting(&cluster, SLOT_START).await?;
        slot.ready = true;
        write_slot(&dir, &slot)?;
        tracing::debug!(slot = %id, port = slot.port, version, "a started cluster waits in the warm pool");
        Ok(())
    }
}

impl Marker {
    /// The marker of instance `spec` taking the pooled cluster of `version` on `port`: its
    /// home is the folder of its port, and it has no password yet.
    pub(super) fn pooled_for(spec: &DeploySpec, version: String, port: u16) -> Self {
        Self {
            name: spec.name.to_string(),
            uid: spec.uid.clone(),
            postgres_version: version,
            port,
            stopped: false,
            parameters: BTreeMap::new(),
            awaiting_credentials: true,
            port_keyed: true,
        }
    }
}

/// Writes a slot's description.
fn write_slot(dir: &Path, slot: &Slot) -> Result<(), BackendError> {
    let bytes = serde_json::to_vec_pretty(slot).map_err(permanent)?;
    write_file_atomically(dir, SLOT, &bytes, 0o600)
}

#[async_trait::async_trait]
impl crate::backend::WarmPool for LocalBackend {
    fn size(&self) -> usize {
        self.warm_pool_size()
    }

    async fn refill(&self) -> Result<PoolReport, BackendError> {
        self.refill_pool().await
    }

    async fn drain(&self) -> Result<usize, BackendError> {
        self.drain_pool().await
    }
}
