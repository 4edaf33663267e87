//! Backups on the local backend: pgBackRest runs on this machine as the instance's own OS id,
//! with a configuration file, lock, log and spool of the instance's, and (in a posix repository)
//! a repository folder of its own that no other instance's server can read. When an instance is
//! deleted its repository goes to the vault's id ([`crate::privilege::RunAs::vault`]).
//!
//! ```text
//! <root>/<name>/pgbackrest.conf   the stanza's configuration (the instance's id, 0600)
//! <root>/<name>/pgbackrest/       its lock, log and spool folders
//! <root>/<name>/run/              the unix socket pgBackRest connects through (0700; a
//!                                 short folder under /tmp for deep data dirs)
//! <repository>/<uid>/             a posix repository's folder of the stanza
//! ```

use super::{LocalBackend, Marker, permanent, transient};
use crate::backend::BackendError;
use crate::backup::agent::{InstanceBackups, RestoreSource, Verification};
use crate::backup::command::{PgBackRest, prepare_work_dir, write_private};
use crate::backup::config::{StanzaConfig, posix_path, render};
use crate::backup::info::{ANNOTATION, BackupSummary, parse};
use crate::backup::{BackupError, BackupSettings, Repository};
use crate::model::BackupType;
use crate::pgcluster::PgCluster;
use crate::privilege::{self, RunAs};
use crate::socket_dir::socket_dir_for;
use crate::validation::InstanceName;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of its pgBackRest locks, logs and spool.
pub(super) const WORK: &str = "pgbackrest";
/// Its pgBackRest configuration.
pub(super) const CONFIG: &str = "pgbackrest.conf";
/// Where stanzas of deleted instances are read from (a folder per stanza).
pub(super) const ORPHAN_WORK: &str = ".backups";

/// How long a backup, restore or verify may run.
pub(super) const LONG_COMMAND: Duration = Duration::from_secs(6 * 3600);
/// How long a failed stanza-create waits before it is tried once more.
const STANZA_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How long a quick command (stanza-create, check, info) may run.
const SHORT_COMMAND: Duration = Duration::from_secs(300);

/// Makes the posix repository's root: root's, traversable so each instance reaches its folder.
pub(super) fn prepare_repository(
    run_as: &RunAs,
    settings: &BackupSettings,
) -> Result<(), BackendError> {
    if let Repository::Posix { root } = &settings.repository {
        std::fs::create_dir_all(root).map_err(permanent)?;
        privilege::keep_for_root(run_as, root, 0o711).map_err(permanent)?;
    }
    Ok(())
}

/// The settings a server archiving with `command` (the segment's path appended) is pinned to.
pub(super) fn archive_pins(settings: &BackupSettings, command: &str) -> Vec<(String, String)> {
    vec![
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), format!("{command} %p")),
        (
            "archive_timeout".into(),
            settings.archive_timeout_secs.max(1).to_string(),
        ),
    ]
}

