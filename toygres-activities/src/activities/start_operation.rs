//! Marks an operation running, and tells the workflow whether it should still proceed.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::StartOperationInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`StartOperationInput`], output `bool` (proceed). Idempotent.
pub const NAME: &str = "toygres-activities::activity::start-operation";

/// Moves the operation from pending to running; returns false when it already finished (for
/// example, it was canceled before its workflow got to run).
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: StartOperationInput,
) -> Result<bool, String> {
    deps.metadata
        .start_operation(&input.operation_id)
        .await
        .map_err(metadata_failure)?;
    let operation = deps
        .metadata
        .operation(&input.operation_id)
        .await
        .map_err(metadata_failure)?;
    Ok(operation.is_some_and(|operation| !operation.status.is_terminal()))
}
