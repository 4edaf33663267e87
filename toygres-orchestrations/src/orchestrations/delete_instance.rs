//! delete-instance: (cancel a create in progress) -> stop the monitor -> deleting -> delete
//! backend resources -> deleted.
//!
//! Every step has a deadline, and so has the whole operation. Transient errors are retried; if
//! it still cannot finish it ends failed with the error and the step, and releases the instance
//! (state `failed`), so a later delete (a new operation) can run again.

use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, start_operation, within, within_operation,
};
use crate::types::{DELETE_STEPS, DELETE_STEPS_V1_1, DeleteInstanceInput, SaveBackups};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    cancel_operation, complete_backup, complete_delete, delete_postgres, fail_operation,
    flush_archive, stop_monitor, take_backup, transition_instance,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::{InstanceState, OperationStatus};
use toygres_activities::types::*;

/// How many times to ask another workflow to stop (each call waits up to 5 s) before going on.
const STOP_ROUNDS: u32 = 12;

/// The version [`run`] is registered as (1.1.0, in the backend's default namespace, is
/// [`run_1_1`]; 1.0.0, without backups either, is [`run_1_0`]).
pub const VERSION: &str = "1.2.0";

/// The version [`run_1_1`] is registered as.
pub const VERSION_1_1: &str = "1.1.0";

/// Runs delete-instance 1.2.0: with a `save_backups` step, in the namespace the input names.
pub async fn run(ctx: OrchestrationContext, input: DeleteInstanceInput) -> Result<(), String> {
    run_with(ctx, input, &DELETE_STEPS_V1_1).await
}

/// Runs delete-instance 1.1.0 (it schedules exactly what it always did: the backend's default
/// namespace), kept for deletes running during an upgrade.
pub async fn run_1_1(
    ctx: OrchestrationContext,
    mut input: DeleteInstanceInput,
) -> Result<(), String> {
    input.namespace = None;
    run_with(ctx, input, &DELETE_STEPS_V1_1).await
}

/// Runs delete-instance 1.0.0 (it schedules exactly what it always did), kept for deletes
/// running during an upgrade.
pub async fn run_1_0(
    ctx: OrchestrationContext,
    mut input: DeleteInstanceInput,
) -> Result<(), String> {
    input.namespace = None;
    run_with(ctx, input, &DELETE_STEPS).await
}

/// The position of `step` in `steps` (steps a version does not have are never entered).
fn position(steps: &[&str], step: &str) -> u32 {
    steps
        .iter()
        .position(|candidate| *candidate == step)
        .and_then(|index| u32::try_from(index).ok())
        .unwrap_or(0)
}

async fn run_with(
    ctx: OrchestrationContext,
    input: DeleteInstanceInput,
    steps: &[&'static str],
) -> Result<(), String> {
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, steps.len() as u32);
    let limit = Duration::from_millis(input.limits.operation_timeout_ms);
    let outcome = within_operation(
        &ctx,
        &tracker,
        limit,
        "delete",
        tear_down(&ctx, &input, &tracker, steps),
    )
    .await;
    if let Err(StepFailure { step, error }) = outcome {
        let record = FailOperationInput {
            instance_id: input.instance_id,
            name: input.name.clone(),
            operation_id: input.operation_id.clone(),
            step: step.to_string(),
            error: error.clone(),
            cleanup_note: String::new(),
            settle: None,
        };
        // `None`: a history recorded before fail-operation reported its outcome.
        match call::<_, Option<FailOutcome>>(
            &ctx,
            fail_operation::NAME,
            &record,
            StepPolicy::metadata(),
        )
        .await
        {
            // The finalize committed after its deadline fired: the delete succeeded.
            Ok(Some(FailOutcome {
                recorded: false,
                status: OperationStatus::Succeeded,
            })) => {
                ctx.trace_info(format!(
                    "the delete of {} had succeeded after all",
                    input.name
                ));
                return Ok(());
            }
            Ok(_) => {}
            Err(record_error) => ctx.trace_error(format!(
                "could not record the failure of {}: {record_error}",
                input.operation_id
            )),
        }
        return Err(error.into());
    }
    Ok(())
}