/// `value` as one single-quoted word of a shell command.
pub(super) fn shell_word(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

impl LocalBackend {
    /// The backup settings, or why there are none.
    pub(super) fn backup_settings(&self) -> Result<&BackupSettings, BackupError> {
        self.inner
            .backups
            .as_ref()
            .ok_or_else(|| BackupError::Io("backups are off (TOYGRES_BACKUPS=off)".into()))
    }

    /// The folder of instance `name`'s unix socket (see [`crate::socket_dir`]).
    pub(super) fn socket_dir(&self, name: &InstanceName, marker: &Marker) -> PathBuf {
        socket_dir_for(&self.home(name, marker))
    }

    fn config_path(&self, name: &InstanceName) -> PathBuf {
        self.instance_dir(name).join(CONFIG)
    }

    /// What the server of instance `name` pins for archiving: `archive-push` to its stanza,
    /// and `archive_timeout` bounding the data at risk. Nothing without backups.
    pub(super) fn archive_settings(
        &self,
        name: &InstanceName,
        marker: &Marker,
    ) -> Vec<(String, String)> {
        let Some(settings) = &self.inner.backups else {
            return Vec::new();
        };
        let command = if marker.port_keyed {
            // Fixed when the server started in the pool, before it had a name: a script of
            // its port's, which the claim points at the instance's stanza.
            self.port_keyed_archive_command(marker.port)
        } else {
            self.archive_push_words(name, marker)
                .iter()
                .map(|word| shell_word(word))
                .collect::<Vec<_>>()
                .join(" ")
        };
        archive_pins(settings, &command)
    }

    /// The words of the `archive-push` command of instance `name` (before the segment's path).
    pub(super) fn archive_push_words(&self, name: &InstanceName, marker: &Marker) -> Vec<String> {
        let binary = self
            .inner
            .backups
            .as_ref()
            .map(|settings| settings.binary.display().to_string())
            .unwrap_or_default();
        vec![
            binary,
            format!("--config={}", self.config_path(name).display()),
            format!("--stanza={}", marker.uid),
            "archive-push".into(),
        ]
    }

    /// Makes `archive_timeout` hold from the start of a postmaster on: PostgreSQL 15's
    /// checkpointer starts during recovery, when it ignores `archive_timeout`, and then sleeps
    /// for a whole `checkpoint_timeout` (5 min) unless woken; a partly filled WAL segment would
    /// wait that long to be archived. A reload signal wakes it once recovery is over; sent once
    /// per postmaster (and again after this process restarts, which is harmless).
    pub(super) fn start_archive_timer(&self, cluster: &PgCluster, port: u16) {
        if self.inner.backups.is_none() {
            return;
        }
        let Ok(mut woken) = self.inner.archive_timers.lock() else {
            return;
        };
        let Some(pid) = cluster.postmaster_pid() else {
            return;
        };
        if woken.insert((port, pid)) && cluster.signal_reload().is_none() {
            woken.remove(&(port, pid));
        }
    }

    /// The stanza of a live instance as its configuration describes it.
    fn stanza_config(&self, name: &InstanceName, marker: &Marker) -> StanzaConfig {
        StanzaConfig {
            stanza: marker.uid.clone(),
            pg_path: self.home(name, marker).join("data"),
            socket: Some((self.socket_dir(name, marker), marker.port)),
            work_dir: self.instance_dir(name).join(WORK),
        }
    }

    /// Writes `config`'s file at `path` for `owner`, with its work folders.
    pub(super) fn write_config(
        &self,
        path: &Path,
        config: &StanzaConfig,
        owner: RunAs,
    ) -> Result<(), BackupError> {
        let settings = self.backup_settings()?;
        let text = render(settings, config).map_err(|error| BackupError::Io(error.to_string()))?;
        prepare_work_dir(&config.work_dir, owner)?;
        write_private(path, &text, owner)
    }

    /// pgBackRest for `stanza` through the configuration at `config`, as `owner`.
    pub(super) fn pgbackrest(
        &self,
        config: &Path,
        stanza: &str,
        owner: RunAs,
    ) -> Result<PgBackRest, BackupError> {
        Ok(PgBackRest {
            binary: self.backup_settings()?.binary.clone(),
            config: config.to_path_buf(),
            stanza: stanza.to_string(),
            run_as: owner,
        })
    }

    /// The repository folder of `stanza` in a posix repository.
    pub(super) fn posix_repository(&self, stanza: &str) -> Option<PathBuf> {
        match &self.inner.backups.as_ref()?.repository {
            Repository::Posix { root } => Some(posix_path(root, stanza)),
            _ => None,
        }
    }

    /// Writes the stanza's configuration and creates the stanza (offline, before the server
    /// first starts, so no segment is ever archived to a stanza that does not exist yet).
    /// Idempotent; nothing without backups.
    pub(super) async fn prepare_stanza(
        &self,
        name: &InstanceName,
        marker: &Marker,
        cluster: &PgCluster,
    ) -> Result<(), BackendError> {
        if self.inner.backups.is_none() {
            return Ok(());
        }
        let owner = cluster.run_as;
        let config = self.stanza_config(name, marker);
        let path = self.config_path(name);
        self.write_config(&path, &config, owner)
            .map_err(backup_failure)?;
        if let Some(repository) = self.posix_repository(&marker.uid) {
            std::fs::create_dir_all(&repository).map_err(transient)?;
            privilege::set_mode(&repository, 0o700).map_err(permanent)?;
            owner.hand_over(&repository).map_err(permanent)?;
        }
        let pgbackrest = self
            .pgbackrest(&path, &marker.uid, owner)
            .map_err(backup_failure)?;
        let offline = ["--no-online".to_string()];
        let create = || pgbackrest.run("stanza-create", &offline, None, SHORT_COMMAND);
        if let Err(first) = create().await {
            // The stanza-create of an attempt whose server was killed may still be writing the
            // stanza's files (a child outlives a SIGKILLed parent), and this one then finds
            // them half made ("archive directory not empty"): once that one is done, the stanza
            // is complete and creating it again confirms it.
            tracing::warn!(instance = %name, error = %first, "stanza-create failed; trying once more");
            tokio::time::sleep(STANZA_RETRY_PAUSE).await;
            create().await.map_err(backup_failure)?;
        }
        Ok(())
    }

    /// Gives the posix repository folder of incarnation `uid` to the vault (its instance is
    /// going: a later instance on the same port, thus the same id, must not read it).
    pub(super) fn keep_backups_in_vault(&self, uid: &str) -> Result<(), BackendError> {
        if let Some(repository) = self.posix_repository(uid)
            && repository.exists()
        {
            self.inner
                .run_as
                .vault()
                .hand_over_tree(&repository)
                .map_err(permanent)?;
        }
        Ok(())
    }

    /// Who reads `stanza`'s repository: the owner of its posix folder (the live instance's
    /// id, or the vault's once it was deleted); for a cloud repository, `fallback`.
    pub(super) fn repository_reader(
        &self,
        stanza: &str,
        fallback: RunAs,
    ) -> Result<RunAs, BackendError> {
        match self.posix_repository(stanza) {
            Some(folder) if folder.exists() => {
                self.inner.run_as.owner_of(&folder).map_err(permanent)
            }
            Some(_) => Ok(self.inner.run_as.vault()),
            None => Ok(fallback),
        }
    }

    /// The live instance (name and marker) whose incarnation is `stanza`, if any.
    async fn live_incarnation(
        &self,
        stanza: &str,
    ) -> Result<Option<(InstanceName, Marker)>, BackendError> {
        for owned in crate::backend::Backend::list_owned(self).await? {
            if owned.uid.as_deref() == Some(stanza)
                && let Some(marker) = self.read_marker(&owned.name)?
                && marker.uid == stanza
            {
                return Ok(Some((owned.name, marker)));
            }
        }
        Ok(None)
    }

    /// pgBackRest for reading `stanza` (any incarnation, live or deleted), with a
    /// configuration of its own when the stanza's instance is gone.
    pub(super) async fn reader_for(&self, stanza: &str) -> Result<PgBackRest, BackendError> {
        if let Some((name, marker)) = self.live_incarnation(stanza).await? {
            let owner = self.instance_user(marker.port).await?;
            return self
                .pgbackrest(&self.config_path(&name), stanza, owner)
                .map_err(backup_failure);
        }
        let reader = self.repository_reader(stanza, self.inner.run_as.vault())?;
        let work = self.inner.root.join(ORPHAN_WORK).join(stanza);
        std::fs::create_dir_all(&work).map_err(transient)?;
        privilege::keep_for_root(
            &self.inner.run_as,
            &self.inner.root.join(ORPHAN_WORK),
            0o711,
        )
        .map_err(permanent)?;
        let config = StanzaConfig {
            stanza: stanza.to_string(),
            pg_path: work.join("none"),
            socket: None,
            work_dir: work.join(WORK),
        };
        let path = work.join(CONFIG);
        // The reader changes when the instance is deleted (its id, then the vault's).
        privilege::set_mode(&work, 0o700)
            .and_then(|()| reader.hand_over_tree(&work))
            .map_err(permanent)?;
        self.write_config(&path, &config, reader)
            .map_err(backup_failure)?;
        self.pgbackrest(&path, stanza, reader)
            .map_err(backup_failure)
    }
}

impl LocalBackend {
    /// A backup of incarnation `uid` of `name`: online (connecting with `admin_password`) or,
    /// without one, offline (the server is stopped). Idempotent by `backup_id`.
    async fn take_backup(
        &self,
        name: &InstanceName,
        uid: &str,
        backup_id: &str,
        kind: BackupType,
        admin_password: Option<&str>,
    ) -> Result<BackupSummary, BackupError> {
        let marker = self
            .read_marker(name)
            .map_err(to_backup_error)?
            .filter(|marker| marker.uid == uid)
            .ok_or_else(|| BackupError::Io(format!("instance {name} ({uid}) is not deployed")))?;
        let owner = self
            .instance_user(marker.port)
            .await
            .map_err(to_backup_error)?;
        // The settings may have changed since the instance was made: write them again.
        let path = self.config_path(name);
        self.write_config(&path, &self.stanza_config(name, &marker), owner)?;
        let pgbackrest = self.pgbackrest(&path, uid, owner)?;
        let find = |backups: Vec<BackupSummary>| {
            backups
                .into_iter()
                .find(|backup| backup.backup_id.as_deref() == Some(backup_id))
        };
        let info = pgbackrest
            .run("info", &["--output=json".into()], None, SHORT_COMMAND)
            .await?;
        if let Some(done) = find(parse(&info)?) {
            return Ok(done);
        }
        let args = vec![
            format!("--type={kind}"),
            format!("--annotation={ANNOTATION}={backup_id}"),
        ];
        let mut args = args;
        if admin_password.is_none() {
            args.push("--no-online".into());
        }
        pgbackrest
            .run("backup", &args, admin_password, LONG_COMMAND)
            .await?;
        let info = pgbackrest
            .run("info", &["--output=json".into()], None, SHORT_COMMAND)
            .await?;
        find(parse(&info)?).ok_or_else(|| {
            BackupError::Output(format!(
                "pgbackrest reported success but lists no backup annotated {backup_id}"
            ))
        })
    }
}

/// A backup failure as the backend reports it.
pub(super) fn backup_failure(error: BackupError) -> BackendError {
    if error.is_retryable() {
        BackendError::Transient(error.to_string())
    } else {
        BackendError::Permanent(error.to_string())
    }
}

fn to_backup_error(error: BackendError) -> BackupError {
    BackupError::Io(error.to_string())
}

#[async_trait]
impl InstanceBackups for LocalBackend {
    async fn backup(
        &self,
        name: &InstanceName,
        uid: &str,
        backup_id: &str,
        kind: BackupType,
        admin_password: &str,
    ) -> Result<BackupSummary, BackupError> {
        self.take_backup(name, uid, backup_id, kind, Some(admin_password))
            .await
    }

    async fn backup_offline(
        &self,
        name: &InstanceName,
        uid: &str,
        backup_id: &str,
        kind: BackupType,
    ) -> Result<BackupSummary, BackupError> {
        self.take_backup(name, uid, backup_id, kind, None).await
    }

    async fn flush_archive(
        &self,
        name: &InstanceName,
        uid: &str,
        admin_password: &str,
    ) -> Result<(), BackupError> {
        let marker = self
            .read_marker(name)
            .map_err(to_backup_error)?
            .filter(|marker| marker.uid == uid)
            .ok_or_else(|| BackupError::Io(format!("instance {name} ({uid}) is not deployed")))?;
        // A commit now: a point-in-time restore up to this moment finds a transaction to stop
        // after, instead of failing with "recovery ended before the target was reached".
        super::restore::commit_marker(
            &self.socket_dir(name, &marker),
            marker.port,
            Some(admin_password),
        )
        .await?;
        let owner = self
            .instance_user(marker.port)
            .await
            .map_err(to_backup_error)?;
        self.pgbackrest(&self.config_path(name), uid, owner)?
            .run("check", &[], Some(admin_password), SHORT_COMMAND)
            .await
            .map(drop)
    }

    async fn list(&self, stanza: &str) -> Result<Vec<BackupSummary>, BackupError> {
        if let Some(folder) = self.posix_repository(stanza)
            && !folder.exists()
        {
            return Ok(Vec::new());
        }
        let reader = self.reader_for(stanza).await.map_err(to_backup_error)?;
        let info = reader
            .run("info", &["--output=json".into()], None, SHORT_COMMAND)
            .await?;
        parse(&info)
    }

    async fn verify(&self, stanza: &str, label: &str) -> Result<Verification, BackupError> {
        self.verify_backup(stanza, label)
            .await
            .map_err(to_backup_error)
    }

    async fn remove(&self, stanza: &str) -> Result<(), BackupError> {
        match self.posix_repository(stanza) {
            Some(folder) => crate::pgcluster::remove_dir_if_present(&folder)
                .await
                .map_err(|error| BackupError::Io(error.to_string()))?,
            None => {
                let reader = self.reader_for(stanza).await.map_err(to_backup_error)?;
                reader.run("stop", &[], None, SHORT_COMMAND).await?;
                reader
                    .run("stanza-delete", &["--force".into()], None, SHORT_COMMAND)
                    .await?;
            }
        }
        let work = self.inner.root.join(ORPHAN_WORK).join(stanza);
        crate::pgcluster::remove_dir_if_present(&work)
            .await
            .map_err(|error| BackupError::Io(error.to_string()))
    }
}

/// The `pgbackrest restore` options that stop recovery at `source`'s target.
pub(super) fn target_args(source: &RestoreSource) -> Vec<String> {
    use crate::backup::agent::RestoreTarget;
    match &source.target {
        RestoreTarget::Latest => vec!["--type=default".into()],
        RestoreTarget::Backup { label } => vec![
            format!("--set={label}"),
            "--type=immediate".into(),
            "--target-action=promote".into(),
        ],
        RestoreTarget::Time { at } => vec![
            "--type=time".into(),
            format!("--target={}", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
            "--target-action=promote".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::agent::RestoreTarget;

    #[test]
    fn targets_become_restore_options() -> Result<(), Box<dyn std::error::Error>> {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T09:19:10.005871Z")?.to_utc();
        let source = |target| RestoreSource {
            stanza: "ins_x".into(),
            target,
        };
        assert_eq!(
            target_args(&source(RestoreTarget::Time { at })),
            vec![
                "--type=time",
                "--target=2026-12-03 09:19:10.005871+00",
                "--target-action=promote"
            ]
        );
        assert_eq!(
            target_args(&source(RestoreTarget::Backup {
                label: "20261203-091726F".into()
            }))[0],
            "--set=20261203-091726F"
        );
        assert_eq!(
            target_args(&source(RestoreTarget::Latest)),
            vec!["--type=default"]
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        Ok(())
    }
}
