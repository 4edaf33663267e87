//! Removes backend resources that no live instance owns (after the drift grace period).

use crate::activities::{backend_failure, metadata_failure};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::RemoveOrphanInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RemoveOrphanInput`], output `bool` (removed). Idempotent.
pub const NAME: &str = "toygres-activities::activity::remove-orphan";

/// Deletes the resources of the orphaned incarnation, unless it is a live instance's after all.
/// Resources of another incarnation of the name (a new instance created meanwhile) are never
/// touched.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: RemoveOrphanInput,
) -> Result<bool, String> {
    let live = deps
        .metadata
        .live_instance(input.name.as_str())
        .await
        .map_err(metadata_failure)?;
    let uids = match (&input.uid, &live) {
        (Some(uid), Some(live)) if &live.uid == uid => return Ok(false),
        (Some(uid), _) => vec![uid.clone()],
        // Inputs recorded before incarnations were reported: the name as a whole, when no
        // live instance has it.
        (None, Some(_)) => return Ok(false),
        (None, None) => deps
            .backend
            .list_owned()
            .await
            .map_err(|error| backend_failure(ErrorCode::DeleteFailed, error))?
            .into_iter()
            .filter(|owned| owned.name == input.name)
            .filter_map(|owned| owned.uid)
            .collect(),
    };
    for uid in &uids {
        deps.backend
            .delete(input.instance(), uid)
            .await
            .map_err(|error| backend_failure(ErrorCode::DeleteFailed, error))?;
    }
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
