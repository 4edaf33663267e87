//! Restarts an instance's server, optionally with new settings on its command line.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::RestartPostgresInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RestartPostgresInput`], output `()`. Idempotent (a second run
/// restarts once more, with the same settings).
pub const NAME: &str = "toygres-activities::activity::restart-postgres";

/// Restarts the incarnation's server without waiting for it to accept connections.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: RestartPostgresInput,
) -> Result<(), String> {
    deps.backend
        .restart(input.instance(), &input.uid, input.parameters.as_ref())
        .await
        .map_err(|error| backend_failure(ErrorCode::RestartFailed, error).into())
}
