//! The steps of create-instance that every version runs the same way (each schedules exactly
//! the activity inputs it always did, so older versions replay unchanged).

use crate::steps::{StepFailure, StepPolicy, call, ready_poll_timeout, wait_until_ready, within};
use crate::types::{CreateInstanceInput, MonitorInstanceInput, monitor_id_for};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    complete_create, deploy_postgres, deploy_restored, flush_archive, get_connection_strings,
    test_connection,
};
use toygres_activities::error::ActivityError;
use toygres_activities::seal::SealedSecret;
use toygres_activities::types::*;

/// What differs between versions in how steps are retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flavor {
    /// Whether an attempt past its deadline is tried again (1.1.0 on).
    pub retry_timeouts: bool,
    /// Whether the create sets the owner's parameters (1.2.0 on).
    pub parameters: bool,
    /// Whether the create may restore its data from backups (1.3.0 on).
    pub restores: bool,
    /// Whether the instance goes into the namespace its input names (1.4.0 on; before, every
    /// instance went into the backend's default).
    pub namespaces: bool,
}

impl Flavor {
    /// `attempts` attempts of at most `timeout` each.
    pub fn policy(self, attempts: u32, timeout: Duration) -> StepPolicy {
        let policy = StepPolicy::retried(attempts, timeout);
        if self.retry_timeouts {
            policy.retrying_timeouts()
        } else {
            policy
        }
    }
}

/// deploy: the backend's resources, with `superuser` (absent: the owner, as in 1.0.0) holding
/// the password `sealed`.
pub(super) async fn deploy(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    superuser: Option<String>,
    sealed: &SealedSecret,
    flavor: Flavor,
) -> Result<(), StepFailure> {
    let limits = &input.limits;
    let deploy = deploy_input(input, superuser, sealed);
    let deploy_limit = Duration::from_millis(limits.deploy_timeout_ms);
    let policy = flavor.policy(limits.step_attempts, deploy_limit);
    let deployed: DeployOutput = within(
        ctx,
        deploy_limit,
        "deploy",
        call(ctx, deploy_postgres::NAME, &deploy, policy),
    )
    .await
    .map_err(StepFailure::at("deploy"))?;
    if deployed.adopted {
        ctx.trace_info(format!("adopted existing resources of {}", input.name));
    }
    Ok(())
}

/// What the backend deploys for `input`, with `superuser` holding the password `sealed`.
fn deploy_input(
    input: &CreateInstanceInput,
    superuser: Option<String>,
    sealed: &SealedSecret,
) -> DeployInput {
    DeployInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        uid: input.uid.clone(),
        postgres_version: input.postgres_version.clone(),
        storage_gb: input.storage_gb,
        sealed_password: sealed.clone(),
        superuser,
        expose: input.expose,
        dns_label: input.dns_label.clone(),
    }
}

/// deploy, from backups: a live source's current WAL archived first (for a time or latest
/// target), then the restore into the new instance, within the restore deadline.
pub(super) async fn deploy_restored(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    superuser: Option<String>,
    sealed: &SealedSecret,
    flavor: Flavor,
    plan: &crate::types::RestorePlan,
) -> Result<(), StepFailure> {
    let limits = &input.limits;
    let step_limit = Duration::from_millis(limits.step_timeout_ms);
    if let Some(flush) = &plan.flush {
        let policy = flavor.policy(limits.step_attempts, step_limit);
        within(
            ctx,
            step_limit,
            "deploy",
            call::<_, Flushed>(ctx, flush_archive::NAME, flush, policy),
        )
        .await
        .map_err(StepFailure::at("deploy"))?;
    }
    let restore = DeployRestoredInput {
        deploy: deploy_input(input, superuser, sealed),
        source: plan.source.clone(),
    };
    let restore_limit = Duration::from_millis(plan.restore_timeout_ms);
    let policy = flavor.policy(limits.step_attempts, restore_limit);
    let deployed: DeployOutput = within(
        ctx,
        restore_limit,
        "deploy",
        call(ctx, deploy_restored::NAME, &restore, policy),
    )
    .await
    .map_err(StepFailure::at("deploy"))?;
    if deployed.adopted {
        ctx.trace_info(format!("adopted the restored data of {}", input.name));
    }
    Ok(())
}

