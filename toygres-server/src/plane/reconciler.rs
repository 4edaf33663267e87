//! Starts accepted operations whose workflow is missing (the server stopped between recording
//! an operation and starting it), settles operations whose workflow ended without writing
//! its outcome (so that every operation ends, and `toygres op wait` always returns), starts
//! missing monitors, and moves instances made before the control plane had roles of its own
//! onto them ([`super::upgrade`]).

use crate::plane::ControlPlane;
use chrono::Utc;
use duroxide::OrchestrationStatus;
use toygres_activities::error::{ActivityError, ErrorCode};

/// Operations younger than this are left alone: their request may still be starting them.
const GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Operations whose workflow was started.
    pub started: Vec<String>,
    /// Operations recorded as failed (or canceled) because their workflow ended without doing so.
    pub settled: Vec<String>,
    /// Monitors started for running instances that had none.
    pub monitors_started: Vec<String>,
    /// Instances converted to the control plane's roles.
    pub upgraded: Vec<String>,
}

/// One pass over every unfinished operation and, when `check_monitors`, over every running
/// instance's monitor (one status read each, so the caller does that less often).
pub async fn reconcile(
    plane: &ControlPlane,
    include_recent: bool,
    check_monitors: bool,
) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    for operation in plane.metadata.unfinished_operations().await? {
        if !include_recent && Utc::now() - operation.created_at < GRACE {
            continue;
        }
        let Some(instance) = plane.metadata.instance(operation.instance_id).await? else {
            continue;
        };
        match plane.client.get_orchestration_status(&operation.id).await? {
            OrchestrationStatus::NotFound => {
                plane.try_start_workflow(&instance, &operation).await?;
                tracing::info!(operation_id = %operation.id, instance = %instance.name, "started a missing workflow");
                report.started.push(operation.id);
            }
            OrchestrationStatus::Failed {
                details:
                    duroxide::ErrorDetails::Application {
                        kind: duroxide::AppErrorKind::Cancelled { reason },
                        ..
                    },
                ..
            } => {
                plane
                    .metadata
                    .cancel_operation(&operation.id, &reason)
                    .await?;
                report.settled.push(operation.id);
            }
            OrchestrationStatus::Failed { details, .. } => {
                // The workflow's own typed error when it failed with one.
                let error = match &details {
                    duroxide::ErrorDetails::Application { message, .. } => {
                        ActivityError::decode(message)
                    }
                    other => ActivityError::permanent(ErrorCode::Internal, other.display_message()),
                };
                let step = operation.step.clone().unwrap_or_else(|| "unknown".into());
                plane
                    .metadata
                    .fail_operation(instance.id, &operation.id, &step, &error, "", None)
                    .await?;
                report.settled.push(operation.id);
            }
            // Ended without recording its outcome (its last write did not apply, say because a
            // later operation had taken the instance): the row must not stay unfinished.
            OrchestrationStatus::Completed { .. } => {
                let error = ActivityError::permanent(
                    ErrorCode::Internal,
                    "the operation's workflow ended without recording its outcome",
                );
                let step = operation.step.clone().unwrap_or_else(|| "unknown".into());
                plane
                    .metadata
                    .fail_operation(instance.id, &operation.id, &step, &error, "", None)
                    .await?;
                tracing::warn!(operation_id = %operation.id, instance = %instance.name, "settled an operation whose workflow ended without recording its outcome");
                report.settled.push(operation.id);
            }
            OrchestrationStatus::Running { .. } => {}
        }
    }
    if check_monitors {
        report.upgraded = super::upgrade::convert_legacy_instances(plane).await?;
        ensure_monitors(plane, include_recent, &mut report).await?;
        ensure_drift_reconciler(plane).await?;
        ensure_backup_scheduler(plane).await?;
        ensure_warm_pool(plane).await?;
    }
    Ok(report)
}

/// Starts a monitor for every running instance whose monitor is missing or has ended.
async fn ensure_monitors(
    plane: &ControlPlane,
    include_recent: bool,
    report: &mut ReconcileReport,
) -> anyhow::Result<()> {
    for instance in plane.metadata.running_instances().await? {
        if !include_recent && Utc::now() - instance.updated_at < GRACE {
            continue; // its create may be starting the monitor right now
        }
        let status = match &instance.monitor_id {
            Some(id) => plane.client.get_orchestration_status(id).await?,
            None => OrchestrationStatus::NotFound,
        };
        let monitor_id = match (&instance.monitor_id, status) {
            (Some(_), OrchestrationStatus::Running { .. }) => continue,
            // Recorded but never started: start it under its recorded id.
            (Some(id), OrchestrationStatus::NotFound) => id.clone(),
            // Missing, or ended (an id cannot be reused): a new monitor takes over.
            (previous, _) => {
                let id = format!(
                    "{}-{}",
                    toygres_orchestrations::types::monitor_id_for(&instance.uid),
                    crate::plane::random_id("r")
                );
                if !plane
                    .metadata
                    .assign_monitor(instance.id, previous.as_deref(), &id)
                    .await?
                {
                    continue; // the instance changed meanwhile; the next pass looks again
                }
                id
            }
        };
        plane.start_monitor(&instance, &monitor_id).await?;
        tracing::info!(instance = %instance.name, %monitor_id, "started a missing monitor");
        report.monitors_started.push(monitor_id);
    }
    Ok(())
}

