//! Starts a stopped instance's server again.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::IncarnationInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`IncarnationInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::start-postgres";

/// Starts the incarnation's server without waiting for it to accept connections.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: IncarnationInput,
) -> Result<(), String> {
    deps.backend
        .start(input.instance(), &input.uid)
        .await
        .map_err(|error| backend_failure(ErrorCode::StartFailed, error).into())
}
