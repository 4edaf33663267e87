//! Connects to an instance with its own credentials and runs `SELECT version()`.

use crate::activities::owner_target;
use crate::error::{ActivityError, ErrorCode};
use crate::probe::server_version;
use crate::registry::ActivityDeps;
use crate::types::{TestConnectionInput, TestConnectionOutput};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`TestConnectionInput`], output [`TestConnectionOutput`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::test-connection";

/// Proves the instance is usable the way its owner will use it.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: TestConnectionInput,
) -> Result<TestConnectionOutput, String> {
    let target = owner_target(
        &deps,
        input.instance(),
        input.host.clone(),
        input.port,
        input.user.clone(),
        input.database.clone(),
        &input.sealed_password,
    )?;
    let server_version = server_version(
        deps.backend.as_ref(),
        &target,
        Duration::from_millis(input.timeout_ms),
    )
    .await
    .map_err(|error| {
        let message = format!("{target:?}: {error}");
        if error.is_retryable() {
            ActivityError::transient(ErrorCode::ConnectionFailed, message)
        } else {
            ActivityError::permanent(ErrorCode::ConnectionFailed, message)
        }
    })?;
    Ok(TestConnectionOutput { server_version })
}
