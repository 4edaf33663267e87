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

/// Waits until ready or `wait_ms` passed, the way the backend can tell cheaply
/// ([`crate::backend::Backend::wait_ready`]: the local postmaster's state, or a backoff on
/// Kubernetes); the workflow decides what happens next.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: WaitForReadyInput,
) -> Result<WaitForReadyOutput, String> {
    let wait = Duration::from_millis(input.wait_ms).min(MAX_WAIT);
    let readiness = tokio::select! {
        readiness = deps.backend.wait_ready(input.instance(), wait) => readiness
            .map_err(|error| backend_failure(ErrorCode::DeployFailed, error))?,
        // The workflow ended (canceled): stop looking, the answer is no longer wanted.
        () = ctx.cancelled() => Readiness::NotReady("the wait was canceled".into()),
    };
    match readiness {
        Readiness::Ready => Ok(WaitForReadyOutput {
            ready: true,
            detail: None,
        }),
        Readiness::Missing => Err(ActivityError::permanent(
            ErrorCode::BackendLost,
            format!("instance {} is not deployed", input.name),
        )
        .into()),
        Readiness::Stopped => Err(ActivityError::permanent(
            ErrorCode::InvalidState,
            format!("instance {} was stopped", input.name),
        )
        .into()),
        Readiness::NotReady(detail) => Ok(WaitForReadyOutput {
            ready: false,
            detail: Some(detail),
        }),
    }
}