async fn tear_down(
    ctx: &OrchestrationContext,
    input: &DeleteInstanceInput,
    tracker: &Tracker,
    steps: &[&'static str],
) -> Result<(), StepFailure> {
    let at = |step: &str| position(steps, step);
    let metadata = StepPolicy::metadata();
    let step_limit = Duration::from_millis(input.limits.step_timeout_ms);

    if let Some(create) = &input.cancels_operation_id {
        tracker.enter("cancel_create", at("cancel_create"));
        let cancel = CancelOperationInput {
            operation_id: create.clone(),
            name: input.name.clone(),
            reason: format!("canceled by delete {}", input.operation_id),
            wait_ms: 5_000,
        };
        let stopped = until_stopped(ctx, step_limit, "cancel_create", || async {
            call::<_, CancelOperationOutput>(ctx, cancel_operation::NAME, &cancel, metadata)
                .await
                .map(|output| output.stopped)
        })
        .await
        .map_err(StepFailure::at("cancel_create"))?;
        if !stopped {
            ctx.trace_warn(format!(
                "create {create} did not stop in time; deleting anyway"
            ));
        }
    }

    tracker.enter("stop_monitor", at("stop_monitor"));
    let stop = StopMonitorInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        wait_ms: 5_000,
        reason: None,
    };
    let stopped = until_stopped(ctx, step_limit, "stop_monitor", || async {
        call::<_, StopMonitorOutput>(ctx, stop_monitor::NAME, &stop, metadata)
            .await
            .map(|output| output.stopped)
    })
    .await
    .map_err(StepFailure::at("stop_monitor"))?;
    if !stopped {
        // It stops by itself at its next check: the instance is no longer running.
        ctx.trace_warn(format!(
            "the monitor of {} did not stop in time; deleting anyway",
            input.name
        ));
    }

    if steps.contains(&"save_backups")
        && let Some(save) = &input.save_backups
    {
        tracker.enter("save_backups", at("save_backups"));
        save_backups(ctx, input, save).await?;
    }

    tracker.enter("mark_deleting", at("mark_deleting"));
    let deleting = TransitionInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        to: InstanceState::Deleting,
        message: "delete started".into(),
    };
    let _: Applied = within(
        ctx,
        step_limit,
        "mark_deleting",
        call(ctx, transition_instance::NAME, &deleting, metadata),
    )
    .await
    .map_err(StepFailure::at("mark_deleting"))?;

    tracker.enter("delete_resources", at("delete_resources"));
    // Inputs recorded before deletes named the incarnation carry none (the activity then
    // spares running instances of the name).
    let delete = DeletePostgresInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        uid: input.uid.clone(),
    };
    let delete_limit = Duration::from_millis(input.limits.delete_timeout_ms);
    let policy = StepPolicy::retried(input.limits.delete_attempts, delete_limit);
    within(
        ctx,
        delete_limit,
        "delete_resources",
        call::<_, ()>(ctx, delete_postgres::NAME, &delete, policy),
    )
    .await
    .map_err(StepFailure::at("delete_resources"))?;

    tracker.enter("finalize", at("finalize"));
    let complete = CompleteDeleteInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
    };
    let _: Applied = within(
        ctx,
        step_limit,
        "finalize",
        call(ctx, complete_delete::NAME, &complete, metadata),
    )
    .await
    .map_err(StepFailure::at("finalize"))?;
    tracker.finish();
    Ok(())
}

/// Takes the final backup asked for (a failure fails the delete: the instance stays), or else
/// archives the current WAL of a running instance (a failure is only traced: broken archiving
/// must not keep an instance from being deleted).
async fn save_backups(
    ctx: &OrchestrationContext,
    input: &DeleteInstanceInput,
    save: &SaveBackups,
) -> Result<(), StepFailure> {
    let Some(uid) = &input.uid else {
        return Ok(());
    };
    let limit = Duration::from_millis(save.timeout_ms);
    let policy = StepPolicy::retried(3, limit).retrying_timeouts();
    match &save.final_backup_id {
        Some(backup_id) => {
            let take = TakeBackupInput {
                name: input.name.clone(),
                uid: uid.clone(),
                backup_id: backup_id.clone(),
                kind: toygres_activities::model::BackupType::Full,
                sealed_admin_password: save.sealed_admin_password.clone(),
                offline: !save.online,
            };
            let summary: BackupSummary = within(
                ctx,
                limit,
                "save_backups",
                call(ctx, take_backup::NAME, &take, policy),
            )
            .await
            .map_err(StepFailure::at("save_backups"))?;
            let complete = CompleteBackupInput {
                name: input.name.clone(),
                instance_id: input.instance_id,
                uid: uid.clone(),
                backup_id: backup_id.clone(),
                summary,
                finish_operation: false,
            };
            call::<_, Applied>(
                ctx,
                complete_backup::NAME,
                &complete,
                StepPolicy::metadata(),
            )
            .await
            .map_err(StepFailure::at("save_backups"))?;
        }
        None if save.online => {
            let flush = FlushArchiveInput {
                name: input.name.clone(),
                instance_id: input.instance_id,
                uid: uid.clone(),
                sealed_admin_password: save.sealed_admin_password.clone(),
            };
            if let Err(error) = within(
                ctx,
                limit,
                "save_backups",
                call::<_, Flushed>(ctx, flush_archive::NAME, &flush, policy),
            )
            .await
            {
                ctx.trace_warn(format!(
                    "the WAL of {} could not be archived before the delete: {error}",
                    input.name
                ));
            }
        }
        None => {}
    }
    Ok(())
}

/// Calls an activity that stops another workflow until it reports it stopped: at most
/// [`STOP_ROUNDS`] calls with a durable pause between them, within the step deadline. Waiting
/// past the deadline is not a failure of the delete: it goes on (`Ok(false)`), and the other
/// workflow finds the instance gone.
async fn until_stopped<F, Fut>(
    ctx: &OrchestrationContext,
    limit: Duration,
    what: &str,
    mut attempt: F,
) -> Result<bool, ActivityError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ActivityError>>,
{
    let rounds = async {
        for _ in 0..STOP_ROUNDS {
            if attempt().await? {
                return Ok(true);
            }
            ctx.schedule_timer(Duration::from_millis(500)).await;
        }
        Ok(false)
    };
    match within(ctx, limit, what, rounds).await {
        Err(error) if error.code == ErrorCode::DeadlineExceeded => Ok(false),
        outcome => outcome,
    }
}
