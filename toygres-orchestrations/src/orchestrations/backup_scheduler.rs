//! backup-scheduler: one per control plane. Every tick (a durable timer) it asks which running
//! instances are due for a backup (none within the interval, no failed attempt within the
//! retry pause: a new instance is due at once, so its restore window starts at its creation) and
//! starts a backup operation on each, recorded as an API request's would be; and it removes
//! the backups of deleted instances past retention. Stopped instances are never due.
//! Continues as new every few ticks and prunes its history.

use crate::steps::{StepPolicy, call};
use crate::types::{BACKUP_STEPS, BackupInstanceInput, BackupSchedulerInput, OperationTarget};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{expire_backups, plan_backups, prune_history, request_backup};
use toygres_activities::types::{
    BackupPlan, ExpireBackupsInput, PruneHistoryInput, RequestBackupInput, RequestedBackup,
};

/// How much longer than the backup itself a backup operation may take in all.
const OPERATION_MARGIN_MS: u64 = 600_000;

/// Runs the scheduler.
pub async fn run(ctx: OrchestrationContext, input: BackupSchedulerInput) -> Result<(), String> {
    if input.generation > 0 {
        let prune = PruneHistoryInput {
            workflow_id: input.workflow_id.clone(),
            name: toygres_activities::validation::InstanceName::parse("backup-scheduler")
                .map_err(|error| error.to_string())?,
        };
        if let Err(error) = call::<_, u64>(
            &ctx,
            prune_history::NAME,
            &prune,
            StepPolicy::retried(2, Duration::from_secs(30)),
        )
        .await
        {
            ctx.trace_warn(format!("pruning the scheduler's history failed: {error}"));
        }
    }
    for tick in 0..input.ticks_per_execution.max(1) {
        ctx.schedule_timer(Duration::from_millis(input.tick_ms.max(100)))
            .await;
        let plan = match call::<_, BackupPlan>(
            &ctx,
            plan_backups::NAME,
            &input.plan,
            StepPolicy::retried(2, Duration::from_secs(60)),
        )
        .await
        {
            Ok(plan) => plan,
            Err(error) => {
                ctx.trace_warn(format!("planning backups failed: {error}"));
                continue;
            }
        };
        for (instance_id, name, last_operation_id) in plan.due {
            let request = RequestBackupInput {
                name: name.clone(),
                last_operation_id,
                progress_total: BACKUP_STEPS.len() as i32,
                request_id: format!(
                    "{}-{}-{tick}-{instance_id}",
                    input.workflow_id, input.generation
                ),
            };
            match call::<_, Option<RequestedBackup>>(
                &ctx,
                request_backup::NAME,
                &request,
                StepPolicy::metadata(),
            )
            .await
            {
                Ok(Some(requested)) => start_backup(&ctx, &input, requested),
                Ok(None) => {}
                Err(error) => {
                    ctx.trace_warn(format!("requesting a backup of {name} failed: {error}"))
                }
            }
        }
        for (instance_id, name, stanza) in plan.expired {
            let expire = ExpireBackupsInput {
                name: name.clone(),
                instance_id,
                stanza,
            };
            if let Err(error) = call::<_, ()>(
                &ctx,
                expire_backups::NAME,
                &expire,
                StepPolicy::retried(2, Duration::from_secs(300)),
            )
            .await
            {
                ctx.trace_warn(format!("removing the backups of {name} failed: {error}"));
            }
        }
    }
    let next = BackupSchedulerInput {
        generation: input.generation + 1,
        ..input
    };
    ctx.continue_as_new_typed(&next).await.map(|_| ())
}

/// Starts the backup operation the request recorded.
fn start_backup(
    ctx: &OrchestrationContext,
    input: &BackupSchedulerInput,
    requested: RequestedBackup,
) {
    let mut limits = input.limits.clone();
    limits.operation_timeout_ms = limits
        .operation_timeout_ms
        .max(input.backup_timeout_ms.saturating_add(OPERATION_MARGIN_MS));
    match OperationTarget::for_instance(
        &requested.instance,
        &requested.operation_id,
        limits,
        input.health.clone(),
    ) {
        Ok(target) => {
            let backup = BackupInstanceInput {
                target,
                backup_id: requested.backup_id,
                kind: requested.kind,
                backup_timeout_ms: input.backup_timeout_ms,
            };
            ctx.schedule_orchestration_typed(
                crate::names::BACKUP_INSTANCE,
                &requested.operation_id,
                &backup,
            );
        }
        // The reconciler starts the recorded operation (and settles it if it cannot).
        Err(error) => ctx.trace_warn(format!(
            "cannot start backup {}: {error}",
            requested.operation_id
        )),
    }
}
