//! Backups through the control plane: taking one, verifying one, listing an instance's, the
//! restore window, and planning a create's restore. Each operation goes through
//! [`ControlPlane::accept`] like every kind.

use super::accept::Reserved;
use super::{Accepted, ControlPlane, Idempotency, ServiceError, random_id};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toygres_activities::metadata::{BackupRecord, InstanceRecord, NewBackup, Page};
use toygres_activities::model::{BackupType, InstanceState, OperationKind};
use toygres_activities::seal::SealedSecret;
use toygres_activities::types::{FlushArchiveInput, RestoreSource, RestoreTarget};
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::RestorePlan;

/// How backups are scheduled and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPolicy {
    /// Time between an instance's scheduled full backups.
    pub interval: Duration,
    /// After a failed backup, the next attempt waits this long.
    pub retry: Duration,
    /// Days backups are kept.
    pub retention_days: u32,
    /// Time between passes of the scheduler.
    pub tick: Duration,
    /// How long one backup, restore or verify may take.
    pub timeout: Duration,
}

/// Where a create's data comes from, as the request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// The source instance's name (live, or deleted with its backups kept).
    pub instance: InstanceName,
    /// A backup of it to restore the end of.
    pub backup_id: Option<String>,
    /// A moment to restore to.
    pub point_in_time: Option<DateTime<Utc>>,
}

/// What a verify records with its operation: the backup it checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct VerifyRecord {
    /// The backup.
    pub backup_id: String,
}

/// The window a restore of `instance`'s backups can reach: from the end of its oldest kept
/// backup to now (it runs and archives) or to what was archived when it stopped or went.
pub fn restore_window(instance: &InstanceRecord) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let earliest = instance.restorable_from?;
    if instance.backups_expired_at.is_some() {
        return None;
    }
    let latest = match instance.state {
        InstanceState::Running | InstanceState::Updating => Utc::now(),
        _ => [instance.archived_until, instance.last_backup_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(earliest),
    };
    Some((earliest, latest.max(earliest)))
}

impl ControlPlane {
    /// Whether this control plane backs instances up.
    pub fn archives(&self) -> bool {
        self.backups.is_some() && self.backend.backups().is_some()
    }

    /// The backup policy, or a `422 unsupported_by_backend` saying why there is none.
    pub(super) fn backup_policy(&self) -> Result<&BackupPolicy, ServiceError> {
        match &self.backups {
            Some(policy) if self.backend.backups().is_some() => Ok(policy),
            Some(_) => Err(ServiceError::UnsupportedByBackend(format!(
                "the {} backend does not run backups yet",
                self.backend_kind
            ))),
            None => Err(ServiceError::UnsupportedByBackend(
                "backups are off on this server (TOYGRES_BACKUPS=false)".into(),
            )),
        }
    }

