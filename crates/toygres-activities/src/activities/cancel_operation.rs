//! Cancels another operation's workflow (a create overtaken by a delete) and waits, briefly,
//! for it to stop.

use crate::activities::metadata_failure;
use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::types::{CancelOperationInput, CancelOperationOutput};
use duroxide::{ActivityContext, OrchestrationStatus};
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`CancelOperationInput`], output [`CancelOperationOutput`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::cancel-operation";

/// The longest wait one call makes, whatever the input says.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Requests cancellation, waits up to `wait_ms` for the workflow to stop, and when it has,
/// records the operation as canceled (unless it had already finished on its own).
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: CancelOperationInput,
) -> Result<CancelOperationOutput, String> {
    let client = ctx.get_client();
    let internal = |error: duroxide::ClientError| {
        ActivityError::transient(ErrorCode::Internal, error.to_string())
    };
    client
        .cancel_instance(input.operation_id.clone(), input.reason.clone())
        .await
        .map_err(internal)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(input.wait_ms).min(MAX_WAIT);
    loop {
        let stopped = match client
            .get_orchestration_status(&input.operation_id)
            .await
            .map_err(internal)?
        {
            OrchestrationStatus::Completed { .. } | OrchestrationStatus::Failed { .. } => true,
            // Never started (the server stopped between recording and starting it): the
            // canceled status recorded below keeps it from ever starting.
            OrchestrationStatus::NotFound => true,
            OrchestrationStatus::Running { .. } => false,
        };
        if stopped {
            deps.metadata
                .cancel_operation(&input.operation_id, &input.reason)
                .await
                .map_err(metadata_failure)?;
            return Ok(CancelOperationOutput { stopped: true });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(CancelOperationOutput { stopped: false });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
