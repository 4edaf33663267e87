//! Restores on the local backend: a backup is restored into a scratch data dir and recovered
//! there (socket only, no TCP, archiving off, as the identity that may read the source's
//! repository), then either handed to a new instance (its own id, passwords and stanza) or
//! checked and removed (a verify). A crash part-way leaves only a scratch dir, removed by the
//! next attempt.

use super::backups::{CONFIG, LONG_COMMAND, WORK, backup_failure, target_args};
use super::{LocalBackend, Marker, permanent, transient};
use crate::backend::{BackendError, DeployOutcome, DeploySpec};
use crate::backup::BackupError;
use crate::backup::agent::{RestoreSource, RestoreTarget, Verification};
use crate::backup::command::PgBackRest;
use crate::backup::config::StanzaConfig;
use crate::pgcluster::{ClusterError, Listen, PgCluster, PostmasterState, remove_dir_if_present};
use crate::privilege::{self, RunAs};
use crate::roles::{ADMIN, OWNER};
use crate::socket_dir::socket_dir_for;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The port of scratch clusters (socket only: no TCP port is taken).
pub(super) const SCRATCH_PORT: u16 = 5432;
/// Where verifies recover their scratch clusters.
const VERIFY_WORK: &str = ".verify";

/// A scratch cluster recovering (or recovered) from a backup.
struct Scratch {
    cluster: PgCluster,
    socket_dir: PathBuf,
}

/// The folders of a scratch cluster: its data dir, a work folder beside it (log, hba) and its
/// socket's folder (inside the work folder, or under /tmp when that path is too long).
struct ScratchDirs {
    data: PathBuf,
    work: PathBuf,
    socket: PathBuf,
}

impl ScratchDirs {
    /// The folders of the scratch cluster whose data dir is `data`.
    fn beside(data: PathBuf) -> Self {
        let work = data.with_extension("work");
        let socket = socket_dir_for(&work);
        Self { data, work, socket }
    }

    /// Removes whatever a previous attempt left.
    async fn clear(&self) -> Result<(), ClusterError> {
        remove_dir_if_present(&self.data).await?;
        remove_dir_if_present(&self.work).await?;
        remove_dir_if_present(&self.socket).await
    }

    /// Removes the work and socket folders (the data dir was handed over or removed).
    async fn clear_work(&self) -> Result<(), ClusterError> {
        remove_dir_if_present(&self.work).await?;
        remove_dir_if_present(&self.socket).await
    }

    /// Makes an empty data dir for `reader`, private.
    fn create_data(&self, reader: RunAs) -> Result<(), BackendError> {
        std::fs::create_dir(&self.data).map_err(transient)?;
        privilege::set_mode(&self.data, 0o700).map_err(permanent)?;
        reader.hand_over(&self.data).map_err(permanent)
    }
}

/// Commits a transaction on the cluster listening in `socket_dir` (as `toygres_admin`), so the
/// WAL holds a commit timestamped now.
pub(super) async fn commit_marker(
    socket_dir: &Path,
    port: u16,
    password: Option<&str>,
) -> Result<(), BackupError> {
    let client = connect(socket_dir, port, password).await?;
    client
        .batch_execute("SELECT pg_catalog.txid_current()")
        .await
        .map_err(|error| BackupError::Io(format!("writing a commit before the flush: {error}")))
}

