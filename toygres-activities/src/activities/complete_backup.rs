//! Records a finished backup, and what retention removed meanwhile.

use crate::activities::{backup_agent, metadata_failure};
use crate::registry::ActivityDeps;
use crate::types::{Applied, CompleteBackupInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`CompleteBackupInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::complete-backup";

/// The backup row succeeded; backups pgBackRest expired after it are marked so.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: CompleteBackupInput,
) -> Result<Applied, String> {
    // pgBackRest expires by retention after each backup: the rows follow what it keeps (a
    // failure to read that is no failure of the backup; the next one catches up).
    if let Ok(agent) = backup_agent(&deps) {
        match agent.list(&input.uid).await {
            Ok(kept) => {
                let labels: Vec<String> = kept.into_iter().map(|backup| backup.label).collect();
                deps.metadata
                    .sync_expired_backups(input.instance_id, &labels)
                    .await
                    .map_err(metadata_failure)?;
            }
            Err(error) => {
                tracing::warn!(instance = %input.name, %error, "could not list the backups kept")
            }
        }
    }
    let applied = deps
        .metadata
        .complete_backup(&input.backup_id, &input.summary, input.finish_operation)
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
