//! Stops one incarnation of an instance and removes all of its backend resources.

use crate::activities::{backend_failure, metadata_failure};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::DeletePostgresInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`DeletePostgresInput`], output `()`. Idempotent: nothing there is success.
pub const NAME: &str = "toygres-activities::activity::delete-postgres";

/// Deletes the resources of the incarnation the input names (or, for inputs recorded before
/// deletes named one, of every incarnation of the name but a running instance's).
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: DeletePostgresInput,
) -> Result<(), String> {
    let failed = |error| backend_failure(ErrorCode::DeleteFailed, error);
    let uids = match &input.uid {
        Some(uid) => vec![uid.clone()],
        None => {
            let running = deps
                .metadata
                .running_uids(input.name.as_str())
                .await
                .map_err(metadata_failure)?;
            deps.backend
                .list_owned()
                .await
                .map_err(failed)?
                .into_iter()
                .filter(|owned| owned.name == input.name)
                .filter_map(|owned| owned.uid)
                .filter(|uid| !running.contains(uid))
                .collect()
        }
    };
    for uid in &uids {
        deps.backend
            .delete(input.instance(), uid)
            .await
            .map_err(failed)?;
    }
    ctx.trace_info(format!("deleted backend resources of {}", input.name));
    Ok(())
}