/// A session as `toygres_admin` over the unix socket in `socket_dir`.
pub(super) async fn connect(
    socket_dir: &Path,
    port: u16,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, BackupError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(socket_dir)
        .port(port)
        .user(ADMIN)
        .dbname("postgres")
        .application_name("toygres-backups")
        .connect_timeout(Duration::from_secs(10))
        .options("-c search_path=pg_catalog,pg_temp");
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| {
            BackupError::Io(format!("connecting to {}: {error}", socket_dir.display()))
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl LocalBackend {
    /// pgBackRest restoring `stanza` into the scratch data dir as `reader` (its owner, who may
    /// read the repository), with a configuration and work folders in the scratch's own work
    /// folder: concurrent restores of one stanza never share a lock or a log.
    fn restorer(
        &self,
        stanza: &str,
        dirs: &ScratchDirs,
        reader: RunAs,
    ) -> Result<PgBackRest, BackendError> {
        std::fs::create_dir_all(&dirs.work).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &dirs.work, 0o711).map_err(permanent)?;
        let config = StanzaConfig {
            stanza: stanza.to_string(),
            pg_path: dirs.data.clone(),
            socket: None,
            work_dir: dirs.work.join(WORK),
        };
        let path = dirs.work.join(CONFIG);
        self.write_config(&path, &config, reader)
            .map_err(backup_failure)?;
        self.pgbackrest(&path, stanza, reader)
            .map_err(backup_failure)
    }

    /// Restores `source` into the empty folder `scratch` (owned by `reader`, who may read the
    /// source's repository) and recovers it until it is promoted.
    async fn recover(
        &self,
        source: &RestoreSource,
        dirs: &ScratchDirs,
        reader: RunAs,
        bin_dir: &Path,
    ) -> Result<Scratch, BackendError> {
        let pgbackrest = self.restorer(&source.stanza, dirs, reader)?;
        pgbackrest
            .run("restore", &target_args(source), None, LONG_COMMAND)
            .await
            .map_err(backup_failure)?;
        // A private socket and a trust rule for toygres_admin on it only: the control plane
        // (root) finishes the restore through it; nothing listens on TCP.
        let work = &dirs.work;
        std::fs::create_dir_all(work).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, work, 0o711).map_err(permanent)?;
        let socket_dir = dirs.socket.clone();
        privilege::make_private_dir(&reader, &socket_dir).map_err(permanent)?;
        let hba = work.join("pg_hba.conf");
        std::fs::write(&hba, format!("local all {ADMIN} trust\n")).map_err(transient)?;
        privilege::set_mode(&hba, 0o644).map_err(permanent)?;
        let cluster = PgCluster {
            bin_dir: bin_dir.to_path_buf(),
            data_dir: dirs.data.clone(),
            log_file: work.join("postgres.log"),
            listen: Listen::Socket {
                dir: socket_dir.clone(),
            },
            run_as: reader,
            init_as: reader,
            hba_file: Some(hba),
            settings: Default::default(),
            pinned: vec![("port".into(), SCRATCH_PORT.to_string())],
        };
        // Waits until it accepts (read-only) connections or exits: a recovery that cannot even
        // start (a missing segment) is reported with the server's reason.
        match cluster.start_waiting(Duration::from_secs(60)).await {
            Ok(()) => {}
            Err(ClusterError::Failed { detail, .. })
                if detail.contains("did not start in time") => {}
            Err(ClusterError::Failed { detail, .. }) => {
                return Err(BackendError::Permanent(format!(
                    "recovery of the backup failed: {detail}"
                )));
            }
            Err(error) => return Err(transient(error)),
        }
        wait_promoted(&cluster, &socket_dir, LONG_COMMAND).await?;
        Ok(Scratch {
            cluster,
            socket_dir,
        })
    }

    /// Deploys a new instance whose data is `source`'s at its target: restored and recovered
    /// in a scratch dir, given the new bootstrap superuser's password and stripped of the
    /// recovery settings, handed to the instance's own id, then started with a stanza of its
    /// own. Create-or-adopt like [`crate::backend::Backend::deploy`].
    pub(super) async fn deploy_restored_here(
        &self,
        spec: &DeploySpec,
        source: &RestoreSource,
    ) -> Result<DeployOutcome, BackendError> {
        let bin_dir = self
            .inner
            .binaries
            .bin_dir(&spec.postgres_version)
            .ok_or_else(|| BackendError::UnsupportedVersion {
                requested: spec.postgres_version.clone(),
                offered: crate::backend::Backend::versions(self).join(", "),
            })?
            .to_path_buf();
        self.backup_settings().map_err(backup_failure)?;
        let _guard = self.lock(&spec.name).await?;
        let (marker, mut outcome) = match self.read_marker(&spec.name)? {
            Some(marker) if marker.uid == spec.uid => (marker, DeployOutcome::Adopted),
            Some(_) => {
                self.remove(&spec.name).await?;
                (self.claim(spec).await?, DeployOutcome::Created)
            }
            None => {
                remove_dir_if_present(&self.instance_dir(&spec.name))
                    .await
                    .map_err(transient)?;
                (self.claim(spec).await?, DeployOutcome::Created)
            }
        };
        let cluster = self.cluster(&spec.name, &marker).await?;
        if !cluster.data_dir.join("PG_VERSION").exists() {
            self.restore_data_dir(spec, source, &marker, &cluster, &bin_dir)
                .await?;
            outcome = DeployOutcome::Created;
        }
        self.prepare_stanza(&spec.name, &marker, &cluster).await?;
        self.launch(&spec.name, &marker, &cluster).await?;
        Ok(outcome)
    }

    /// The restore of a new instance's data dir, through a scratch dir renamed into place.
    async fn restore_data_dir(
        &self,
        spec: &DeploySpec,
        source: &RestoreSource,
        marker: &Marker,
        cluster: &PgCluster,
        bin_dir: &Path,
    ) -> Result<(), BackendError> {
        let dirs = ScratchDirs::beside(cluster.data_dir.with_extension("restore"));
        dirs.clear().await.map_err(transient)?;
        // A cloud repository is read by the new instance's own id; a posix one by whoever
        // owns the source's folder.
        let reader = self.repository_reader(&source.stanza, cluster.run_as)?;
        dirs.create_data(reader)?;
        let recovered = self.recover(source, &dirs, reader, bin_dir).await;
        let finished = match recovered {
            Ok(recovered) => {
                let finished = finish_for_instance(&recovered, &spec.superuser_verifier).await;
                let _ = recovered.cluster.stop().await;
                finished
            }
            Err(error) => Err(error),
        };
        if let Err(error) = finished {
            let _ = dirs.clear().await;
            return Err(error);
        }
        dirs.clear_work().await.map_err(transient)?;
        cluster
            .run_as
            .hand_over_tree(&dirs.data)
            .map_err(permanent)?;
        std::fs::rename(&dirs.data, &cluster.data_dir).map_err(transient)?;
        tracing::info!(instance = %spec.name, source = %source.stanza, port = marker.port, "restored a backup into a new instance");
        Ok(())
    }

    /// Restores backup `label` of `stanza` into a scratch cluster, checks it and removes it.
    pub(super) async fn verify_backup(
        &self,
        stanza: &str,
        label: &str,
    ) -> Result<Verification, BackendError> {
        let started = std::time::Instant::now();
        let bin_dir = self
            .inner
            .binaries
            .newest()
            .and_then(|version| self.inner.binaries.bin_dir(&version).map(Path::to_path_buf))
            .ok_or_else(|| BackendError::Permanent("no PostgreSQL binaries".into()))?;
        let folder = self.inner.root.join(VERIFY_WORK);
        std::fs::create_dir_all(&folder).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &folder, 0o711).map_err(permanent)?;
        let dirs = ScratchDirs::beside(folder.join(format!("{stanza}-{label}")));
        dirs.clear().await.map_err(transient)?;
        let reader = self.repository_reader(stanza, self.inner.run_as.vault())?;
        dirs.create_data(reader)?;
        let source = RestoreSource {
            stanza: stanza.to_string(),
            target: RestoreTarget::Backup {
                label: label.to_string(),
            },
        };
        let checked = async {
            let recovered = self.recover(&source, &dirs, reader, &bin_dir).await?;
            let checks = read_everything(&recovered.socket_dir).await;
            let _ = recovered.cluster.stop().await;
            let (databases, tables, rows) = checks.map_err(backup_failure)?;
            let repository = self.reader_for(stanza).await?;
            repository
                .run("verify", &[format!("--set={label}")], None, LONG_COMMAND)
                .await
                .map_err(backup_failure)?;
            Ok::<_, BackendError>(Verification {
                restored: true,
                repository_intact: true,
                databases,
                tables,
                rows,
                elapsed_ms: 0,
            })
        }
        .await;
        let _ = dirs.clear().await;
        let mut verification = checked?;
        verification.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(verification)
    }
}

