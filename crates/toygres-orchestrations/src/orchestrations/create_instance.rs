//! create-instance: deploy -> wait until ready -> connection info -> test connection -> running,
//! then start the instance's monitor.
//!
//! Every step has a deadline, and so has the whole operation. On any failure, or past a
//! deadline, it cleans up what was deployed, records `failed` with a typed error code and the
//! step that was running, and ends failed.

use crate::names;
use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, start_operation, within, within_operation,
};
use crate::types::{
    CREATE_STEPS, CreateInstanceInput, CreateInstanceOutput, MonitorInstanceInput, monitor_id_for,
};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    complete_create, delete_postgres, deploy_postgres, fail_operation, get_connection_strings,
    test_connection, wait_for_ready,
};
use toygres_activities::error::ActivityError;
use toygres_activities::types::*;

/// How long one wait-for-ready call waits before the workflow decides.
const READY_POLL_MS: u64 = 2_000;
/// The durable pause between wait-for-ready calls.
const READY_PAUSE: Duration = Duration::from_millis(200);
/// Runs the create workflow.
pub async fn run(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, CREATE_STEPS.len() as u32);
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
        Err(failure) => Err(fail_and_clean_up(&ctx, &input, failure).await.into()),
    }
}

/// The happy path; the first failing step ends it.
async fn provision(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    tracker: &Tracker,
) -> Result<CreateInstanceOutput, StepFailure> {
    let limits = &input.limits;
    let step_limit = Duration::from_millis(limits.step_timeout_ms);
    let failed = StepFailure::at;

    tracker.enter("deploy", 0);
    let deploy = DeployInput {
        name: input.name.clone(),
        uid: input.uid.clone(),
        postgres_version: input.postgres_version.clone(),
        storage_gb: input.storage_gb,
        sealed_password: input.sealed_password.clone(),
        expose: input.expose,
        dns_label: input.dns_label.clone(),
    };
    let deploy_limit = Duration::from_millis(limits.deploy_timeout_ms);
    let policy = StepPolicy::retried(limits.step_attempts, deploy_limit);
    let deployed: DeployOutput = within(
        ctx,
        deploy_limit,
        "deploy",
        call(ctx, deploy_postgres::NAME, &deploy, policy),
    )
    .await
    .map_err(failed("deploy"))?;
    if deployed.adopted {
        ctx.trace_info(format!("adopted existing resources of {}", input.name));
    }

    tracker.enter("wait_ready", 1);
    let ready_limit = Duration::from_millis(limits.ready_timeout_ms);
    within(
        ctx,
        ready_limit,
        "waiting for the instance to accept connections",
        wait_until_ready(ctx, input),
    )
    .await
    .map_err(failed("wait_ready"))?;

    tracker.enter("connection_info", 2);
    let info_input = ConnectionInfoInput {
        name: input.name.clone(),
        user: input.user.clone(),
        database: input.database.clone(),
    };
    let policy = StepPolicy::retried(limits.step_attempts, step_limit);
    let info: ConnectionInfo = within(
        ctx,
        step_limit,
        "connection_info",
        call(ctx, get_connection_strings::NAME, &info_input, policy),
    )
    .await
    .map_err(failed("connection_info"))?;

    tracker.enter("test_connection", 3);
    let probe = TestConnectionInput {
        name: input.name.clone(),
        host: info.host.clone(),
        port: info.port,
        user: input.user.clone(),
        database: input.database.clone(),
        sealed_password: input.sealed_password.clone(),
        timeout_ms: limits.probe_timeout_ms,
    };
    let policy = StepPolicy::retried(
        limits.step_attempts,
        Duration::from_millis(limits.probe_timeout_ms * 2),
    );
    let tested: TestConnectionOutput = within(
        ctx,
        step_limit,
        "test_connection",
        call(ctx, test_connection::NAME, &probe, policy),
    )
    .await
    .map_err(failed("test_connection"))?;

    tracker.enter("finalize", 4);
    let monitor_id = monitor_id_for(&input.uid);
    let complete = CompleteCreateInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        host: info.host.clone(),
        port: info.port,
        monitor_id: monitor_id.clone(),
        result: serde_json::json!({ "server_version": tested.server_version }),
    };
    let policy = StepPolicy::metadata();
    let _: Applied = within(
        ctx,
        step_limit,
        "finalize",
        call(ctx, complete_create::NAME, &complete, policy),
    )
    .await
    .map_err(failed("finalize"))?;
    let monitor = MonitorInstanceInput {
        monitor_id: monitor_id.clone(),
        instance_id: input.instance_id,
        name: input.name.clone(),
        host: info.host.clone(),
        port: info.port,
        user: input.user.clone(),
        database: input.database.clone(),
        sealed_password: input.sealed_password.clone(),
        settings: input.health.clone(),
        generation: 0,
    };
    ctx.schedule_orchestration_typed(names::MONITOR_INSTANCE, &monitor_id, &monitor);
    tracker.finish();
    Ok(CreateInstanceOutput {
        host: info.host,
        port: info.port,
        server_version: tested.server_version,
    })
}

/// Short activity waits with a durable pause between them, until ready (the caller bounds it).
async fn wait_until_ready(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
) -> Result<(), ActivityError> {
    let wait = WaitForReadyInput {
        name: input.name.clone(),
        wait_ms: READY_POLL_MS,
    };
    let policy = StepPolicy::retried(
        input.limits.step_attempts,
        Duration::from_millis(READY_POLL_MS * 5),
    );
    loop {
        let output: WaitForReadyOutput = call(ctx, wait_for_ready::NAME, &wait, policy).await?;
        if output.ready {
            return Ok(());
        }
        if let Some(detail) = output.detail {
            ctx.trace_info(format!("{} not ready yet: {detail}", input.name));
        }
        ctx.schedule_timer(READY_PAUSE).await;
    }
}

/// Removes whatever was deployed, then records the failure. Returns the error to end with.
async fn fail_and_clean_up(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    failure: StepFailure,
) -> ActivityError {
    crate::steps::report(ctx, "cleanup", 0, CREATE_STEPS.len() as u32);
    ctx.trace_warn(format!(
        "create of {} failed in {}: {}",
        input.name, failure.step, failure.error
    ));
    let delete = DeletePostgresInput {
        name: input.name.clone(),
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
    };
    let policy = StepPolicy::metadata();
    if let Err(error) = call::<_, ()>(ctx, fail_operation::NAME, &record, policy).await {
        ctx.trace_error(format!(
            "could not record the failure of {}: {error}",
            input.operation_id
        ));
    }
    failure.error
}
