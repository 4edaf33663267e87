//! create-instance 1.0.0, kept for creates that were running when the server was upgraded:
//! deploy (the owner is the bootstrap superuser) -> wait until ready -> connection info -> test
//! connection -> running, then start the instance's monitor; on failure, remove what was
//! deployed, then record `failed`. It schedules exactly what it always did; the reconciler
//! later moves its instances onto the control plane's roles. New creates run [`super::run`].

use super::steps::{self, Flavor};
use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, start_operation, within, within_operation,
};
use crate::types::{CREATE_STEPS_V1_0, CreateInstanceInput, CreateInstanceOutput};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{delete_postgres, fail_operation};
use toygres_activities::error::ActivityError;
use toygres_activities::types::*;

/// How 1.0.0 retried its steps.
const FLAVOR: Flavor = Flavor {
    retry_timeouts: false,
    parameters: false,
    restores: false,
    namespaces: false,
};

/// Runs create-instance 1.0.0.
pub async fn run(
    ctx: OrchestrationContext,
    mut input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    // 1.0.0 deployed into the backend's default namespace, whatever the input.
    input.namespace = None;
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, CREATE_STEPS_V1_0.len() as u32);
    let limit = Duration::from_millis(input.limits.operation_timeout_ms);
    let outcome = within_operation(
        &ctx,
        &tracker,
        limit,
        "create",
        provision(&ctx, &input, &tracker),
    )
    .await;
    match outcome {
        Ok(output) => Ok(output),
        Err(failure) => Err(clean_up_and_fail(&ctx, &input, failure).await.into()),
    }
}

async fn provision(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    tracker: &Tracker,
) -> Result<CreateInstanceOutput, StepFailure> {
    tracker.enter("deploy", 0);
    steps::deploy(ctx, input, None, &input.sealed_password, FLAVOR).await?;
    tracker.enter("wait_ready", 1);
    steps::wait_ready(ctx, input, FLAVOR).await?;
    tracker.enter("connection_info", 2);
    let info = steps::connection_info(ctx, input, FLAVOR).await?;
    tracker.enter("test_connection", 3);
    let step_limit = Duration::from_millis(input.limits.step_timeout_ms);
    let tested = within(
        ctx,
        step_limit,
        "test_connection",
        steps::probe(
            ctx,
            input,
            &info,
            &input.user,
            &input.sealed_password,
            FLAVOR,
        ),
    )
    .await
    .map_err(StepFailure::at("test_connection"))?;
    tracker.enter("finalize", 4);
    steps::finalize(ctx, input, &info, &tested).await?;
    steps::start_monitor(ctx, input, &info, &input.user, &input.sealed_password);
    tracker.finish();
    Ok(CreateInstanceOutput {
        host: info.host,
        port: info.port,
        server_version: tested.server_version,
    })
}

/// Removes whatever was deployed, then records the failure. Returns the error to end with.
async fn clean_up_and_fail(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    failure: StepFailure,
) -> ActivityError {
    crate::steps::report(ctx, "cleanup", 0, CREATE_STEPS_V1_0.len() as u32);
    ctx.trace_warn(format!(
        "create of {} failed in {}: {}",
        input.name, failure.step, failure.error
    ));
    let delete = DeletePostgresInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        uid: None,
    };
    let policy = StepPolicy::retried(5, Duration::from_secs(120));
    let cleanup_note = match call::<_, ()>(ctx, delete_postgres::NAME, &delete, policy).await {
        Ok(()) => "; backend resources removed".to_string(),
        Err(error) => format!(
            "; cleanup failed, delete the instance to retry: {}",
            error.message
        ),
    };
    let record = FailOperationInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        step: failure.step.to_string(),
        error: failure.error.clone(),
        cleanup_note,
        settle: None,
    };
    let recorded = call::<_, serde::de::IgnoredAny>(
        ctx,
        fail_operation::NAME,
        &record,
        StepPolicy::metadata(),
    )
    .await;
    if let Err(error) = recorded {
        ctx.trace_error(format!(
            "could not record the failure of {}: {error}",
            input.operation_id
        ));
    }
    failure.error
}
