//! Records a successful create: instance running with its endpoint, operation succeeded.

use crate::activities::metadata_failure;
use crate::metadata::Placement;
use crate::registry::ActivityDeps;
use crate::types::{Applied, CompleteCreateInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`CompleteCreateInput`], output [`Applied`]. Idempotent.
pub const NAME: &str = "toygres-activities::activity::complete-create";

/// One transaction: instance `creating -> running`, operation succeeded, an audit event.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: CompleteCreateInput,
) -> Result<Applied, String> {
    let applied = deps
        .metadata
        .complete_create(
            input.instance_id,
            &input.operation_id,
            &Placement {
                host: &input.host,
                port: input.port,
                dns_name: input.dns_name.as_deref(),
            },
            &input.monitor_id,
            &input.result,
        )
        .await
        .map_err(metadata_failure)?;
    Ok(Applied { applied })
}
