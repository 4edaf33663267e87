//! create-instance (1.3.0): deploy with the control plane's `toygres_admin` as bootstrap
//! superuser -> wait until ready -> connection info -> configure the roles (the owner, no
//! superuser, and `toygres_monitor`) and set the owner's parameters (those a reload applies
//! with `ALTER SYSTEM`; those that need a start on the command line, with a restart) -> test
//! connections as the monitor and as the owner -> running, then start the instance's monitor
//! (checking as `toygres_monitor`). The deploy may restore the data from another instance's
//! backups instead (1.3.0), and the instance goes into the namespace its input names (1.4.0).
//! 1.3.0 ([`run_1_3`]) is the same in the backend's default namespace, 1.2.0 ([`run_1_2`])
//! without restores either and 1.1.0 ([`run_1_1`]) without parameters, kept for creates
//! running during an upgrade.
//!
//! Every step has a deadline, and so has the whole operation. On any failure, or past a
//! deadline, it first moves the instance to `failed` (only while this create still holds it,
//! which also stops a late finalize from applying), then removes what this incarnation
//! deployed, records the failure with a typed error code and the step, and ends failed. A
//! finalize that committed after its own deadline fired is found out by that first write, and
//! nothing is removed.

mod steps;
pub mod v1_0;

use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, start_operation, within, within_operation,
};
use crate::types::{CREATE_STEPS, CreateInstanceInput, CreateInstanceOutput};
use duroxide::OrchestrationContext;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steps::Flavor;
use toygres_activities::activities::{
    configure_roles, delete_postgres, fail_operation, restart_postgres, set_parameters,
    transition_instance,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::{InstanceState, OperationStatus};
use toygres_activities::roles::{ADMIN, MONITOR};
use toygres_activities::seal::SealedSecret;
use toygres_activities::types::*;

/// The version [`run`] is registered as.
pub const VERSION: &str = "1.4.0";

/// The version [`run_1_3`] is registered as.
pub const VERSION_1_3: &str = "1.3.0";

/// The version [`run_1_2`] is registered as.
pub const VERSION_1_2: &str = "1.2.0";

/// The version [`run_1_1`] is registered as.
pub const VERSION_1_1: &str = "1.1.0";

/// 1.1.0: an attempt past its deadline is tried again; no parameters.
const FLAVOR_1_1: Flavor = Flavor {
    retry_timeouts: true,
    parameters: false,
    restores: false,
    namespaces: false,
};

/// 1.2.0: as 1.1.0, and the owner's parameters are set before the instance is handed over.
const FLAVOR_1_2: Flavor = Flavor {
    retry_timeouts: true,
    parameters: true,
    restores: false,
    namespaces: false,
};

/// 1.3.0: as 1.2.0, and the data may come from another instance's backups.
const FLAVOR_1_3: Flavor = Flavor {
    retry_timeouts: true,
    parameters: true,
    restores: true,
    namespaces: false,
};

/// 1.4.0: as 1.3.0, in the namespace the input names.
const FLAVOR: Flavor = Flavor {
    retry_timeouts: true,
    parameters: true,
    restores: true,
    namespaces: true,
};

/// What a create got to before it failed: enough to finish it when the failure turns out to
/// have come after its success was recorded.
type Reached = Arc<Mutex<Option<(ConnectionInfo, TestConnectionOutput)>>>;

/// Runs the create workflow (1.4.0).
pub async fn run(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    run_as(ctx, input, FLAVOR).await
}

/// Runs create-instance 1.3.0 (it schedules exactly what it always did).
pub async fn run_1_3(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    run_as(ctx, input, FLAVOR_1_3).await
}

/// Runs create-instance 1.2.0 (it schedules exactly what it always did).
pub async fn run_1_2(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    run_as(ctx, input, FLAVOR_1_2).await
}

/// Runs create-instance 1.1.0 (it schedules exactly what it always did).
pub async fn run_1_1(
    ctx: OrchestrationContext,
    input: CreateInstanceInput,
) -> Result<CreateInstanceOutput, String> {
    run_as(ctx, input, FLAVOR_1_1).await
}

async fn run_as(
    ctx: OrchestrationContext,
    mut input: CreateInstanceInput,
    flavor: Flavor,
) -> Result<CreateInstanceOutput, String> {
    if !flavor.namespaces {
        // Versions before namespaces deployed into the backend's default, whatever the input.
        input.namespace = None;
    }
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, CREATE_STEPS.len() as u32);
    let limit = Duration::from_millis(input.limits.operation_timeout_ms);
    let reached = Reached::default();
    let outcome = within_operation(
        &ctx,
        &tracker,
        limit,
        "create",
        provision(&ctx, &input, &tracker, &reached, flavor),
    )
    .await;
    match outcome {
        Ok(output) => Ok(output),
        Err(failure) => fail_and_clean_up(&ctx, &input, failure, &reached).await,
    }
}

