//! Tops the backend's warm pool up to its configured size (or trims and empties it).

use crate::activities::backend_failure;
use crate::backend::PoolReport;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::RefillPoolInput;
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`RefillPoolInput`], output [`PoolReport`] (all zero when the backend
/// keeps no pool, or its size is 0 and it was empty). Idempotent.
pub const NAME: &str = "toygres-activities::activity::refill-pool";

/// Refills the pool; reports what it did and whether the pool is still wanted.
pub async fn run(
    deps: Arc<ActivityDeps>,
    ctx: ActivityContext,
    _input: RefillPoolInput,
) -> Result<PoolReport, String> {
    let Some(pool) = deps.backend.warm_pool() else {
        return Ok(PoolReport::default());
    };
    let report = pool
        .refill()
        .await
        .map_err(|error| backend_failure(ErrorCode::DeployFailed, error))?;
    if report.made > 0 || report.removed > 0 {
        ctx.trace_info(format!(
            "warm pool: {} ready, {} made, {} removed",
            report.ready, report.made, report.removed
        ));
    }
    Ok(report)
}
