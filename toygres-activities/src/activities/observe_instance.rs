//! Looks at what the backend shows of an instance after an operation failed, so that the
//! instance is recorded as it is: running, stopped, or failed.

use crate::activities::backend_failure;
use crate::backend::Readiness;
use crate::error::ErrorCode;
use crate::model::InstanceState;
use crate::registry::ActivityDeps;
use crate::types::{ObserveInstanceInput, ObservedState};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`ObserveInstanceInput`], output [`ObservedState`]. Read-only (a local
/// server that crashed and was not stopped on purpose is started again, as any readiness
/// check does).
pub const NAME: &str = "toygres-activities::activity::observe-instance";

/// Waits up to `wait_ms` for the server to accept connections, and says what it found.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ObserveInstanceInput,
) -> Result<ObservedState, String> {
    let readiness = deps
        .backend
        .wait_ready(input.instance(), Duration::from_millis(input.wait_ms))
        .await
        .map_err(|error| backend_failure(ErrorCode::Internal, error))?;
    Ok(match readiness {
        Readiness::Ready => ObservedState {
            state: InstanceState::Running,
            detail: None,
        },
        Readiness::Stopped => ObservedState {
            state: InstanceState::Stopped,
            detail: None,
        },
        Readiness::Missing => ObservedState {
            state: InstanceState::Failed,
            detail: Some("its resources are gone".into()),
        },
        Readiness::NotReady(detail) => ObservedState {
            state: InstanceState::Failed,
            detail: Some(detail),
        },
    })
}
