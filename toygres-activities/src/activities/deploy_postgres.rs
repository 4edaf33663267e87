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

/// Opens the sealed password of the bootstrap superuser and deploys with its SCRAM verifier.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: DeployInput,
) -> Result<DeployOutput, String> {
    let spec = spec_of(&deps, input)?;
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

/// The backend's deploy spec of `input`, the bootstrap superuser's password opened into a
/// SCRAM verifier.
pub(crate) fn spec_of(
    deps: &ActivityDeps,
    input: DeployInput,
) -> Result<DeploySpec, crate::error::ActivityError> {
    let password = open_password(deps, &input.sealed_password)?;
    Ok(DeploySpec {
        name: input.name,
        namespace: input.namespace,
        uid: input.uid,
        postgres_version: input.postgres_version,
        storage_gb: input.storage_gb,
        // Inputs recorded before the control plane had roles of its own: the owner was the
        // bootstrap superuser.
        superuser: input
            .superuser
            .unwrap_or_else(|| crate::roles::OWNER.to_string()),
        superuser_verifier: crate::roles::scram_verifier(&password),
        expose: input.expose,
        dns_label: input.dns_label,
    })
}
