//! reset-password: updating -> the owner's password becomes the new one (a SCRAM verifier
//! computed by the control plane) -> the owner connects with it -> running, the new password
//! sealed on the instance. The control plane's own roles are not touched, so health checks go
//! on. If it fails after the password was set, the owner's password is the old or the new one:
//! a second reset settles it.

use crate::change::Change;
use crate::types::{RESET_PASSWORD_STEPS, ResetPasswordInput};
use duroxide::OrchestrationContext;
use toygres_activities::activities::set_owner_password;
use toygres_activities::model::InstanceState;
use toygres_activities::types::{InstanceChanges, SetOwnerPasswordInput};

/// Runs the reset-password workflow.
pub async fn run(ctx: OrchestrationContext, input: ResetPasswordInput) -> Result<(), String> {
    let change =
        Change::begin(&ctx, &input.target, &RESET_PASSWORD_STEPS, "password reset").await?;
    let outcome = change.within_deadline(reset(&change, &input)).await;
    change.finish(outcome).await
}

async fn reset(
    change: &Change<'_>,
    input: &ResetPasswordInput,
) -> Result<(), crate::steps::StepFailure> {
    let target = change.target;
    change.enter("mark_updating", 0);
    change
        .mark("mark_updating", InstanceState::Updating)
        .await?;

    change.enter("set_password", 1);
    let set = SetOwnerPasswordInput {
        admin: change.admin(),
        owner: target.user.clone(),
        sealed_password: input.sealed_password.clone(),
    };
    change
        .run("set_password", set_owner_password::NAME, &set)
        .await?;

    change.enter("test_connection", 2);
    change
        .test_connection("test_connection", &target.user, &input.sealed_password)
        .await?;

    change.enter("finalize", 3);
    let changes = InstanceChanges {
        sealed_password: Some(input.sealed_password.clone()),
        ..InstanceChanges::default()
    };
    change
        .finalize(
            &[InstanceState::Updating],
            InstanceState::Running,
            changes,
            None,
            "the owner's password was reset",
        )
        .await
}
