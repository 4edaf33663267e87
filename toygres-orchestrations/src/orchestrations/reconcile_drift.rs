//! reconcile-drift: every interval, compare what the backend owns with the metadata.
//! - Backend resources of an incarnation no live instance is, seen so for at least the grace
//!   period, are removed (those of that incarnation only: a new instance of the same name
//!   created meanwhile is never touched).
//! - A running instance whose resources are gone, seen so in two scans in a row, is marked
//!   `failed` with code `backend_lost`.
//!
//! Both are recorded as instance events. It continues as new every few scans (carrying what it
//! has seen) and prunes its earlier executions.

use crate::steps::{StepPolicy, call};
use crate::types::ReconcileDriftInput;
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{
    detect_drift, mark_backend_lost, prune_history, remove_orphan,
};
use toygres_activities::types::{
    DetectDriftInput, DriftReport, MarkBackendLostInput, PruneHistoryInput, RemoveOrphanInput,
};
use toygres_activities::validation::InstanceName;

/// Runs the reconciler.
pub async fn run(ctx: OrchestrationContext, input: ReconcileDriftInput) -> Result<(), String> {
    let policy = StepPolicy::retried(3, Duration::from_secs(120));
    if input.generation > 0
        && let Ok(name) = InstanceName::parse("drift")
    {
        let prune = PruneHistoryInput {
            workflow_id: input.workflow_id.clone(),
            name,
        };
        if let Err(error) = call::<_, u64>(&ctx, prune_history::NAME, &prune, policy).await {
            ctx.trace_warn(format!(
                "pruning the history of {} failed: {error}",
                input.workflow_id
            ));
        }
    }
    let mut state = input;
    let grace_scans = state.grace_ms.div_ceil(state.interval_ms.max(1)).max(1);
    for _ in 0..state.scans_per_execution.max(1) {
        ctx.schedule_timer(Duration::from_millis(state.interval_ms.max(100)))
            .await;
        state.scan += 1;
        let report: DriftReport =
            match call(&ctx, detect_drift::NAME, &DetectDriftInput {}, policy).await {
                Ok(report) => report,
                Err(error) => {
                    ctx.trace_warn(format!("drift scan failed: {error}"));
                    continue;
                }
            };

        // Orphans (by name and incarnation): remember when first seen; remove once seen for the
        // whole grace period.
        state
            .orphan_since
            .retain(|key, _| report.orphans.iter().any(|orphan| &orphan.key() == key));
        for orphan in &report.orphans {
            let key = orphan.key();
            let since = *state.orphan_since.entry(key.clone()).or_insert(state.scan);
            if state.scan - since >= grace_scans {
                let remove = RemoveOrphanInput {
                    name: orphan.name.clone(),
                    namespace: orphan.namespace.clone(),
                    uid: orphan.uid.clone(),
                };
                match call::<_, bool>(&ctx, remove_orphan::NAME, &remove, policy).await {
                    Ok(_) => {
                        state.orphan_since.remove(&key);
                    }
                    Err(error) => ctx.trace_warn(format!(
                        "removing orphaned resources of {key} failed: {error}"
                    )),
                }
            }
        }

        // Lost instances: confirmed by a second scan in a row.
        state
            .lost_since
            .retain(|id, _| report.lost.iter().any(|lost| lost.instance_id == *id));
        for lost in &report.lost {
            let since = *state
                .lost_since
                .entry(lost.instance_id)
                .or_insert(state.scan);
            if state.scan > since {
                let mark = MarkBackendLostInput {
                    instance_id: lost.instance_id,
                    name: lost.name.clone(),
                    namespace: lost.namespace.clone(),
                };
                match call::<_, bool>(&ctx, mark_backend_lost::NAME, &mark, policy).await {
                    Ok(_) => {
                        state.lost_since.remove(&lost.instance_id);
                    }
                    Err(error) => ctx.trace_warn(format!(
                        "marking {} backend_lost failed: {error}",
                        lost.name
                    )),
                }
            }
        }
    }
    let next = ReconcileDriftInput {
        generation: state.generation + 1,
        ..state
    };
    ctx.continue_as_new_typed(&next).await.map(|_| ())
}
