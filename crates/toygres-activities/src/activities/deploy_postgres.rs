//! Deploys (or adopts) an instance's PostgreSQL on the backend and starts it.

use crate::activities::{backend_failure, open_password};
use crate::backend::{DeployOutcome, DeploySpec};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{DeployInput, DeployOutput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`DeployInput`], output [`DeployOutput`]. Idempotent: create-or-adopt.
pub const NAME: &str = "toygres-activities::activity::deploy-postgres";

/// Opens the sealed password and deploys.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: DeployInput,
) -> Result<DeployOutput, String> {
    let password = open_password(&deps, &input.sealed_password)?;
    let spec = DeploySpec {
        name: input.name,
        uid: input.uid,
        postgres_version: input.postgres_version,
        storage_gb: input.storage_gb,
        password,
        expose: input.expose,
        dns_label: input.dns_label,
    };
    let outcome = deps
        .backend
        .deploy(&spec)
        .await
        .map_err(|error| backend_failure(ErrorCode::DeployFailed, error))?;
    ctx.trace_info(format!("deploy of {}: {outcome:?}", spec.name));
    Ok(DeployOutput {
        adopted: outcome == DeployOutcome::Adopted,
    })
}
