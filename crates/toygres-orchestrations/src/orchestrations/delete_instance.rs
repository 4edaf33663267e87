//! delete-instance: (cancel a create in progress) -> stop the monitor -> deleting -> delete
//! backend resources -> deleted.
//!
//! Transient errors are retried; if it still cannot finish it ends failed with the error and
//! releases the instance, so a later delete (a new operation) can run again.

use crate::steps::{StepPolicy, call, report};
use crate::types::{DELETE_STEPS, DeleteInstanceInput};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    cancel_operation, complete_delete, delete_postgres, fail_operation, start_operation,
    stop_monitor, transition_instance,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::InstanceState;
use toygres_activities::types::*;

/// Deadline of a metadata step.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a metadata step.
const METADATA_ATTEMPTS: u32 = 10;
/// Deadline of one backend delete attempt.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// How many times to ask a create to stop (each call waits up to 5 s) before deleting anyway.
const CANCEL_ROUNDS: u32 = 12;

/// Runs the delete workflow.
pub async fn run(ctx: OrchestrationContext, input: DeleteInstanceInput) -> Result<(), String> {
    let metadata = StepPolicy::retried(METADATA_ATTEMPTS, METADATA_TIMEOUT);
    let start = StartOperationInput {
        operation_id: input.operation_id.clone(),
        name: input.name.clone(),
    };
    let proceed: bool = call(&ctx, start_operation::NAME, &start, metadata).await?;
    if !proceed {
        return Err(ActivityError::permanent(
            ErrorCode::Canceled,
            "the operation finished before it started",
        )
        .into());
    }
    if let Err((step, error)) = tear_down(&ctx, &input).await {
        let record = FailOperationInput {
            instance_id: input.instance_id,
            name: input.name.clone(),
            operation_id: input.operation_id.clone(),
            step: step.to_string(),
            error: error.clone(),
            cleanup_note: String::new(),
        };
        if let Err(record_error) =
            call::<_, ()>(&ctx, fail_operation::NAME, &record, metadata).await
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
) -> Result<(), (&'static str, ActivityError)> {
    let total = DELETE_STEPS.len() as u32;
    let metadata = StepPolicy::retried(METADATA_ATTEMPTS, METADATA_TIMEOUT);

    if let Some(create) = &input.cancels_operation_id {
        report(ctx, "cancel_create", 0, total);
        let cancel = CancelOperationInput {
            operation_id: create.clone(),
            name: input.name.clone(),
            reason: format!("canceled by delete {}", input.operation_id),
            wait_ms: 5_000,
        };
        let mut stopped = false;
        for _ in 0..CANCEL_ROUNDS {
            let output: CancelOperationOutput =
                call(ctx, cancel_operation::NAME, &cancel, metadata)
                    .await
                    .map_err(|error| ("cancel_create", error))?;
            if output.stopped {
                stopped = true;
                break;
            }
            ctx.schedule_timer(Duration::from_millis(500)).await;
        }
        if !stopped {
            ctx.trace_warn(format!(
                "create {create} did not stop in time; deleting anyway"
            ));
        }
    }

    report(ctx, "stop_monitor", 1, total);
    let stop = StopMonitorInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        wait_ms: 5_000,
    };
    let mut stopped = false;
    for _ in 0..CANCEL_ROUNDS {
        let output: StopMonitorOutput = call(ctx, stop_monitor::NAME, &stop, metadata)
            .await
            .map_err(|error| ("stop_monitor", error))?;
        if output.stopped {
            stopped = true;
            break;
        }
        ctx.schedule_timer(Duration::from_millis(500)).await;
    }
    if !stopped {
        // It stops by itself at its next check: the instance is no longer running.
        ctx.trace_warn(format!(
            "the monitor of {} did not stop in time; deleting anyway",
            input.name
        ));
    }

    report(ctx, "mark_deleting", 2, total);
    let deleting = TransitionInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        to: InstanceState::Deleting,
        message: "delete started".into(),
    };
    let _: Applied = call(ctx, transition_instance::NAME, &deleting, metadata)
        .await
        .map_err(|error| ("mark_deleting", error))?;

    report(ctx, "delete_resources", 3, total);
    let delete = DeletePostgresInput {
        name: input.name.clone(),
    };
    let policy = StepPolicy::retried(input.delete_attempts, DELETE_TIMEOUT);
    call::<_, ()>(ctx, delete_postgres::NAME, &delete, policy)
        .await
        .map_err(|error| ("delete_resources", error))?;

    report(ctx, "finalize", 4, total);
    let complete = CompleteDeleteInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
    };
    let _: Applied = call(ctx, complete_delete::NAME, &complete, metadata)
        .await
        .map_err(|error| ("finalize", error))?;
    report(ctx, "finalize", total, total);
    Ok(())
}
