//! Stops an instance's monitor workflow (before the instance is torn down) and waits, briefly,
//! for it to end.

use crate::activities::metadata_failure;
use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::types::{StopMonitorInput, StopMonitorOutput};
use duroxide::{ActivityContext, OrchestrationStatus};
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`StopMonitorInput`], output [`StopMonitorOutput`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::stop-monitor";

/// The longest wait one call makes, whatever the input says.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Cancels the monitor recorded on the instance and waits up to `wait_ms` for it to end.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    input: StopMonitorInput,
) -> Result<StopMonitorOutput, String> {
    let instance = deps
        .metadata
        .instance(input.instance_id)
        .await
        .map_err(metadata_failure)?;
    let Some(monitor_id) = instance.and_then(|instance| instance.monitor_id) else {
        return Ok(StopMonitorOutput { stopped: true });
    };
    let client = ctx.get_client();
    let internal = |error: duroxide::ClientError| {
        ActivityError::transient(ErrorCode::Internal, error.to_string())
    };
    client
        .cancel_instance(
            monitor_id.clone(),
            format!("instance {} is being deleted", input.name),
        )
        .await
        .map_err(internal)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(input.wait_ms).min(MAX_WAIT);
    loop {
        match client
            .get_orchestration_status(&monitor_id)
            .await
            .map_err(internal)?
        {
            OrchestrationStatus::Running { .. } if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            OrchestrationStatus::Running { .. } => return Ok(StopMonitorOutput { stopped: false }),
            _ => return Ok(StopMonitorOutput { stopped: true }),
        }
    }
}
