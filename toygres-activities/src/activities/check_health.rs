//! One health check: connect with the instance's credentials, `SELECT 1` with a timeout, and
//! record the result on the instance.

use crate::activities::{metadata_failure, owner_target};
use crate::metadata::{HealthRecorded, HealthSample};
use crate::probe::{archive_status, select_one};
use crate::registry::ActivityDeps;
use crate::types::{CheckHealthInput, CheckHealthOutput};
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`CheckHealthInput`], output [`CheckHealthOutput`]. Idempotent per `check_id`.
pub const NAME: &str = "toygres-activities::activity::check-health";

/// Probes the instance and records the sample; reports whether monitoring should go on.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: CheckHealthInput,
) -> Result<CheckHealthOutput, String> {
    let target = owner_target(
        &deps,
        input.instance(),
        input.host.clone(),
        input.port,
        input.user.clone(),
        input.database.clone(),
        &input.sealed_password,
    )?;
    let started = std::time::Instant::now();
    let sample = match select_one(
        deps.backend.as_ref(),
        &target,
        Duration::from_millis(input.timeout_ms),
    )
    .await
    {
        Ok(latency) => HealthSample {
            ok: true,
            latency_ms: latency.as_millis().try_into().unwrap_or(u32::MAX),
            error: None,
        },
        Err(error) => HealthSample {
            ok: false,
            latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u32::MAX),
            error: Some(error.to_string()),
        },
    };
    // WAL archiving, where the instance archives: a failure turns its backups `failing`.
    if input.check_archiving
        && sample.ok
        && let Ok(archive) = archive_status(
            deps.backend.as_ref(),
            &target,
            Duration::from_millis(input.timeout_ms),
        )
        .await
    {
        let detail = archive
            .failed_wal
            .map(|wal| format!("segment {wal} could not be archived"))
            .unwrap_or_default();
        let changed = deps
            .metadata
            .record_archive_status(input.instance_id, archive.failing, &detail)
            .await
            .map_err(metadata_failure)?;
        if changed {
            tracing::warn!(instance = %input.name, failing = archive.failing, "archive status changed");
        }
    }
    let recorded = deps
        .metadata
        .record_health(
            input.instance_id,
            &input.monitor_id,
            &input.check_id,
            &sample,
            input.unhealthy_after,
        )
        .await
        .map_err(metadata_failure)?;
    if let HealthRecorded::Recorded {
        status,
        changed: true,
    } = &recorded
    {
        tracing::info!(instance = %input.name, %status, "health changed");
    }
    Ok(CheckHealthOutput {
        monitored: recorded != HealthRecorded::NotMonitored,
    })
}
