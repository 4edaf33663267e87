//! Records a successful delete: instance deleted (kept for audit), operation succeeded.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{Applied, CompleteDeleteInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`CompleteDeleteInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::complete-delete";

/// One transaction: instance `deleting -> deleted`, operation succeeded, an audit event.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: CompleteDeleteInput,
) -> Result<Applied, String> {
    let applied = deps
        .metadata
        .complete_delete(input.instance_id, &input.operation_id)
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
