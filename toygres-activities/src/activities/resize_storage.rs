//! Grows an instance's storage.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::ResizeStorageInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`ResizeStorageInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::resize-storage";

/// Grows the incarnation's storage; a backend that cannot is `unsupported_by_backend`.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ResizeStorageInput,
) -> Result<(), String> {
    deps.backend
        .resize(input.instance(), &input.uid, input.storage_gb)
        .await
        .map_err(|error| backend_failure(ErrorCode::UpdateFailed, error).into())
}