/// Removes the Duroxide history of operations that finished more than `retention` ago (their
/// row keeps the summary). Returns how many were pruned; at most 200 per call.
pub async fn prune_finished_histories(
    plane: &ControlPlane,
    retention: std::time::Duration,
) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention)?;
    let mut pruned = 0;
    for id in plane.metadata.operations_to_prune(cutoff, 200).await? {
        match plane.client.delete_instance(&id, false).await {
            Ok(_) | Err(duroxide::ClientError::InstanceNotFound { .. }) => {
                plane.metadata.mark_history_pruned(&id).await?;
                pruned += 1;
            }
            Err(error) => {
                tracing::warn!(operation_id = %id, %error, "could not prune a finished operation's history")
            }
        }
    }
    Ok(pruned)
}

/// The singleton role of the drift reconciler.
const DRIFT_ROLE: &str = "drift-reconciler";

/// The singleton role of the backup scheduler.
const BACKUP_ROLE: &str = "backup-scheduler";

/// Makes sure the one backup-scheduler workflow runs (when backups are on); returns the id it
/// started, if any.
pub async fn ensure_backup_scheduler(plane: &ControlPlane) -> anyhow::Result<Option<String>> {
    let Some(policy) = plane.backups.clone().filter(|_| plane.archives()) else {
        return Ok(None);
    };
    let Some(id) = claim_singleton(plane, BACKUP_ROLE, "toygres-backups").await? else {
        return Ok(None);
    };
    let millis =
        |duration: std::time::Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let input = toygres_orchestrations::types::BackupSchedulerInput {
        workflow_id: id.clone(),
        tick_ms: millis(policy.tick),
        plan: toygres_activities::types::PlanBackupsInput {
            interval_ms: millis(policy.interval),
            retry_ms: millis(policy.retry),
            retention_ms: u64::from(policy.retention_days).saturating_mul(86_400_000),
            limit: 20,
        },
        limits: plane.change_limits.clone(),
        health: plane.health.clone(),
        backup_timeout_ms: millis(policy.timeout),
        ticks_per_execution: 20,
        generation: 0,
    };
    plane
        .client
        .start_orchestration_typed(&id, toygres_orchestrations::names::BACKUP_SCHEDULER, input)
        .await?;
    tracing::info!(workflow_id = %id, "started the backup scheduler");
    Ok(Some(id))
}

/// The workflow id that should play singleton `role` when none runs: the recorded one if it
/// never started, a new one (prefixed `prefix`) if it ended; `None` when one runs or another
/// replica took the part first.
async fn claim_singleton(
    plane: &ControlPlane,
    role: &str,
    prefix: &str,
) -> anyhow::Result<Option<String>> {
    let recorded = plane.metadata.singleton_workflow(role).await?;
    Ok(match &recorded {
        None => {
            let id = prefix.to_string();
            plane
                .metadata
                .replace_singleton_workflow(role, None, &id)
                .await?
                .then_some(id)
        }
        Some(id) => match plane.client.get_orchestration_status(id).await? {
            OrchestrationStatus::Running { .. } => None,
            OrchestrationStatus::NotFound => Some(id.clone()),
            OrchestrationStatus::Completed { .. } | OrchestrationStatus::Failed { .. } => {
                let next = crate::plane::random_id(&format!("{prefix}-"));
                plane
                    .metadata
                    .replace_singleton_workflow(role, Some(id), &next)
                    .await?
                    .then_some(next)
            }
        },
    })
}

/// The singleton role of the warm pool's workflow.
const POOL_ROLE: &str = "warm-pool";

/// Makes sure the one warm-pool workflow runs (when this server keeps a pool); returns the id
/// it started, if any.
pub async fn ensure_warm_pool(plane: &ControlPlane) -> anyhow::Result<Option<String>> {
    if plane
        .backend
        .warm_pool()
        .is_none_or(|pool| pool.size() == 0)
    {
        return Ok(None);
    }
    let Some(id) = claim_singleton(plane, POOL_ROLE, "toygres-warm-pool").await? else {
        return Ok(None);
    };
    let input = toygres_orchestrations::types::WarmPoolInput {
        workflow_id: id.clone(),
        tick_ms: 500,
        refill_timeout_ms: 300_000,
        ticks_per_execution: 50,
        generation: 0,
    };
    plane
        .client
        .start_orchestration_typed(&id, toygres_orchestrations::names::WARM_POOL, input)
        .await?;
    tracing::info!(workflow_id = %id, "started the warm pool's refills");
    Ok(Some(id))
}

/// Makes sure the one reconcile-drift workflow runs; returns the id it started, if any.
pub async fn ensure_drift_reconciler(plane: &ControlPlane) -> anyhow::Result<Option<String>> {
    let Some(id) = claim_singleton(plane, DRIFT_ROLE, "toygres-drift").await? else {
        return Ok(None);
    };
    let input = toygres_orchestrations::types::ReconcileDriftInput {
        workflow_id: id.clone(),
        interval_ms: u64::try_from(plane.drift_interval.as_millis()).unwrap_or(u64::MAX),
        grace_ms: u64::try_from(plane.drift_grace.as_millis()).unwrap_or(u64::MAX),
        scans_per_execution: 20,
        ..Default::default()
    };
    plane
        .client
        .start_orchestration_typed(&id, toygres_orchestrations::names::RECONCILE_DRIFT, input)
        .await?;
    tracing::info!(workflow_id = %id, "started the drift reconciler");
    Ok(Some(id))
}
