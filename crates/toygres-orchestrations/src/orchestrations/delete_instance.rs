//! delete-instance: (cancel a create in progress) -> stop the monitor -> deleting -> delete
//! backend resources -> deleted.
//!
//! Every step has a deadline, and so has the whole operation. Transient errors are retried; if
//! it still cannot finish it ends failed with the error and the step, and releases the instance
//! (state `failed`), so a later delete (a new operation) can run again.

use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, start_operation, within, within_operation,
};
use crate::types::{DELETE_STEPS, DeleteInstanceInput};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    cancel_operation, complete_delete, delete_postgres, fail_operation, stop_monitor,
    transition_instance,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::InstanceState;
use toygres_activities::types::*;

/// How many times to ask another workflow to stop (each call waits up to 5 s) before going on.
const STOP_ROUNDS: u32 = 12;

/// Runs the delete workflow.
pub async fn run(ctx: OrchestrationContext, input: DeleteInstanceInput) -> Result<(), String> {
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, DELETE_STEPS.len() as u32);
    let limit = Duration::from_millis(input.limits.operation_timeout_ms);
    let outcome = within_operation(
        &ctx,
        &tracker,
        limit,
        "delete",
        tear_down(&ctx, &input, &tracker),
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
        };
        if let Err(record_error) =
            call::<_, ()>(&ctx, fail_operation::NAME, &record, StepPolicy::metadata()).await
        {
            ctx.trace_error(format!(
                "could not record the failure of {}: {record_error}",
                input.operation_id
            ));
        }
        return Err(error.into());
    }
    Ok(())
}

async fn tear_down(
    ctx: &OrchestrationContext,
    input: &DeleteInstanceInput,
    tracker: &Tracker,
) -> Result<(), StepFailure> {
    let metadata = StepPolicy::metadata();
    let step_limit = Duration::from_millis(input.limits.step_timeout_ms);

    if let Some(create) = &input.cancels_operation_id {
        tracker.enter("cancel_create", 0);
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

    tracker.enter("stop_monitor", 1);
    let stop = StopMonitorInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        wait_ms: 5_000,
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

    tracker.enter("mark_deleting", 2);
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

    tracker.enter("delete_resources", 3);
    let delete = DeletePostgresInput {
        name: input.name.clone(),
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

    tracker.enter("finalize", 4);
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
