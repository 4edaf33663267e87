//! Cancels another operation's workflow (a create overtaken by a delete) and waits, briefly,
//! for it to stop.

use crate::activities::{cancel_and_wait, metadata_failure};
use crate::registry::ActivityDeps;
use crate::types::{CancelOperationInput, CancelOperationOutput};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`CancelOperationInput`], output [`CancelOperationOutput`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::cancel-operation";

/// Requests cancellation, waits up to `wait_ms` for the workflow to stop, and when it has,
/// records the operation as canceled (unless it had already finished on its own). A workflow
/// that never started counts as stopped: the canceled status recorded here keeps it from ever
/// starting.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: CancelOperationInput,
) -> Result<CancelOperationOutput, String> {
    let wait = Duration::from_millis(input.wait_ms);
    let stopped = cancel_and_wait(
        &ctx.get_client(),
        &input.operation_id,
        input.reason.clone(),
        wait,
    )
    .await?;
    if stopped {
        deps.metadata
            .cancel_operation(&input.operation_id, &input.reason)
            .await
            .map_err(metadata_failure)?;
    }
    Ok(CancelOperationOutput { stopped })
}
