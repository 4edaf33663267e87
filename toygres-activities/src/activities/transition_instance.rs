//! Records an instance state transition (conditional: never backwards).

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{Applied, TransitionInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`TransitionInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::transition-instance";

/// Applies the transition when the operation holds the instance and the state may follow.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: TransitionInput,
) -> Result<Applied, String> {
    let applied = deps
        .metadata
        .transition_instance(
            input.instance_id,
            &input.operation_id,
            input.to,
            &input.message,
        )
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
