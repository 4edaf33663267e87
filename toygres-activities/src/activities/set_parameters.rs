//! Sets parameters that a reload applies, as the instance's `toygres_admin`.

use crate::activities::{admin_failure, admin_target};
use crate::error::ErrorCode;
use crate::parameters::apply;
use crate::registry::ActivityDeps;
use crate::types::SetParametersInput;
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`SetParametersInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::set-parameters";

/// `ALTER SYSTEM` for each change, then a reload.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: SetParametersInput,
) -> Result<(), String> {
    let target = admin_target(&deps, &input.admin)?;
    apply::alter_and_reload(
        deps.backend.as_ref(),
        &target,
        &input.changes,
        Duration::from_millis(input.admin.timeout_ms),
    )
    .await
    .map_err(|error| {
        admin_failure(
            ErrorCode::UpdateFailed,
            format!("setting parameters of {}", input.admin.name),
            error,
        )
        .into()
    })
}
