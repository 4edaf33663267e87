//! Restores a backup into a scratch cluster and checks it.

use crate::activities::backup_agent;
use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::types::{Verification, VerifyBackupInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`VerifyBackupInput`], output [`Verification`]. Idempotent: each run
/// restores into a fresh scratch cluster and removes it.
pub const NAME: &str = "toygres-activities::activity::verify-backup";

/// The backup restores, starts, reads end to end, and its files are intact.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: VerifyBackupInput,
) -> Result<Verification, String> {
    let agent = backup_agent(&deps)?;
    agent
        .verify(&input.stanza, &input.label)
        .await
        .map_err(|error| {
            // A check that fails will fail again; an unreachable repository may not.
            let message = format!(
                "verify of backup {} of {}: {error}",
                input.label, input.name
            );
            if error.is_retryable() {
                ActivityError::transient(ErrorCode::VerifyFailed, message).into()
            } else {
                ActivityError::permanent(ErrorCode::VerifyFailed, message).into()
            }
        })
}
