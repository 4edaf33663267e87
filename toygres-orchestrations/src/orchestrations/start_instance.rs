//! start-instance: starting -> the server comes back with its data, port and connection string
//! -> it accepts the control plane's monitoring role -> running, with a new monitor.

use crate::change::Change;
use crate::types::{LifecycleInput, START_STEPS};
use duroxide::OrchestrationContext;
use toygres_activities::activities::start_postgres;
use toygres_activities::model::InstanceState;
use toygres_activities::types::{IncarnationInput, InstanceChanges, MonitorChange};

/// Runs the start workflow.
pub async fn run(ctx: OrchestrationContext, input: LifecycleInput) -> Result<(), String> {
    let change = Change::begin(&ctx, &input.target, &START_STEPS, "start").await?;
    let outcome = change.within_deadline(start(&change)).await;
    change.finish(outcome).await
}

async fn start(change: &Change<'_>) -> Result<(), crate::steps::StepFailure> {
    let target = change.target;
    change.enter("mark_starting", 0);
    change
        .mark("mark_starting", InstanceState::Starting)
        .await?;

    change.enter("start_server", 1);
    let incarnation = IncarnationInput {
        name: target.name.clone(),
        namespace: target.namespace.clone(),
        uid: target.uid.clone(),
    };
    change
        .run("start_server", start_postgres::NAME, &incarnation)
        .await?;

    change.enter("wait_ready", 2);
    change.wait_ready("wait_ready").await?;

    change.enter("test_connection", 3);
    let tested = change.test_as_monitor("test_connection").await?;

    change.enter("finalize", 4);
    let monitor_id = change.new_monitor_id();
    let changes = InstanceChanges {
        monitor: Some(MonitorChange::Assign(monitor_id.clone())),
        ..InstanceChanges::default()
    };
    change
        .finalize(
            &[InstanceState::Starting],
            InstanceState::Running,
            changes,
            Some(serde_json::json!({ "server_version": tested.server_version })),
            "accepted a connection after the start",
        )
        .await?;
    change.start_monitor(&monitor_id);
    Ok(())
}