/// Waits until the scratch cluster finished recovery and was promoted (its `recovery.signal`
/// is gone and it accepts connections); fails at once when the postmaster exits, with its
/// log's reason (a target beyond what was archived, a missing WAL segment).
async fn wait_promoted(
    cluster: &PgCluster,
    socket_dir: &Path,
    limit: Duration,
) -> Result<(), BackendError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(50);
    loop {
        match cluster.postmaster_state() {
            PostmasterState::Ready if !in_recovery(socket_dir).await => return Ok(()),
            PostmasterState::Down => {
                let reason = cluster
                    .last_log_line()
                    .unwrap_or_else(|| "the server exited".into());
                // A second look: the pid file may not exist yet right after the start.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if cluster.postmaster_state() == PostmasterState::Down {
                    return Err(BackendError::Permanent(format!(
                        "recovery of the backup failed: {reason}"
                    )));
                }
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = cluster.stop().await;
            return Err(BackendError::Transient(format!(
                "recovery did not finish within {} s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Whether the scratch cluster still recovers (or cannot be asked yet).
async fn in_recovery(socket_dir: &Path) -> bool {
    let Ok(client) = connect(socket_dir, SCRATCH_PORT, None).await else {
        return true;
    };
    !matches!(
        client.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]).await,
        Ok(row) if !row.get::<_, bool>(0)
    )
}

/// Gives the restored cluster the new instance's bootstrap superuser password (a SCRAM
/// verifier), takes the source owner's password away, and removes the recovery settings
/// pgBackRest wrote.
async fn finish_for_instance(recovered: &Scratch, verifier: &str) -> Result<(), BackendError> {
    let client = connect(&recovered.socket_dir, SCRATCH_PORT, None)
        .await
        .map_err(backup_failure)?;
    let statements = [
        format!(
            "ALTER ROLE {ADMIN} PASSWORD {}",
            crate::roles::sql::literal(verifier)
        ),
        // The source's owner password must not open the copy while it waits for its own
        // (set by the create's configure_roles step).
        format!(
            "DO $$BEGIN IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {owner}) \
             THEN ALTER ROLE {OWNER} PASSWORD NULL; END IF; END$$",
            owner = crate::roles::sql::literal(OWNER)
        ),
        "ALTER SYSTEM RESET restore_command".into(),
        "ALTER SYSTEM RESET recovery_target".into(),
        "ALTER SYSTEM RESET recovery_target_time".into(),
        "ALTER SYSTEM RESET recovery_target_action".into(),
        "ALTER SYSTEM RESET recovery_target_timeline".into(),
    ];
    for statement in &statements {
        client.batch_execute(statement).await.map_err(|error| {
            let detail = error
                .as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_else(|| error.to_string());
            BackendError::Permanent(format!("finishing the restore ({statement}): {detail}"))
        })?;
    }
    Ok(())
}

/// Reads every database's catalog and every user table end to end; returns (databases,
/// tables, rows).
async fn read_everything(socket_dir: &Path) -> Result<(u64, u64, u64), BackupError> {
    let client = connect(socket_dir, SCRATCH_PORT, None).await?;
    let databases: Vec<String> = client
        .query(
            "SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 1",
            &[],
        )
        .await
        .map_err(|error| BackupError::Io(format!("reading pg_database: {error}")))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let (mut tables, mut rows) = (0u64, 0u64);
    for database in &databases {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(socket_dir)
            .port(SCRATCH_PORT)
            .user(ADMIN)
            .dbname(database)
            .options("-c search_path=pg_catalog,pg_temp");
        let (db, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|error| BackupError::Io(format!("connecting to {database}: {error}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let relations: Vec<String> = db
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|error| BackupError::Io(format!("reading the catalog of {database}: {error}")))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for relation in relations {
            let count: i64 = db
                .query_one(&format!("SELECT count(*) FROM {relation}"), &[])
                .await
                .map_err(|error| {
                    BackupError::Io(format!("reading {database}.{relation}: {error}"))
                })?
                .get(0);
            tables += 1;
            rows += u64::try_from(count).unwrap_or(0);
        }
    }
    Ok((u64::try_from(databases.len()).unwrap_or(0), tables, rows))
}

impl From<ClusterError> for BackupError {
    fn from(error: ClusterError) -> Self {
        BackupError::Io(error.to_string())
    }
}
