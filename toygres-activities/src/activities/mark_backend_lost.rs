//! Marks a running instance whose backend resources vanished as `failed` (`backend_lost`).

use crate::activities::{backend_failure, metadata_failure};
use crate::backend::Readiness;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::MarkBackendLostInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`MarkBackendLostInput`], output `bool` (marked). Idempotent.
pub const NAME: &str = "toygres-activities::activity::mark-backend-lost";

/// Re-checks that the backend has nothing under the name, then marks the instance (only if it
/// is still running and no operation holds it).
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: MarkBackendLostInput,
) -> Result<bool, String> {
    let readiness = deps
        .backend
        .readiness(input.instance())
        .await
        .map_err(|error| backend_failure(ErrorCode::Internal, error))?;
    if readiness != Readiness::Missing {
        return Ok(false);
    }
    let marked = deps
        .metadata
        .mark_backend_lost(input.instance_id, "its backend resources vanished")
        .await
        .map_err(metadata_failure)?;
    if marked {
        tracing::warn!(instance = %input.name, "instance lost its backend resources");
    }
    Ok(marked)
}
