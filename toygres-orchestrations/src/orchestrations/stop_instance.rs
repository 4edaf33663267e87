//! stop-instance: stopping -> (an instance that archives: its current WAL is archived, so a
//! restore from the stopped instance loses nothing) -> the server goes down (its data, port
//! and connection string kept) -> stopped. Its monitor stops by itself: a stopped instance is
//! not health-checked.

use crate::change::Change;
use crate::types::{LifecycleInput, STOP_STEPS};
use duroxide::OrchestrationContext;
use toygres_activities::activities::{flush_archive, stop_postgres};
use toygres_activities::model::InstanceState;
use toygres_activities::types::{
    FlushArchiveInput, Flushed, IncarnationInput, InstanceChanges, MonitorChange,
};

/// Runs the stop workflow.
pub async fn run(ctx: OrchestrationContext, input: LifecycleInput) -> Result<(), String> {
    let change = Change::begin(&ctx, &input.target, &STOP_STEPS, "stop").await?;
    let outcome = change.within_deadline(stop(&change, input.archives)).await;
    change.finish(outcome).await
}

async fn stop(change: &Change<'_>, archives: bool) -> Result<(), crate::steps::StepFailure> {
    let target = change.target;
    change.enter("mark_stopping", 0);
    change
        .mark("mark_stopping", InstanceState::Stopping)
        .await?;

    change.enter("flush_archive", 1);
    if archives {
        let flush = FlushArchiveInput {
            name: target.name.clone(),
            instance_id: target.instance_id,
            uid: target.uid.clone(),
            sealed_admin_password: target.sealed_admin_password.clone(),
        };
        // Broken archiving must not keep an instance from stopping: its backups already say
        // `failing`.
        if let Err(failure) = change
            .call_within::<_, Flushed>(
                "flush_archive",
                flush_archive::NAME,
                &flush,
                change.step_limit(),
            )
            .await
        {
            change.ctx.trace_warn(format!(
                "the WAL of {} could not be archived before the stop: {}",
                target.name, failure.error
            ));
        }
    }

    change.enter("stop_server", 2);
    let incarnation = IncarnationInput {
        name: target.name.clone(),
        namespace: target.namespace.clone(),
        uid: target.uid.clone(),
    };
    change
        .run("stop_server", stop_postgres::NAME, &incarnation)
        .await?;

    change.enter("finalize", 3);
    let changes = InstanceChanges {
        monitor: Some(MonitorChange::Clear),
        ..InstanceChanges::default()
    };
    change
        .finalize(
            &[InstanceState::Stopping],
            InstanceState::Stopped,
            changes,
            None,
            "the server is down, its data kept",
        )
        .await
}
