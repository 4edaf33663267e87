//! What a backend that runs backups offers the activities: take a backup, force and wait for
//! the archiving of the current WAL, list a stanza's backups, verify one, remove a stanza.
//! Restores are deploys ([`crate::backend::Backend::deploy_restored`]).

use super::BackupError;
use super::info::BackupSummary;
use crate::model::BackupType;
use crate::validation::InstanceName;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a restore stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreTarget {
    /// The end of everything archived.
    Latest,
    /// The end (consistent point) of the backup with this pgBackRest label.
    Backup {
        /// The label.
        label: String,
    },
    /// A point in time (the last transaction committed at or before it).
    Time {
        /// The moment.
        at: DateTime<Utc>,
    },
}

/// What a restore starts from: a stanza (an instance incarnation, live or deleted) and a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSource {
    /// The source's stanza (its uid).
    pub stanza: String,
    /// Where recovery stops.
    pub target: RestoreTarget,
}

/// What a verify checked and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// The backup restored into a scratch cluster that started and accepted connections.
    pub restored: bool,
    /// `pgbackrest verify` of the backup found every file intact.
    pub repository_intact: bool,
    /// Databases whose catalog was read.
    pub databases: u64,
    /// User tables read end to end.
    pub tables: u64,
    /// Rows in them.
    pub rows: u64,
    /// How long the restore and checks took.
    pub elapsed_ms: u64,
}

/// The backups a backend runs for its instances.
#[async_trait]
pub trait InstanceBackups: Send + Sync {
    /// Takes a backup of incarnation `uid` of `name` (running), annotated with `backup_id`,
    /// connecting as `toygres_admin` with `admin_password`. Idempotent: a backup already
    /// annotated with `backup_id` is returned, not taken again; one left aborted by a crash
    /// is resumed.
    async fn backup(
        &self,
        name: &InstanceName,
        uid: &str,
        backup_id: &str,
        kind: BackupType,
        admin_password: &str,
    ) -> Result<BackupSummary, BackupError>;

    /// Takes a backup of incarnation `uid` of `name` while its server is stopped (cleanly): the
    /// final backup of a stopped instance. Idempotent like [`InstanceBackups::backup`].
    async fn backup_offline(
        &self,
        name: &InstanceName,
        uid: &str,
        backup_id: &str,
        kind: BackupType,
    ) -> Result<BackupSummary, BackupError>;

    /// Makes sure everything committed so far is in the repository: a transaction commits (so
    /// a point-in-time restore up to now finds a commit to stop at), the WAL switches, and the
    /// segment is archived.
    async fn flush_archive(
        &self,
        name: &InstanceName,
        uid: &str,
        admin_password: &str,
    ) -> Result<(), BackupError>;

    /// The backups of `stanza`, oldest first (none when it has no repository).
    async fn list(&self, stanza: &str) -> Result<Vec<BackupSummary>, BackupError>;

    /// Restores the backup `label` of `stanza` into a scratch cluster, checks it (it starts,
    /// every database's catalog and every user table reads, `pgbackrest verify` passes), and
    /// removes the scratch cluster.
    async fn verify(&self, stanza: &str, label: &str) -> Result<Verification, BackupError>;

    /// Removes everything `stanza` has in the repository (a deleted instance past retention).
    async fn remove(&self, stanza: &str) -> Result<(), BackupError>;
}
