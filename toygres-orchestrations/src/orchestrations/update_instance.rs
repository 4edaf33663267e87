//! update-instance: (updating, when the server is touched) -> grow the storage -> set the
//! parameters a reload applies (`ALTER SYSTEM`, reload) -> restart with the new command-line
//! settings and wait until the server accepts connections -> back to the state it was in, with
//! the new storage, parameters and deletion protection recorded.
//!
//! A server that does not come back with new settings is restarted with the previous ones and
//! the reloaded parameters are set back, so a bad value never leaves an instance that cannot
//! start; the update then fails with `restart_failed` and says why.

use crate::change::Change;
use crate::steps::StepFailure;
use crate::types::{StartParametersChange, UPDATE_STEPS, UpdateInstanceInput, UpdatePlan};
use duroxide::OrchestrationContext;
use std::collections::BTreeMap;
use toygres_activities::activities::{resize_storage, restart_postgres, set_parameters};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::InstanceState;
use toygres_activities::types::{
    InstanceChanges, ParameterChange, ResizeStorageInput, RestartPostgresInput, SetParametersInput,
};

/// Runs the update workflow.
pub async fn run(ctx: OrchestrationContext, input: UpdateInstanceInput) -> Result<(), String> {
    let change = Change::begin(&ctx, &input.target, &UPDATE_STEPS, "update").await?;
    let outcome = change.within_deadline(update(&change, &input)).await;
    change.finish(outcome).await
}

async fn update(change: &Change<'_>, input: &UpdateInstanceInput) -> Result<(), StepFailure> {
    let target = change.target;
    let plan = &input.plan;
    let touches_server =
        plan.storage_gb.is_some() || !plan.reload.is_empty() || plan.start.is_some();
    change.enter("mark_updating", 0);
    let during = if touches_server && plan.resume == InstanceState::Running {
        change
            .mark("mark_updating", InstanceState::Updating)
            .await?;
        InstanceState::Updating
    } else {
        plan.resume
    };

    change.enter("resize_storage", 1);
    if let Some(storage_gb) = plan.storage_gb {
        let resize = ResizeStorageInput {
            name: target.name.clone(),
            namespace: target.namespace.clone(),
            uid: target.uid.clone(),
            storage_gb,
        };
        change
            .run("resize_storage", resize_storage::NAME, &resize)
            .await?;
    }

    change.enter("set_parameters", 2);
    if !plan.reload.is_empty()
        && let Err(failure) = set(change, "set_parameters", &plan.reload).await
    {
        // Some may have applied: put back what was there.
        let _ = set(change, "set_parameters", &plan.reload_undo).await;
        return Err(failure);
    }

    change.enter("restart_server", 3);
    if let Some(start) = &plan.start
        && let Err(failure) = restart_with(change, &start.after).await
    {
        let restored = roll_back(change, plan, start).await;
        return Err(StepFailure {
            step: failure.step,
            error: ActivityError::permanent(
                ErrorCode::RestartFailed,
                format!(
                    "the server did not come back with the new settings ({}); {restored}",
                    failure.error.message
                ),
            ),
        });
    }

    change.enter("finalize", 4);
    let changes = InstanceChanges {
        parameters: plan.parameters.clone(),
        storage_gb: plan.storage_gb,
        deletion_protection: plan.deletion_protection,
        ..InstanceChanges::default()
    };
    change
        .finalize(&[during], plan.resume, changes, None, "updated")
        .await
}

/// Sets `changes` with `ALTER SYSTEM` and a reload.
async fn set(
    change: &Change<'_>,
    step: &'static str,
    changes: &[ParameterChange],
) -> Result<(), StepFailure> {
    let set = SetParametersInput {
        admin: change.admin(),
        changes: changes.to_vec(),
    };
    change.run(step, set_parameters::NAME, &set).await
}

/// Restarts the server with `parameters` on its command line and waits until it accepts the
/// control plane's monitoring role.
async fn restart_with(
    change: &Change<'_>,
    parameters: &BTreeMap<String, String>,
) -> Result<(), StepFailure> {
    let restart = RestartPostgresInput {
        name: change.target.name.clone(),
        namespace: change.target.namespace.clone(),
        uid: change.target.uid.clone(),
        parameters: Some(parameters.clone()),
    };
    change
        .run("restart_server", restart_postgres::NAME, &restart)
        .await?;
    change.wait_ready("restart_server").await?;
    change.test_as_monitor("restart_server").await.map(drop)
}

/// Restarts with the settings the server had and sets back the reloaded parameters; says what
/// it managed.
async fn roll_back(
    change: &Change<'_>,
    plan: &UpdatePlan,
    start: &StartParametersChange,
) -> String {
    if let Err(failure) = restart_with(change, &start.before).await {
        return format!(
            "restarting with the previous settings failed too: {}",
            failure.error.message
        );
    }
    if !plan.reload.is_empty()
        && let Err(failure) = set(change, "restart_server", &plan.reload_undo).await
    {
        return format!(
            "the previous settings are back, but setting back the others failed: {}",
            failure.error.message
        );
    }
    "the previous settings were restored".to_string()
}
