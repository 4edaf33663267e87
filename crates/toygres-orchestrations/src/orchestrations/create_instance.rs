//! create-instance: deploy -> wait until ready -> connection info -> test connection -> running,
//! then start the instance's monitor.
//!
//! On any failure, or past a deadline, it records `failed` with a typed error code, cleans up
//! what was deployed, and ends failed.

use crate::names;
use crate::steps::{StepPolicy, call, report};
use crate::types::{
    CREATE_STEPS, CreateInstanceInput, CreateInstanceOutput, MonitorInstanceInput, monitor_id_for,
};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    complete_create, delete_postgres, deploy_postgres, fail_operation, get_connection_strings,
    start_operation, test_connection, wait_for_ready,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::types::*;

/// How long one wait-for-ready call waits before the workflow decides.
const READY_POLL_MS: u64 = 2_000;
/// The durable pause between wait-for-ready calls.
const READY_PAUSE: Duration = Duration::from_millis(200);
/// Deadline of a metadata step.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a metadata step.
const METADATA_ATTEMPTS: u32 = 10;

/// A failed step and why.
struct StepFailure {
    step: &'static str,
    error: ActivityError,
}

/// Runs the create workflow.
pub async fn run(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    let metadata = StepPolicy::retried(METADATA_ATTEMPTS, METADATA_TIMEOUT);
    let start = StartOperationInput {
        operation_id: input.operation_id.clone(),
        name: input.name.clone(),
    };
    let proceed: bool = call(&ctx, start_operation::NAME, &start, metadata).await?;
    if !proceed {
        ctx.trace_info(format!(
            "operation {} already finished; nothing to do",
            input.operation_id
        ));
        return Err(ActivityError::permanent(
            ErrorCode::Canceled,
            "the operation was canceled before it started",
        )
        .into());
    }
    match provision(&ctx, &input).await {
        Ok(output) => Ok(output),
        Err(failure) => Err(fail_and_clean_up(&ctx, &input, failure).await.into()),
    }
}

/// The happy path; the first failing step ends it.
async fn provision(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
) -> Result<CreateInstanceOutput, StepFailure> {
    let total = CREATE_STEPS.len() as u32;
    let limits = &input.limits;
    let failed = |step: &'static str| move |error| StepFailure { step, error };

    report(ctx, "deploy", 0, total);
    let deploy = DeployInput {
        name: input.name.clone(),
        uid: input.uid.clone(),
        postgres_version: input.postgres_version.clone(),
        storage_gb: input.storage_gb,
        sealed_password: input.sealed_password.clone(),
    };
    let policy = StepPolicy::retried(
        limits.step_attempts,
        Duration::from_millis(limits.deploy_timeout_ms),
    );
    let deployed: DeployOutput = call(ctx, deploy_postgres::NAME, &deploy, policy)
        .await
        .map_err(failed("deploy"))?;
    if deployed.adopted {
        ctx.trace_info(format!("adopted existing resources of {}", input.name));
    }

    report(ctx, "wait_ready", 1, total);
    wait_until_ready(ctx, input)
        .await
        .map_err(failed("wait_ready"))?;

    report(ctx, "connection_info", 2, total);
    let info_input = ConnectionInfoInput {
        name: input.name.clone(),
        user: input.user.clone(),
        database: input.database.clone(),
    };
    let policy = StepPolicy::retried(limits.step_attempts, METADATA_TIMEOUT);
    let info: ConnectionInfo = call(ctx, get_connection_strings::NAME, &info_input, policy)
        .await
        .map_err(failed("connection_info"))?;

    report(ctx, "test_connection", 3, total);
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
    let tested: TestConnectionOutput = call(ctx, test_connection::NAME, &probe, policy)
        .await
        .map_err(failed("test_connection"))?;

    report(ctx, "finalize", 4, total);
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
    let policy = StepPolicy::retried(METADATA_ATTEMPTS, METADATA_TIMEOUT);
    let _: Applied = call(ctx, complete_create::NAME, &complete, policy)
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
    report(ctx, "finalize", total, total);
    Ok(CreateInstanceOutput {
        host: info.host,
        port: info.port,
        server_version: tested.server_version,
    })
}

/// Short activity waits with a durable pause between them, until ready or the deadline.
async fn wait_until_ready(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
) -> Result<(), ActivityError> {
    let per_round = READY_POLL_MS + READY_PAUSE.as_millis() as u64;
    let rounds = input.limits.ready_timeout_ms.div_ceil(per_round).max(1);
    let wait = WaitForReadyInput {
        name: input.name.clone(),
        wait_ms: READY_POLL_MS,
    };
    let policy = StepPolicy::retried(
        input.limits.step_attempts,
        Duration::from_millis(READY_POLL_MS * 5),
    );
    let mut last_detail = String::from("no answer yet");
    for round in 0..rounds {
        let output: WaitForReadyOutput = call(ctx, wait_for_ready::NAME, &wait, policy).await?;
        if output.ready {
            return Ok(());
        }
        last_detail = output.detail.unwrap_or(last_detail);
        if round + 1 < rounds {
            ctx.schedule_timer(READY_PAUSE).await;
        }
    }
    Err(ActivityError::permanent(
        ErrorCode::DeadlineExceeded,
        format!(
            "not accepting connections after {} s: {last_detail}",
            input.limits.ready_timeout_ms / 1000
        ),
    ))
}

/// Removes whatever was deployed, then records the failure. Returns the error to end with.
async fn fail_and_clean_up(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    failure: StepFailure,
) -> ActivityError {
    let total = CREATE_STEPS.len() as u32;
    report(ctx, "cleanup", 0, total);
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
    let policy = StepPolicy::retried(METADATA_ATTEMPTS, METADATA_TIMEOUT);
    if let Err(error) = call::<_, ()>(ctx, fail_operation::NAME, &record, policy).await {
        ctx.trace_error(format!(
            "could not record the failure of {}: {error}",
            input.operation_id
        ));
    }
    failure.error
}