    /// Takes a backup of a running instance (`full` unless `kind` says otherwise).
    pub async fn backup(
        &self,
        name: &InstanceName,
        kind: Option<BackupType>,
        idempotency: Option<Idempotency>,
    ) -> Result<(Accepted, BackupRecord), ServiceError> {
        self.backup_policy()?;
        let backup = NewBackup {
            id: random_id("bk_"),
            kind: kind.unwrap_or(BackupType::Full),
        };
        let backup = &backup;
        let accepted = self
            .accept(
                OperationKind::Backup,
                idempotency,
                None,
                |operation| async move {
                    let (instance, record, _) = self
                        .metadata
                        .reserve_backup(name, &operation, backup, None)
                        .await?;
                    Ok(Reserved::new(instance, record))
                },
            )
            .await?;
        let row = self
            .metadata
            .backup_of_operation(&accepted.operation.record.id)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal("a backup operation without its backup".into())
            })?;
        Ok((accepted, row))
    }

    /// Verifies backup `backup_id` of the instance named `name` (live, or the latest deleted one
    /// while its backups are kept).
    pub async fn verify_backup(
        &self,
        name: &InstanceName,
        backup_id: &str,
        idempotency: Option<Idempotency>,
    ) -> Result<(Accepted, BackupRecord), ServiceError> {
        self.backup_policy()?;
        let instance = self
            .metadata
            .latest_instance(name.as_str())
            .await?
            .ok_or(ServiceError::NotFound)?;
        let request = serde_json::to_value(VerifyRecord {
            backup_id: backup_id.to_string(),
        })
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
        let instance_id = instance.id;
        let accepted = self
            .accept(
                OperationKind::VerifyBackup,
                idempotency,
                Some(request),
                |operation| async move {
                    let (instance, record, _) = self
                        .metadata
                        .reserve_verify(instance_id, backup_id, &operation)
                        .await?;
                    Ok(Reserved::new(instance, record))
                },
            )
            .await?;
        let record: VerifyRecord = serde_json::from_value(
            accepted
                .operation
                .record
                .request
                .clone()
                .unwrap_or_default(),
        )
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
        let row = self
            .metadata
            .backup(&record.backup_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok((accepted, row))
    }

    /// The backups of the instance named `name` (live, or the latest deleted one), newest first.
    pub async fn backups_of(
        &self,
        name: &InstanceName,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Page<BackupRecord>, ServiceError> {
        let instance = self
            .metadata
            .latest_instance(name.as_str())
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(self.metadata.backups_of(instance.id, before, limit).await?)
    }

    /// Plans a create's restore: the source (the live instance of the name, else the latest
    /// deleted one whose backups are kept), the target (a named backup's end, a point in time
    /// inside the restore window, or latest), and whether the source's current WAL must be
    /// archived first. Returns the plan and the source.
    pub(super) async fn restore_plan(
        &self,
        request: &RestoreRequest,
    ) -> Result<(RestorePlan, InstanceRecord), ServiceError> {
        let policy = self.backup_policy()?;
        let field = |name: &str| format!("restore_from.{name}");
        let source = match self
            .metadata
            .live_instance(request.instance.as_str())
            .await?
        {
            Some(live) => live,
            None => self
                .metadata
                .latest_instance(request.instance.as_str())
                .await?
                .ok_or_else(|| {
                    ServiceError::invalid(field("instance"), "no instance has this name")
                })?,
        };
        let Some((earliest, latest)) = restore_window(&source) else {
            return Err(ServiceError::invalid(
                field("instance"),
                format!(
                    "{} has no backup to restore from{}",
                    source.name,
                    if source.backups_expired_at.is_some() {
                        " (its backups expired)"
                    } else {
                        " yet"
                    }
                ),
            ));
        };
        let window = || {
            format!(
                "the restore window of {} is {} to {}",
                source.name,
                earliest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        };
        let target = match (&request.backup_id, request.point_in_time) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::invalid(
                    field("point_in_time"),
                    "give a backup_id or a point_in_time, not both",
                ));
            }
            (Some(backup_id), None) => {
                let backup = self
                    .metadata
                    .backup(backup_id)
                    .await?
                    .filter(|backup| backup.instance_id == source.id)
                    .ok_or_else(|| {
                        ServiceError::invalid(
                            field("backup_id"),
                            format!("{} has no backup {backup_id}", source.name),
                        )
                    })?;
                match (&backup.label, backup.expired_at) {
                    (Some(label), None)
                        if backup.status == toygres_activities::model::BackupStatus::Succeeded =>
                    {
                        RestoreTarget::Backup {
                            label: label.clone(),
                        }
                    }
                    _ => {
                        return Err(ServiceError::invalid(
                            field("backup_id"),
                            format!(
                                "backup {backup_id} is {}: only a succeeded backup that is still kept can be restored",
                                if backup.expired_at.is_some() {
                                    "expired".to_string()
                                } else {
                                    backup.status.to_string()
                                }
                            ),
                        ));
                    }
                }
            }
            (None, Some(at)) if at < earliest || at > latest => {
                return Err(ServiceError::invalid(
                    field("point_in_time"),
                    format!(
                        "{} is outside the restore window: {}",
                        at.to_rfc3339(),
                        window()
                    ),
                ));
            }
            (None, Some(at)) => RestoreTarget::Time { at },
            (None, None) => RestoreTarget::Latest,
        };
        // A running source archives its current WAL first, so the target is in the archive
        // (and a commit after it, for a time target); a stopped or deleted one flushed it when
        // it stopped or went.
        let flush = match (&target, source.state) {
            (RestoreTarget::Backup { .. }, _) => None,
            (_, InstanceState::Running) => Some(FlushArchiveInput {
                name: InstanceName::parse(&source.name)
                    .map_err(|error| ServiceError::Internal(error.to_string()))?,
                instance_id: source.id,
                uid: source.uid.clone(),
                sealed_admin_password: source
                    .sealed_admin_password
                    .clone()
                    .map(SealedSecret::from_stored)
                    .ok_or_else(|| ServiceError::Internal("a source without roles".into()))?,
            }),
            _ => None,
        };
        let plan = RestorePlan {
            source: RestoreSource {
                stanza: source.uid.clone(),
                target,
            },
            flush,
            restore_timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        Ok((plan, source))
    }
}