/// The passwords of the control plane's roles; a create accepted without them cannot run.
fn role_passwords(
    input: &CreateInstanceInput,
) -> Result<(SealedSecret, SealedSecret), StepFailure> {
    match (&input.sealed_admin_password, &input.sealed_monitor_password) {
        (Some(admin), Some(monitor)) => Ok((admin.clone(), monitor.clone())),
        _ => Err(StepFailure {
            step: "deploy",
            error: ActivityError::permanent(
                ErrorCode::Internal,
                "the create was accepted without the control plane's role passwords",
            ),
        }),
    }
}

/// The happy path; the first failing step ends it.
async fn provision(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    tracker: &Tracker,
    reached: &Reached,
    flavor: Flavor,
) -> Result<CreateInstanceOutput, StepFailure> {
    let limits = &input.limits;
    let step_limit = Duration::from_millis(limits.step_timeout_ms);
    let (admin_password, monitor_password) = role_passwords(input)?;

    tracker.enter("deploy", 0);
    match &input.restore {
        Some(plan) if flavor.restores => {
            steps::deploy_restored(
                ctx,
                input,
                Some(ADMIN.to_string()),
                &admin_password,
                flavor,
                plan,
            )
            .await?
        }
        _ => steps::deploy(ctx, input, Some(ADMIN.to_string()), &admin_password, flavor).await?,
    }

    tracker.enter("wait_ready", 1);
    steps::wait_ready(ctx, input, flavor).await?;

    tracker.enter("connection_info", 2);
    let info = steps::connection_info(ctx, input, flavor).await?;

    tracker.enter("configure_roles", 3);
    let configure = ConfigureRolesInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        host: info.host.clone(),
        port: info.port,
        postgres_version: input.postgres_version.clone(),
        owner: input.user.clone(),
        sealed_owner_password: input.sealed_password.clone(),
        sealed_admin_password: admin_password,
        sealed_monitor_password: monitor_password.clone(),
        timeout_ms: limits.probe_timeout_ms.saturating_mul(3),
    };
    let policy = flavor.policy(
        limits.step_attempts,
        Duration::from_millis(limits.probe_timeout_ms.saturating_mul(6)),
    );
    within(
        ctx,
        step_limit,
        "configure_roles",
        call::<_, ()>(ctx, configure_roles::NAME, &configure, policy),
    )
    .await
    .map_err(StepFailure::at("configure_roles"))?;
    if flavor.parameters
        && let Some(parameters) = &input.parameters
    {
        set_parameters(
            ctx,
            input,
            &info,
            parameters,
            &configure.sealed_admin_password,
            flavor,
        )
        .await
        .map_err(StepFailure::at("configure_roles"))?;
    }

    // Connectable as the control plane checks it, and as its owner will use it.
    tracker.enter("test_connection", 4);
    let tests = async {
        let tested = steps::probe(ctx, input, &info, MONITOR, &monitor_password, flavor).await?;
        steps::probe(
            ctx,
            input,
            &info,
            &input.user,
            &input.sealed_password,
            flavor,
        )
        .await?;
        Ok(tested)
    };
    let tested = within(ctx, step_limit, "test_connection", tests)
        .await
        .map_err(StepFailure::at("test_connection"))?;

    tracker.enter("finalize", 5);
    if let Ok(mut reached) = reached.lock() {
        *reached = Some((info.clone(), tested.clone()));
    }
    let applied = steps::finalize(ctx, input, &info, &tested).await?;
    if !applied.applied {
        // A later operation (a delete) took the instance: this create did not make it run.
        return Err(StepFailure {
            step: "finalize",
            error: ActivityError::permanent(
                ErrorCode::Canceled,
                "the instance was taken over by another operation before the create finished",
            ),
        });
    }
    steps::start_monitor(ctx, input, &info, MONITOR, &monitor_password);
    tracker.finish();
    Ok(CreateInstanceOutput {
        host: info.host,
        port: info.port,
        server_version: tested.server_version,
    })
}

