//! Compares what the backend owns with what the metadata says, incarnation by incarnation.

use crate::activities::{backend_failure, metadata_failure};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{DetectDriftInput, DriftReport, LostInstance, OrphanedResources};
use crate::validation::InstanceName;
use duroxide::ActivityContext;
use std::collections::HashSet;
use std::sync::Arc;

/// Activity name. Input [`DetectDriftInput`], output [`DriftReport`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::detect-drift";

/// Orphans: owned by the backend, no live instance. Lost: running and idle, and not running on
/// the backend (not owned, or, where the backend says, without its server).
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
    let running_on_backend = deps
        .backend
        .list_running()
        .await
        .map_err(|error| backend_failure(ErrorCode::Internal, error))?;
    // Live incarnations last: resources appear only after their instance row, so an owned
    // incarnation with no live row now has none.
    let live: HashSet<(String, String)> = deps
        .metadata
        .live_incarnations()
        .await
        .map_err(metadata_failure)?
        .into_iter()
        .collect();
    let live_names: HashSet<&str> = live.iter().map(|(name, _)| name.as_str()).collect();
    // Lost: not running on the backend (where it says what runs), else owning nothing.
    let runs = running_on_backend.as_ref().unwrap_or(&owned);
    let owned_uids: HashSet<&str> = runs.iter().filter_map(|o| o.uid.as_deref()).collect();
    let orphans = owned
        .iter()
        .filter(|owned| match &owned.uid {
            Some(uid) => !live.contains(&(owned.name.to_string(), uid.clone())),
            // Resources without an incarnation: orphaned when no live instance has the name.
            None => !live_names.contains(owned.name.as_str()),
        })
        .map(|owned| OrphanedResources {
            name: owned.name.clone(),
            namespace: owned.namespace.clone(),
            uid: owned.uid.clone(),
        })
        .collect();
    // The backend lists only the namespaces it is configured to allow: an instance in one
    // taken off that list is not looked for, so it is not reported lost either.
    let listed = deps.backend.allowed_namespaces();
    let default = deps.backend.default_namespace().to_string();
    let lost = running
        .into_iter()
        .filter(|instance| !owned_uids.contains(instance.uid.as_str()))
        .filter(|instance| listed.contains(instance.namespace.as_ref().unwrap_or(&default)))
        .filter_map(|instance| {
            Some(LostInstance {
                instance_id: instance.id,
                name: InstanceName::parse(&instance.name).ok()?,
                namespace: instance.namespace,
            })
        })
        .collect();
    Ok(DriftReport { orphans, lost })
}
