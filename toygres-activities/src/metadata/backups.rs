//! Backup rows and what instances keep of their backups: the API's reservations of backup and
//! verify operations, the workflows' records of their outcome, the archive status the monitor
//! sees, and what the backup scheduler needs.

use super::records::{BackupRecord, InstanceRecord, OperationRecord};
use super::reservations::{Claim, NewOperation, ReserveError};
use super::{MetadataError, MetadataStore, Page};
use crate::backup::info::BackupSummary;
use crate::model::{BackupType, OperationKind};
use crate::validation::InstanceName;
use chrono::{DateTime, Utc};

/// A backup a request asks for.
#[derive(Debug, Clone)]
pub struct NewBackup {
    /// `bk_` + random.
    pub id: String,
    /// Full, differential or incremental.
    pub kind: BackupType,
}

const INSERT_BACKUP: &str = "INSERT INTO backups \
    (id, instance_id, instance_name, stanza, type, status, operation_id) \
    VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING *";

/// The backups of an instance, newest first, before a `(started_at, id)` cursor.
const BACKUPS_OF_INSTANCE: &str = "SELECT * FROM backups WHERE instance_id = $1 \
    AND (started_at, id) < ($2, $3) ORDER BY started_at DESC, id DESC LIMIT $4";

impl MetadataStore {
    /// Claims the running instance `name` for a backup operation and records the backup
    /// (`running`), in one transaction.
    pub async fn reserve_backup(
        &self,
        name: &InstanceName,
        operation: &NewOperation,
        backup: &NewBackup,
        unchanged_since: Option<&str>,
    ) -> Result<(InstanceRecord, OperationRecord, BackupRecord), ReserveError> {
        let claim = Claim {
            unchanged_since: unchanged_since.map(str::to_string),
            ..Claim::of(OperationKind::Backup)
        };
        let mut tx = self.pool().begin().await?;
        let (instance, record) =
            super::reservations::claim_in(&mut tx, name, operation, &claim).await?;
        let row = insert_backup(&mut tx, &instance, &record.id, backup).await?;
        tx.commit().await?;
        Ok((instance, record, row))
    }

