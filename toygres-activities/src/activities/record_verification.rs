//! Records what a verify found on its backup.

use crate::activities::metadata_failure;
use crate::registry::ActivityDeps;
use crate::types::{Applied, RecordVerificationInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RecordVerificationInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::record-verification";

/// The verification on the backup row; when it passed, the verify operation succeeded.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: RecordVerificationInput,
) -> Result<Applied, String> {
    if input.failed {
        deps.metadata
            .record_failed_verification(&input.backup_id, &input.verification)
            .await
            .map_err(metadata_failure)?;
        return Ok(Applied { applied: true });
    }
    let applied = deps
        .metadata
        .record_verification(&input.backup_id, &input.operation_id, &input.verification)
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
