//! Gives an instance's owner a new password, as the instance's `toygres_admin`.

use crate::activities::{admin_failure, admin_target, open_password};
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::roles;
use crate::types::SetOwnerPasswordInput;
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`SetOwnerPasswordInput`], output `()`. Idempotent (a second run sets
/// the same password, with a fresh salt).
pub const NAME: &str = "toygres-activities::activity::set-owner-password";

/// `ALTER ROLE owner PASSWORD '<SCRAM verifier>'`: the password never reaches PostgreSQL.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: SetOwnerPasswordInput,
) -> Result<(), String> {
    let target = admin_target(&deps, &input.admin)?;
    let password = open_password(&deps, &input.sealed_password)?;
    roles::set_password(
        deps.backend.as_ref(),
        &target,
        &input.owner,
        &password,
        Duration::from_millis(input.admin.timeout_ms),
    )
    .await
    .map_err(|error| {
        admin_failure(
            ErrorCode::UpdateFailed,
            format!(
                "setting the password of {} on {}",
                input.owner, input.admin.name
            ),
            error,
        )
        .into()
    })
}
