//! Deploys a new instance whose data is restored from another incarnation's backups.

use crate::activities::backend_failure;
use crate::activities::deploy_postgres::spec_of;
use crate::backend::DeployOutcome;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{DeployOutput, DeployRestoredInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`DeployRestoredInput`], output [`DeployOutput`]. Idempotent:
/// create-or-adopt; a restore interrupted part-way starts over in a fresh scratch dir.
pub const NAME: &str = "toygres-activities::activity::deploy-restored";

/// Restores the source's backup at its target into the new instance and starts it.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: DeployRestoredInput,
) -> Result<DeployOutput, String> {
    let spec = spec_of(&deps, input.deploy)?;
    let outcome = deps
        .backend
        .deploy_restored(&spec, &input.source)
        .await
        .map_err(|error| backend_failure(ErrorCode::RestoreFailed, error))?;
    ctx.trace_info(format!("restore of {}: {outcome:?}", spec.name));
    Ok(DeployOutput {
        adopted: outcome == DeployOutcome::Adopted,
    })
}
