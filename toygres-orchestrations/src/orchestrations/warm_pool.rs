//! warm-pool: one per control plane while `TOYGRES_WARM_POOL` is above 0. Every tick (a durable
//! timer) it has the backend top its pool of started, unassigned clusters up to the configured
//! size per version (creates take from it), and removes what a crash left behind. When the
//! server that runs a tick keeps no pool any more (the setting dropped to 0), that tick empties
//! the pool and the workflow ends. Continues as new every few ticks and prunes its history.

use crate::steps::{StepPolicy, call};
use crate::types::WarmPoolInput;
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{prune_history, refill_pool};
use toygres_activities::backend::PoolReport;
use toygres_activities::types::{PruneHistoryInput, RefillPoolInput};

/// Runs the pool's refills.
pub async fn run(ctx: OrchestrationContext, input: WarmPoolInput) -> Result<(), String> {
    if input.generation > 0 {
        let prune = PruneHistoryInput {
            workflow_id: input.workflow_id.clone(),
            name: toygres_activities::validation::InstanceName::parse("warm-pool")
                .map_err(|error| error.to_string())?,
        };
        if let Err(error) = call::<_, u64>(
            &ctx,
            prune_history::NAME,
            &prune,
            StepPolicy::retried(2, Duration::from_secs(30)),
        )
        .await
        {
            ctx.trace_warn(format!("pruning the warm pool's history failed: {error}"));
        }
    }
    for _ in 0..input.ticks_per_execution.max(1) {
        match call::<_, PoolReport>(
            &ctx,
            refill_pool::NAME,
            &RefillPoolInput::default(),
            StepPolicy::retried(2, Duration::from_millis(input.refill_timeout_ms.max(1_000))),
        )
        .await
        {
            // The pool was turned off: it is empty now, and nothing is left to keep.
            Ok(report) if report.per_version == 0 => {
                ctx.trace_info("the warm pool is off; its workflow ends".to_string());
                return Ok(());
            }
            Ok(_) => {}
            Err(error) => ctx.trace_warn(format!("refilling the warm pool failed: {error}")),
        }
        ctx.schedule_timer(Duration::from_millis(input.tick_ms.max(100)))
            .await;
    }
    let next = WarmPoolInput {
        generation: input.generation + 1,
        ..input
    };
    ctx.continue_as_new_typed(&next).await.map(|_| ())
}