    /// The backup operation `operation_id` takes (a backup, or a delete's final one).
    pub async fn backup_of_operation(
        &self,
        operation_id: &str,
    ) -> Result<Option<BackupRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT * FROM backups WHERE operation_id = $1 ORDER BY started_at LIMIT 1",
        )
        .bind(operation_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a verify of backup `backup_id` of instance `instance_id` (live or deleted): it
    /// holds no instance, so it runs whatever the instance does. The backup must have
    /// succeeded and still be kept.
    pub async fn reserve_verify(
        &self,
        instance_id: i64,
        backup_id: &str,
        operation: &NewOperation,
    ) -> Result<(InstanceRecord, OperationRecord, BackupRecord), ReserveError> {
        let mut tx = self.pool().begin().await?;
        let backup: Option<BackupRecord> =
            sqlx::query_as("SELECT * FROM backups WHERE id = $1 AND instance_id = $2 FOR UPDATE")
                .bind(backup_id)
                .bind(instance_id)
                .fetch_optional(&mut *tx)
                .await?;
        let backup = backup.ok_or(ReserveError::NotFound)?;
        if backup.status != crate::model::BackupStatus::Succeeded || backup.expired_at.is_some() {
            return Err(ReserveError::Invalid {
                field: "id",
                message: format!(
                    "backup {backup_id} is {}{}: only a succeeded backup that is still kept can be verified",
                    backup.status,
                    if backup.expired_at.is_some() {
                        " and expired"
                    } else {
                        ""
                    }
                ),
            });
        }
        let instance: InstanceRecord = sqlx::query_as("SELECT * FROM instances WHERE id = $1")
            .bind(instance_id)
            .fetch_one(&mut *tx)
            .await?;
        let record = super::reservations::insert_operation(
            &mut tx,
            operation,
            OperationKind::VerifyBackup,
            &instance,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok((instance, record, backup))
    }

    /// Records a backup that pgBackRest finished: its row succeeded with what pgBackRest says,
    /// the instance's newest backup and restore window; with `finish_operation`, the backup
    /// operation succeeded and the instance released. Idempotent. Returns whether it applied.
    pub async fn complete_backup(
        &self,
        backup_id: &str,
        summary: &BackupSummary,
        finish_operation: bool,
    ) -> Result<bool, MetadataError> {
        let mut tx = self.pool().begin().await?;
        let row: Option<BackupRecord> = sqlx::query_as(
            "UPDATE backups SET status = 'succeeded', label = $2, finished_at = COALESCE(finished_at, now()), \
             consistent_at = $3, size_bytes = $4, repo_size_bytes = $5, start_lsn = $6, stop_lsn = $7, \
             error_code = NULL, error_message = NULL \
             WHERE id = $1 AND status IN ('running', 'succeeded') RETURNING *",
        )
        .bind(backup_id)
        .bind(&summary.label)
        .bind(summary.stopped_at)
        .bind(summary.size_bytes)
        .bind(summary.repo_size_bytes)
        .bind(&summary.start_lsn)
        .bind(&summary.stop_lsn)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        refresh_window(&mut tx, row.instance_id).await?;
        if finish_operation {
            let result = serde_json::json!({
                "backup_id": row.id,
                "label": summary.label,
                "size_bytes": summary.size_bytes,
                "repo_size_bytes": summary.repo_size_bytes,
            });
            let released: Option<InstanceRecord> = sqlx::query_as(
                "UPDATE instances SET active_operation_id = NULL, updated_at = now() \
                 WHERE id = $1 AND active_operation_id = $2 RETURNING *",
            )
            .bind(row.instance_id)
            .bind(&row.operation_id)
            .fetch_optional(&mut *tx)
            .await?;
            let finished =
                super::transitions::finish_succeeded(&mut tx, &row.operation_id, Some(&result))
                    .await?;
            if let Some(instance) = &released {
                super::transitions::insert_event(
                    &mut tx,
                    instance,
                    "backup_taken",
                    &format!("{} backup {} ({})", row.r#type, row.id, summary.label),
                    Some(&row.operation_id),
                )
                .await?;
            }
            tx.commit().await?;
            super::transitions::count_finished(finished, "succeeded");
            return Ok(true);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the backups of `instance_id` that pgBackRest no longer lists (retention removed
    /// them) expired, and recomputes the instance's restore window. Returns how many expired.
    pub async fn sync_expired_backups(
        &self,
        instance_id: i64,
        kept_labels: &[String],
    ) -> Result<u64, MetadataError> {
        let mut tx = self.pool().begin().await?;
        let expired = sqlx::query(
            "UPDATE backups SET expired_at = now() WHERE instance_id = $1 AND status = 'succeeded' \
             AND expired_at IS NULL AND label IS NOT NULL AND NOT (label = ANY($2))",
        )
        .bind(instance_id)
        .bind(kept_labels)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        refresh_window(&mut tx, instance_id).await?;
        tx.commit().await?;
        Ok(expired)
    }

    /// Records the outcome of a verify on its backup, and finishes the verify operation.
    pub async fn record_verification(
        &self,
        backup_id: &str,
        operation_id: &str,
        verification: &serde_json::Value,
    ) -> Result<bool, MetadataError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE backups SET verified_at = now(), verification = $2 WHERE id = $1")
            .bind(backup_id)
            .bind(verification)
            .execute(&mut *tx)
            .await?;
        let finished =
            super::transitions::finish_succeeded(&mut tx, operation_id, Some(verification)).await?;
        tx.commit().await?;
        let applied = finished.is_some();
        super::transitions::count_finished(finished, "succeeded");
        Ok(applied)
    }

    /// Records a failed verify on its backup (the operation's failure is recorded apart).
    pub async fn record_failed_verification(
        &self,
        backup_id: &str,
        verification: &serde_json::Value,
    ) -> Result<(), MetadataError> {
        sqlx::query("UPDATE backups SET verified_at = now(), verification = $2 WHERE id = $1")
            .bind(backup_id)
            .bind(verification)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A backup by id.
    pub async fn backup(&self, id: &str) -> Result<Option<BackupRecord>, MetadataError> {
        Ok(sqlx::query_as("SELECT * FROM backups WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The backups of instance `instance_id`, newest first, before the `(started_at, id)`
    /// cursor.
    pub async fn backups_of(
        &self,
        instance_id: i64,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Page<BackupRecord>, MetadataError> {
        let (before_at, before_id) = before.unwrap_or((DateTime::<Utc>::MAX_UTC, String::new()));
        let rows = sqlx::query_as(BACKUPS_OF_INSTANCE)
            .bind(instance_id)
            .bind(before_at)
            .bind(before_id)
            .bind(limit + 1)
            .fetch_all(self.pool())
            .await?;
        Ok(Page::from_rows(rows, limit))
    }

    /// Records whether the WAL archiving of instance `instance_id` works; a change is an event.
    /// Returns whether it changed.
    pub async fn record_archive_status(
        &self,
        instance_id: i64,
        failing: bool,
        detail: &str,
    ) -> Result<bool, MetadataError> {
        let status = if failing { "failing" } else { "ok" };
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET backup_status = $2 WHERE id = $1 AND backup_status <> $2 \
             AND state <> 'deleted' RETURNING *",
        )
        .bind(instance_id)
        .bind(status)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(instance) = &changed {
            let message = if failing {
                format!("backups failing: WAL archiving failed: {detail}")
            } else {
                "backups ok: WAL archiving works again".to_string()
            };
            super::transitions::insert_event(
                &mut tx,
                instance,
                "backup_status_changed",
                &message,
                None,
            )
            .await?;
            metrics::counter!("toygres_archive_status_changes_total", "status" => status)
                .increment(1);
        }
        tx.commit().await?;
        Ok(changed.is_some())
    }

    /// Records that everything instance `instance_id` committed up to `at` is archived (its
    /// server stops or goes).
    pub async fn set_archived_until(
        &self,
        instance_id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), MetadataError> {
        sqlx::query("UPDATE instances SET archived_until = $2 WHERE id = $1")
            .bind(instance_id)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Running, idle instances with the control plane's roles whose newest succeeded backup
    /// started before `success_before` (or that have none) and whose newest failed attempt
    /// (if any) started before `failure_before`, least recently backed up first, at most
    /// `limit`.
    pub async fn instances_due_for_backup(
        &self,
        success_before: DateTime<Utc>,
        failure_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT i.* FROM instances i \
             LEFT JOIN LATERAL (SELECT max(b.started_at) FILTER (WHERE b.status = 'succeeded') AS ok, \
                                       max(b.started_at) FILTER (WHERE b.status = 'failed') AS failed \
                                FROM backups b WHERE b.instance_id = i.id) last ON true \
             WHERE i.state = 'running' AND i.active_operation_id IS NULL AND i.roles_version >= $4 \
             AND i.host IS NOT NULL AND (last.ok IS NULL OR last.ok < $1) \
             AND (last.failed IS NULL OR last.failed < $2) \
             ORDER BY last.ok NULLS FIRST, i.id LIMIT $3",
        )
        .bind(success_before)
        .bind(failure_before)
        .bind(limit)
        .bind(crate::roles::ROLES_VERSION)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deleted instances deleted before `deleted_before` whose backups were not removed yet.
    pub async fn deleted_instances_with_backups(
        &self,
        deleted_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT i.* FROM instances i WHERE i.state = 'deleted' AND i.deleted_at < $1 \
             AND i.backups_expired_at IS NULL \
             AND EXISTS (SELECT 1 FROM backups b WHERE b.instance_id = i.id) \
             ORDER BY i.deleted_at LIMIT $2",
        )
        .bind(deleted_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records that the backups of deleted instance `instance_id` were removed.
    pub async fn mark_backups_expired(&self, instance_id: i64) -> Result<(), MetadataError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE backups SET expired_at = COALESCE(expired_at, now()) WHERE instance_id = $1",
        )
        .bind(instance_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE instances SET backups_expired_at = now(), restorable_from = NULL WHERE id = $1",
        )
        .bind(instance_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Records `backup` of `instance`, taken by operation `operation_id` (`running`).
pub(super) async fn insert_backup(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    instance: &InstanceRecord,
    operation_id: &str,
    backup: &NewBackup,
) -> Result<BackupRecord, sqlx::Error> {
    sqlx::query_as(INSERT_BACKUP)
        .bind(&backup.id)
        .bind(instance.id)
        .bind(&instance.name)
        .bind(&instance.uid)
        .bind(backup.kind.as_str())
        .bind(operation_id)
        .fetch_one(&mut **tx)
        .await
}

/// Recomputes an instance's newest backup and the start of its restore window from its kept,
/// succeeded backups.
async fn refresh_window(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    instance_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE instances SET \
           last_backup_at = (SELECT max(consistent_at) FROM backups WHERE instance_id = $1 AND status = 'succeeded'), \
           restorable_from = (SELECT min(consistent_at) FROM backups WHERE instance_id = $1 \
             AND status = 'succeeded' AND expired_at IS NULL), \
           backup_status = CASE WHEN backup_status = 'none' THEN 'ok' ELSE backup_status END \
         WHERE id = $1",
    )
    .bind(instance_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
