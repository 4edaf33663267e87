//! Starts accepted operations whose workflow is missing (the server stopped between recording
//! an operation and starting it), and settles operations whose workflow ended without writing
//! its outcome.

use crate::service::ControlPlane;
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
                let error =
                    ActivityError::permanent(ErrorCode::Internal, details.display_message());
                let step = operation.step.clone().unwrap_or_else(|| "unknown".into());
                plane
                    .metadata
                    .fail_operation(instance.id, &operation.id, &step, &error, "")
                    .await?;
                report.settled.push(operation.id);
            }
            OrchestrationStatus::Completed { .. } | OrchestrationStatus::Running { .. } => {}
        }
    }
    if check_monitors {
        ensure_monitors(plane, include_recent, &mut report).await?;
        ensure_drift_reconciler(plane).await?;
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
                    crate::service::random_id("r")
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

/// Makes sure the one reconcile-drift workflow runs; returns the id it started, if any.
pub async fn ensure_drift_reconciler(plane: &ControlPlane) -> anyhow::Result<Option<String>> {
    let recorded = plane.metadata.singleton_workflow(DRIFT_ROLE).await?;
    let id = match &recorded {
        None => {
            let id = "toygres-drift".to_string();
            if !plane
                .metadata
                .replace_singleton_workflow(DRIFT_ROLE, None, &id)
                .await?
            {
                return Ok(None); // another replica recorded one first
            }
            id
        }
        Some(id) => match plane.client.get_orchestration_status(id).await? {
            OrchestrationStatus::Running { .. } => return Ok(None),
            OrchestrationStatus::NotFound => id.clone(),
            // Ended (it never should): a new one takes over under a new id.
            OrchestrationStatus::Completed { .. } | OrchestrationStatus::Failed { .. } => {
                let next = crate::service::random_id("toygres-drift-");
                if !plane
                    .metadata
                    .replace_singleton_workflow(DRIFT_ROLE, Some(id), &next)
                    .await?
                {
                    return Ok(None);
                }
                next
            }
        },
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
