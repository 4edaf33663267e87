//! Records a failed operation with its typed error, and releases the instance.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::FailOperationInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`FailOperationInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::fail-operation";

/// Operation failed with the error and step; the instance (if still held) becomes `failed`.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: FailOperationInput,
) -> Result<(), String> {
    deps.metadata
        .fail_operation(
            input.instance_id,
            &input.operation_id,
            &input.step,
            &input.error,
            &input.cleanup_note,
        )
        .await
        .map_err(metadata_failure)?;
    Ok(())
}
