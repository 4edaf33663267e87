//! restart-instance: updating -> a fast restart -> the server accepts the control plane's
//! monitoring role -> running. Its monitor keeps watching (checks during the restart are not
//! counted).

use crate::change::Change;
use crate::types::{LifecycleInput, RESTART_STEPS};
use duroxide::OrchestrationContext;
use toygres_activities::activities::restart_postgres;
use toygres_activities::model::InstanceState;
use toygres_activities::types::{InstanceChanges, RestartPostgresInput};

/// Runs the restart workflow.
pub async fn run(ctx: OrchestrationContext, input: LifecycleInput) -> Result<(), String> {
    let change = Change::begin(&ctx, &input.target, &RESTART_STEPS, "restart").await?;
    let outcome = change.within_deadline(restart(&change)).await;
    change.finish(outcome).await
}

async fn restart(change: &Change<'_>) -> Result<(), crate::steps::StepFailure> {
    let target = change.target;
    change.enter("mark_updating", 0);
    change
        .mark("mark_updating", InstanceState::Updating)
        .await?;

    change.enter("restart_server", 1);
    let restart = RestartPostgresInput {
        name: target.name.clone(),
        namespace: target.namespace.clone(),
        uid: target.uid.clone(),
        parameters: None,
    };
    change
        .run("restart_server", restart_postgres::NAME, &restart)
        .await?;

    change.enter("wait_ready", 2);
    change.wait_ready("wait_ready").await?;

    change.enter("test_connection", 3);
    let tested = change.test_as_monitor("test_connection").await?;

    change.enter("finalize", 4);
    change
        .finalize(
            &[InstanceState::Updating],
            InstanceState::Running,
            InstanceChanges::default(),
            Some(serde_json::json!({ "server_version": tested.server_version })),
            "accepted a connection after the restart",
        )
        .await
}
