//! Records the success of an operation other than a create or delete.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{Applied, CompleteOperationInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`CompleteOperationInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::complete-operation";

/// One transaction: the instance's new state and changes, the operation succeeded, an event.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: CompleteOperationInput,
) -> Result<Applied, String> {
    let applied = deps
        .metadata
        .complete_operation(
            input.instance_id,
            &input.operation_id,
            &input.expected,
            input.to,
            &input.changes,
            input.result.as_ref(),
            &input.message,
        )
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
