//! Takes a backup of an instance with pgBackRest.

use crate::activities::{backup_agent, backup_error, open_password};
use crate::registry::ActivityDeps;
use crate::types::{BackupSummary, TakeBackupInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`TakeBackupInput`], output [`BackupSummary`]. Idempotent: the backup
/// is annotated with its id, and a second run finds it instead of taking another.
pub const NAME: &str = "toygres-activities::activity::take-backup";

/// Runs `pgbackrest backup` (resuming one a crash aborted) and says what it made.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: TakeBackupInput,
) -> Result<BackupSummary, String> {
    let agent = backup_agent(&deps)?;
    let password = open_password(&deps, &input.sealed_admin_password)?;
    let summary = if input.offline {
        agent
            .backup_offline(&input.name, &input.uid, &input.backup_id, input.kind)
            .await
    } else {
        agent
            .backup(
                &input.name,
                &input.uid,
                &input.backup_id,
                input.kind,
                &password,
            )
            .await
    };
    summary.map_err(|error| backup_error(&format!("backup of {}", input.name), error).into())
}
