//! Stops an instance's server, keeping its data; it stays down until started again.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::IncarnationInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`IncarnationInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::stop-postgres";

/// Stops the incarnation's server and returns once it is down.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: IncarnationInput,
) -> Result<(), String> {
    deps.backend
        .stop(input.instance(), &input.uid)
        .await
        .map_err(|error| backend_failure(ErrorCode::StopFailed, error).into())
}
