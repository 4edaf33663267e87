//! Removes the backups of a deleted instance once they are past retention.

use crate::activities::{backup_agent, backup_error, metadata_failure};
use crate::registry::ActivityDeps;
use crate::types::ExpireBackupsInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`ExpireBackupsInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::expire-backups";

/// Removes the stanza's repository and marks the backups expired.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ExpireBackupsInput,
) -> Result<(), String> {
    let agent = backup_agent(&deps)?;
    agent
        .remove(&input.stanza)
        .await
        .map_err(|error| backup_error(&format!("removing the backups of {}", input.name), error))?;
    deps.metadata
        .mark_backups_expired(input.instance_id)
        .await
        .map_err(metadata_failure)?;
    Ok(())
}
