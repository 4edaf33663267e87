//! Removes the finished executions of a long-running workflow (one that continues as new), so
//! its history stays bounded.

use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::types::PruneHistoryInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`PruneHistoryInput`], output the number of executions removed. Idempotent.
pub const NAME: &str = "toygres-activities::activity::prune-history";

/// Keeps only the current execution of the workflow.
pub async fn run(
    _deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: PruneHistoryInput,
) -> Result<u64, String> {
    let options = duroxide::PruneOptions {
        keep_last: None,
        ..Default::default()
    };
    let pruned = ctx
        .get_client()
        .prune_executions(&input.workflow_id, options)
        .await
        .map_err(|error| ActivityError::transient(ErrorCode::Internal, error.to_string()))?;
    Ok(pruned.executions_deleted)
}