/// Sets the owner's parameters on the new instance: those a reload applies with `ALTER SYSTEM`,
/// those that need a start on the server's command line, with a restart (and a wait until it
/// accepts connections again).
async fn set_parameters(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    info: &ConnectionInfo,
    parameters: &crate::types::InitialParameters,
    sealed_admin_password: &SealedSecret,
    flavor: Flavor,
) -> Result<(), ActivityError> {
    let limits = &input.limits;
    let policy = flavor.policy(
        limits.step_attempts,
        Duration::from_millis(limits.probe_timeout_ms.saturating_mul(6)),
    );
    if !parameters.reload.is_empty() {
        let set = SetParametersInput {
            admin: AdminEndpoint {
                name: input.name.clone(),
                namespace: input.namespace.clone(),
                host: info.host.clone(),
                port: info.port,
                sealed_admin_password: sealed_admin_password.clone(),
                timeout_ms: limits.probe_timeout_ms.saturating_mul(3),
            },
            changes: parameters.reload.clone(),
        };
        call::<_, ()>(ctx, set_parameters::NAME, &set, policy).await?;
    }
    if !parameters.start.is_empty() {
        let restart = RestartPostgresInput {
            name: input.name.clone(),
            namespace: input.namespace.clone(),
            uid: input.uid.clone(),
            parameters: Some(parameters.start.clone()),
        };
        call::<_, ()>(ctx, restart_postgres::NAME, &restart, policy).await?;
        crate::steps::wait_until_ready(
            ctx,
            &input.name,
            input.namespace.clone(),
            Duration::from_millis(limits.ready_timeout_ms),
            flavor.policy(limits.step_attempts, crate::steps::ready_poll_timeout()),
        )
        .await?;
    }
    Ok(())
}

/// Claims the failure first (the instance moves to `failed` only while this create still holds
/// it, so a finalize that lands late can no longer apply), removes what this incarnation
/// deployed only if the claim applied, then records the failure. Returns how the workflow ends.
async fn fail_and_clean_up(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    failure: StepFailure,
    reached: &Reached,
) -> Result<CreateInstanceOutput, String> {
    crate::steps::report(ctx, "cleanup", 0, CREATE_STEPS.len() as u32);
    ctx.trace_warn(format!(
        "create of {} failed in {}: {}",
        input.name, failure.step, failure.error
    ));
    let claim = TransitionInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        to: InstanceState::Failed,
        message: format!(
            "the create failed in {}: {}; cleaning up",
            failure.step, failure.error.message
        ),
    };
    let claimed = match call::<_, Applied>(
        ctx,
        transition_instance::NAME,
        &claim,
        StepPolicy::metadata(),
    )
    .await
    {
        Ok(applied) => applied.applied,
        Err(error) => {
            ctx.trace_error(format!(
                "could not record the failure of {}: {error}",
                input.operation_id
            ));
            false
        }
    };
    let cleanup_note = if claimed {
        let delete = DeletePostgresInput {
            name: input.name.clone(),
            namespace: input.namespace.clone(),
            uid: Some(input.uid.clone()),
        };
        let policy = StepPolicy::retried(5, Duration::from_secs(120)).retrying_timeouts();
        match call::<_, ()>(ctx, delete_postgres::NAME, &delete, policy).await {
            Ok(()) => "; backend resources removed".to_string(),
            Err(error) => format!(
                "; cleanup failed, delete the instance to retry: {}",
                error.message
            ),
        }
    } else {
        String::new()
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
    let outcome: FailOutcome =
        match call(ctx, fail_operation::NAME, &record, StepPolicy::metadata()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // The reconciler settles the row; a delete removes what is left.
                ctx.trace_error(format!(
                    "could not record the failure of {}: {error}",
                    input.operation_id
                ));
                return Err(failure.error.into());
            }
        };
    if claimed || outcome.recorded {
        return Err(failure.error.into());
    }
    match (outcome.status, reached.lock().ok().and_then(|r| r.clone())) {
        // The finalize committed after its deadline fired: the create succeeded.
        (OperationStatus::Succeeded, Some((info, tested))) => {
            ctx.trace_info(format!(
                "the create of {} had succeeded after all; nothing to clean up",
                input.name
            ));
            if let Some(monitor) = &input.sealed_monitor_password {
                steps::start_monitor(ctx, input, &info, MONITOR, monitor);
            }
            Ok(CreateInstanceOutput {
                host: info.host,
                port: info.port,
                server_version: tested.server_version,
            })
        }
        _ => {
            ctx.trace_warn(format!(
                "operation {} had already ended {}; nothing to clean up",
                input.operation_id, outcome.status
            ));
            Err(failure.error.into())
        }
    }
}
