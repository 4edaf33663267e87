//! backup-instance: pgBackRest takes the backup (resuming one a crash aborted; annotated, so a
//! retry never takes a second) -> the backup row succeeded, the instance's restore window
//! grows, and the instance is released. A failure leaves the row `failed` with the reason.

use crate::change::Change;
use crate::steps::StepFailure;
use crate::types::{BACKUP_STEPS, BackupInstanceInput};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{complete_backup, take_backup};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::types::{Applied, BackupSummary, CompleteBackupInput, TakeBackupInput};

/// Runs the backup workflow.
pub async fn run(ctx: OrchestrationContext, input: BackupInstanceInput) -> Result<(), String> {
    let change = Change::begin(&ctx, &input.target, &BACKUP_STEPS, "backup").await?;
    let outcome = change.within_deadline(backup(&change, &input)).await;
    change.finish(outcome).await
}

async fn backup(change: &Change<'_>, input: &BackupInstanceInput) -> Result<(), StepFailure> {
    let target = change.target;
    change.enter("backup", 0);
    let take = TakeBackupInput {
        name: target.name.clone(),
        uid: target.uid.clone(),
        backup_id: input.backup_id.clone(),
        kind: input.kind,
        sealed_admin_password: target.sealed_admin_password.clone(),
        offline: false,
    };
    let summary: BackupSummary = change
        .call_within(
            "backup",
            take_backup::NAME,
            &take,
            Duration::from_millis(input.backup_timeout_ms),
        )
        .await?;

    change.enter("finalize", 1);
    let complete = CompleteBackupInput {
        name: target.name.clone(),
        instance_id: target.instance_id,
        uid: target.uid.clone(),
        backup_id: input.backup_id.clone(),
        summary,
        finish_operation: true,
    };
    let applied: Applied = change
        .call_within(
            "finalize",
            complete_backup::NAME,
            &complete,
            change.step_limit(),
        )
        .await?;
    if !applied.applied {
        return Err(StepFailure {
            step: "finalize",
            error: ActivityError::permanent(
                ErrorCode::InvalidState,
                format!("backup {} had already ended", input.backup_id),
            ),
        });
    }
    change.tracker.finish();
    Ok(())
}