/// wait_ready: short activity waits with a durable pause between them, within the step's
/// deadline.
pub(super) async fn wait_ready(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    flavor: Flavor,
) -> Result<(), StepFailure> {
    let ready_limit = Duration::from_millis(input.limits.ready_timeout_ms);
    let policy = flavor.policy(input.limits.step_attempts, ready_poll_timeout());
    wait_until_ready(
        ctx,
        &input.name,
        input.namespace.clone(),
        ready_limit,
        policy,
    )
    .await
    .map_err(StepFailure::at("wait_ready"))
}

/// connection_info: where clients reach the instance.
pub(super) async fn connection_info(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    flavor: Flavor,
) -> Result<ConnectionInfo, StepFailure> {
    let step_limit = Duration::from_millis(input.limits.step_timeout_ms);
    let info_input = ConnectionInfoInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        user: input.user.clone(),
        database: input.database.clone(),
    };
    let policy = flavor.policy(input.limits.step_attempts, step_limit);
    within(
        ctx,
        step_limit,
        "connection_info",
        call(ctx, get_connection_strings::NAME, &info_input, policy),
    )
    .await
    .map_err(StepFailure::at("connection_info"))
}

/// One connection test (`SELECT version()`) as `user` with password `sealed`, within `limit`.
pub(super) async fn probe(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    info: &ConnectionInfo,
    user: &str,
    sealed: &SealedSecret,
    flavor: Flavor,
) -> Result<TestConnectionOutput, ActivityError> {
    let limits = &input.limits;
    let probe = TestConnectionInput {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        host: info.host.clone(),
        port: info.port,
        user: user.to_string(),
        database: input.database.clone(),
        sealed_password: sealed.clone(),
        timeout_ms: limits.probe_timeout_ms,
    };
    let policy = flavor.policy(
        limits.step_attempts,
        Duration::from_millis(limits.probe_timeout_ms * 2),
    );
    call(ctx, test_connection::NAME, &probe, policy).await
}

/// finalize: `running`, the endpoint and `succeeded`, in one transaction.
pub(super) async fn finalize(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    info: &ConnectionInfo,
    tested: &TestConnectionOutput,
) -> Result<Applied, StepFailure> {
    let step_limit = Duration::from_millis(input.limits.step_timeout_ms);
    let complete = CompleteCreateInput {
        instance_id: input.instance_id,
        name: input.name.clone(),
        operation_id: input.operation_id.clone(),
        host: info.host.clone(),
        port: info.port,
        dns_name: info.dns_name.clone(),
        monitor_id: monitor_id_for(&input.uid),
        result: serde_json::json!({ "server_version": tested.server_version }),
    };
    within(
        ctx,
        step_limit,
        "finalize",
        call(
            ctx,
            complete_create::NAME,
            &complete,
            StepPolicy::metadata(),
        ),
    )
    .await
    .map_err(StepFailure::at("finalize"))
}

/// Starts the instance's monitor, checking as `user` with password `sealed`.
pub(super) fn start_monitor(
    ctx: &OrchestrationContext,
    input: &CreateInstanceInput,
    info: &ConnectionInfo,
    user: &str,
    sealed: &SealedSecret,
) {
    let monitor_id = monitor_id_for(&input.uid);
    let monitor = MonitorInstanceInput {
        monitor_id: monitor_id.clone(),
        instance_id: input.instance_id,
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        host: info.host.clone(),
        port: info.port,
        user: user.to_string(),
        database: input.database.clone(),
        sealed_password: sealed.clone(),
        settings: input.health.clone(),
        generation: 0,
    };
    ctx.schedule_orchestration_typed(crate::names::MONITOR_INSTANCE, &monitor_id, &monitor);
}
