//! Records a failed operation with its typed error, and releases the instance.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{FailOperationInput, FailOutcome};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`FailOperationInput`], output [`FailOutcome`] (`null` in histories
/// recorded before it had one). Idempotent.
pub const NAME: &str = "toygres-activities::activity::fail-operation";

/// Operation failed with the error and step, unless it finished first; the instance (if still
/// held) is released, in `settle` or `failed` when it was moving between states.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: FailOperationInput,
) -> Result<FailOutcome, String> {
    let (recorded, status) = deps
        .metadata
        .fail_operation(
            input.instance_id,
            &input.operation_id,
            &input.step,
            &input.error,
            &input.cleanup_note,
            input.settle,
        )
        .await
        .map_err(metadata_failure)?;
    Ok(FailOutcome { recorded, status })
}
