//! Stops an instance's monitor workflow (before the instance is torn down) and waits, briefly,
//! for it to end.

use crate::activities::{cancel_and_wait, metadata_failure};
use crate::registry::ActivityDeps;
use crate::types::{StopMonitorInput, StopMonitorOutput};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`StopMonitorInput`], output [`StopMonitorOutput`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::stop-monitor";

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
    let reason = input
        .reason
        .clone()
        .unwrap_or_else(|| format!("instance {} is being deleted", input.name));
    let stopped = cancel_and_wait(
        &ctx.get_client(),
        &monitor_id,
        reason,
        Duration::from_millis(input.wait_ms),
    )
    .await?;
    Ok(StopMonitorOutput { stopped })
}
