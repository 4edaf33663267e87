//! Finds what the backup scheduler has to do: instances due for a backup, deleted instances
//! whose backups are past retention.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{BackupPlan, PlanBackupsInput};
use crate::validation::InstanceName;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`PlanBackupsInput`], output [`BackupPlan`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::plan-backups";

/// Due: running, idle, no succeeded backup within the interval and no attempt within the
/// retry pause. Expired: deleted longer ago than the retention.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: PlanBackupsInput,
) -> Result<BackupPlan, String> {
    if deps.backend.backups().is_none() {
        return Ok(BackupPlan::default());
    }
    let now = chrono::Utc::now();
    let ago =
        |ms: u64| now - chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2));
    let limit = i64::from(input.limit.max(1));
    let due = deps
        .metadata
        .instances_due_for_backup(ago(input.interval_ms), ago(input.retry_ms), limit)
        .await
        .map_err(metadata_failure)?;
    let expired = deps
        .metadata
        .deleted_instances_with_backups(ago(input.retention_ms), limit)
        .await
        .map_err(metadata_failure)?;
    let named = |name: &str| InstanceName::parse(name).ok();
    Ok(BackupPlan {
        due: due
            .into_iter()
            .filter_map(|i| Some((i.id, named(&i.name)?, i.last_operation_id)))
            .collect(),
        expired: expired
            .into_iter()
            .filter_map(|i| Some((i.id, named(&i.name)?, i.uid)))
            .collect(),
    })
}
