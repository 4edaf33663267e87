//! monitor-instance: every interval, one `check-health` (connect, `SELECT 1`, record the result
//! on the instance) until the instance is no longer running or no longer watched by this
//! monitor. Durable timers between checks; every `checks_per_execution` checks it continues as
//! new and prunes its earlier executions, so its history stays bounded however long it runs.

use crate::steps::{StepPolicy, call};
use crate::types::MonitorInstanceInput;
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{check_health, prune_history};
use toygres_activities::types::{CheckHealthInput, CheckHealthOutput, PruneHistoryInput};

/// Runs the monitor.
pub async fn run(ctx: OrchestrationContext, input: MonitorInstanceInput) -> Result<(), String> {
    if input.generation > 0 {
        let prune = PruneHistoryInput {
            workflow_id: input.monitor_id.clone(),
            name: input.name.clone(),
        };
        if let Err(error) = call::<_, u64>(
            &ctx,
            prune_history::NAME,
            &prune,
            StepPolicy::retried(2, Duration::from_secs(30)),
        )
        .await
        {
            ctx.trace_warn(format!(
                "pruning the history of {} failed: {error}",
                input.monitor_id
            ));
        }
    }
    let settings = &input.settings;
    let check_timeout =
        Duration::from_millis(settings.probe_timeout_ms.saturating_mul(2).max(1_000));
    for check in 0..settings.checks_per_execution.max(1) {
        ctx.schedule_timer(Duration::from_millis(settings.interval_ms.max(100)))
            .await;
        let probe = CheckHealthInput {
            instance_id: input.instance_id,
            name: input.name.clone(),
            namespace: input.namespace.clone(),
            monitor_id: input.monitor_id.clone(),
            check_id: format!("{}-{check}", input.generation),
            host: input.host.clone(),
            port: input.port,
            user: input.user.clone(),
            database: input.database.clone(),
            sealed_password: input.sealed_password.clone(),
            timeout_ms: settings.probe_timeout_ms,
            unhealthy_after: settings.unhealthy_after,
            check_archiving: settings.check_archiving,
        };
        match call::<_, CheckHealthOutput>(
            &ctx,
            check_health::NAME,
            &probe,
            StepPolicy::retried(3, check_timeout),
        )
        .await
        {
            Ok(CheckHealthOutput { monitored: false }) => {
                ctx.trace_info(format!(
                    "{} is no longer running under this monitor; stopping",
                    input.name
                ));
                return Ok(());
            }
            Ok(_) => {}
            // A check that could not even be recorded is skipped; the next one tries again.
            Err(error) => ctx.trace_warn(format!(
                "health check of {} could not run: {error}",
                input.name
            )),
        }
    }
    let next = MonitorInstanceInput {
        generation: input.generation + 1,
        ..input
    };
    ctx.continue_as_new_typed(&next).await.map(|_| ())
}
