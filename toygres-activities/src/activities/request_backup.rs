//! Records a scheduled backup: claims the instance and records the operation and the backup,
//! as an API request would.

use crate::activities::metadata_failure;
use crate::metadata::{NewBackup, NewOperation, ReserveError};
use crate::model::BackupType;
use crate::registry::ActivityDeps;
use crate::types::{RequestBackupInput, RequestedBackup};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RequestBackupInput`], output `Option<`[`RequestedBackup`]`>`: none
/// when the instance is busy or changed since it was found due. Retried after it recorded
/// one, it finds the same operation.
pub const NAME: &str = "toygres-activities::activity::request-backup";

/// A full backup operation on the instance, if it is still idle and unchanged.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: RequestBackupInput,
) -> Result<Option<RequestedBackup>, String> {
    // Ids derived from the request's: a retry records nothing twice.
    let seed = input.request_id.as_str();
    let operation = NewOperation {
        id: crate::ids::derived("op_", seed),
        progress_total: input.progress_total,
        idempotency: None,
        request: None,
    };
    let backup = NewBackup {
        id: crate::ids::derived("bk_", seed),
        kind: BackupType::Full,
    };
    if let Some(existing) = deps
        .metadata
        .backup(&backup.id)
        .await
        .map_err(metadata_failure)?
    {
        let instance = deps
            .metadata
            .instance(existing.instance_id)
            .await
            .map_err(metadata_failure)?;
        return Ok(instance.map(|instance| RequestedBackup {
            instance,
            operation_id: existing.operation_id,
            backup_id: existing.id,
            kind: existing.r#type,
        }));
    }
    match deps
        .metadata
        .reserve_backup(
            &input.name,
            &operation,
            &backup,
            Some(&input.last_operation_id),
        )
        .await
    {
        Ok((instance, record, row)) => Ok(Some(RequestedBackup {
            instance,
            operation_id: record.id,
            backup_id: row.id,
            kind: row.r#type,
        })),
        Err(ReserveError::Metadata(error)) => Err(metadata_failure(error).into()),
        // Busy, changed, stopped or gone: the next pass looks again.
        Err(_) => Ok(None),
    }
}
