//! Makes sure everything an instance committed so far is archived.

use crate::activities::{backup_agent, backup_error, metadata_failure, open_password};
use crate::registry::ActivityDeps;
use crate::types::{FlushArchiveInput, Flushed};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`FlushArchiveInput`], output [`Flushed`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::flush-archive";

/// A commit, a WAL switch, and a wait until the segment is archived; records the moment as
/// the point the instance's WAL is archived until.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: FlushArchiveInput,
) -> Result<Flushed, String> {
    let agent = backup_agent(&deps)?;
    let password = open_password(&deps, &input.sealed_admin_password)?;
    let at = chrono::Utc::now();
    agent
        .flush_archive(&input.name, &input.uid, &password)
        .await
        .map_err(|error| backup_error(&format!("archiving the WAL of {}", input.name), error))?;
    deps.metadata
        .set_archived_until(input.instance_id, at)
        .await
        .map_err(metadata_failure)?;
    Ok(Flushed { at })
}
