//! Removes backend resources that no live instance owns (after the drift grace period).

use crate::activities::{backend_failure, metadata_failure};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::RemoveOrphanInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RemoveOrphanInput`], output `bool` (removed). Idempotent.
pub const NAME: &str = "toygres-activities::activity::remove-orphan";

/// Deletes the resources unless a live instance has claimed the name meanwhile.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: RemoveOrphanInput,
) -> Result<bool, String> {
    if deps
        .metadata
        .live_instance(input.name.as_str())
        .await
        .map_err(metadata_failure)?
        .is_some()
    {
        return Ok(false);
    }
    deps.backend
        .delete(&input.name)
        .await
        .map_err(|error| backend_failure(ErrorCode::DeleteFailed, error))?;
    let message = format!(
        "cleanup: removed backend resources of {} that no live instance owned",
        input.name
    );
    deps.metadata
        .record_event_by_name(input.name.as_str(), "drift", &message)
        .await
        .map_err(metadata_failure)?;
    tracing::warn!(instance = %input.name, "removed orphaned backend resources");
    Ok(true)
}
