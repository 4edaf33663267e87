//! Compares what the backend owns with what the metadata says.

use crate::activities::{backend_failure, metadata_failure};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{DetectDriftInput, DriftReport, LostInstance};
use crate::validation::InstanceName;
use duroxide::ActivityContext;
use std::collections::HashSet;
use std::sync::Arc;

/// Activity name. Input [`DetectDriftInput`], output [`DriftReport`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::detect-drift";

/// Orphans: owned by the backend, no live instance. Lost: running and idle, not owned.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    _input: DetectDriftInput,
) -> Result<DriftReport, String> {
    // Running instances first, then the backend: an instance deleted in between is held by its
    // delete (not idle) when `mark-backend-lost` re-checks, so it is never marked lost.
    let running = deps
        .metadata
        .idle_running_instances()
        .await
        .map_err(metadata_failure)?;
    let owned = deps
        .backend
        .list_owned()
        .await
        .map_err(|error| backend_failure(ErrorCode::Internal, error))?;
    // Live names last: resources appear only after their instance row, so an owned name with
    // no live row now has none.
    let live: HashSet<String> = deps
        .metadata
        .live_names()
        .await
        .map_err(metadata_failure)?
        .into_iter()
        .collect();
    let owned_names: HashSet<&str> = owned.iter().map(InstanceName::as_str).collect();
    let orphans = owned
        .iter()
        .filter(|name| !live.contains(name.as_str()))
        .cloned()
        .collect();
    let lost = running
        .into_iter()
        .filter(|instance| !owned_names.contains(instance.name.as_str()))
        .filter_map(|instance| {
            Some(LostInstance {
                instance_id: instance.id,
                name: InstanceName::parse(&instance.name).ok()?,
            })
        })
        .collect();
    Ok(DriftReport { orphans, lost })
}
