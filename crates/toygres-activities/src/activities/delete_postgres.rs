//! Stops an instance and removes all of its backend resources.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::DeletePostgresInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`DeletePostgresInput`], output `()`. Idempotent: nothing there is success.
pub const NAME: &str = "toygres-activities::activity::delete-postgres";

/// Deletes the instance's resources.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: DeletePostgresInput,
) -> Result<(), String> {
    deps.backend
        .delete(&input.name)
        .await
        .map_err(|error| backend_failure(ErrorCode::DeleteFailed, error))?;
    ctx.trace_info(format!("deleted backend resources of {}", input.name));
    Ok(())
}
