//! Waits a short, bounded time for an instance to accept connections.

use crate::activities::backend_failure;
use crate::backend::Readiness;
use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::types::{WaitForReadyInput, WaitForReadyOutput};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`WaitForReadyInput`], output [`WaitForReadyOutput`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::wait-for-ready";

/// The longest wait one call makes, whatever the input says.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Time between checks.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Checks readiness until ready or `wait_ms` passed; the workflow decides what happens next.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: WaitForReadyInput,
) -> Result<WaitForReadyOutput, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(input.wait_ms).min(MAX_WAIT);
    loop {
        let readiness = deps
            .backend
            .readiness(&input.name)
            .await
            .map_err(|error| backend_failure(ErrorCode::DeployFailed, error))?;
        let detail = match readiness {
            Readiness::Ready => {
                return Ok(WaitForReadyOutput {
                    ready: true,
                    detail: None,
                });
            }
            Readiness::Missing => {
                return Err(ActivityError::permanent(
                    ErrorCode::BackendLost,
                    format!("instance {} is not deployed", input.name),
                )
                .into());
            }
            Readiness::NotReady(detail) => detail,
        };
        // The workflow ended (canceled): stop looking, the answer is no longer wanted.
        if tokio::time::Instant::now() >= deadline || ctx.is_cancelled() {
            return Ok(WaitForReadyOutput {
                ready: false,
                detail: Some(detail),
            });
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
