//! Health writes of the monitor workflow, and the queries the monitor reconciler needs.

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};
use crate::model::{HealthStatus, InstanceState};

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSample {
    /// Whether `SELECT 1` succeeded in time.
    pub ok: bool,
    /// How long the check took.
    pub latency_ms: u32,
    /// Why it failed.
    pub error: Option<String>,
}

/// How many recent checks of each instance `health_samples` keeps.
pub const HEALTH_SAMPLES_KEPT: i64 = 30;

/// One recorded check of an instance, as `health_samples` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HealthSampleRecord {
    /// When it was recorded.
    pub checked_at: chrono::DateTime<chrono::Utc>,
    /// Whether `SELECT 1` succeeded in time.
    pub ok: bool,
    /// How long the check took (until the failure, for a failed one).
    pub latency_ms: i32,
}

/// What recording a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthRecorded {
    /// The instance is not running or no longer monitored by this monitor: stop monitoring.
    NotMonitored,
    /// An operation is changing the instance (a restart, update or password reset): the check
    /// is not counted, and monitoring goes on.
    Paused,
    /// Recorded (or already recorded by an earlier attempt of the same check).
    Recorded {
        /// The status after the check.
        status: HealthStatus,
        /// Whether the status changed (an event was written).
        changed: bool,
    },
}

impl MetadataStore {
    /// Records check `check_id` of monitor `monitor_id`: the instance turns `unhealthy` after
    /// `unhealthy_after` failures in a row and `healthy` after one success; a change is an event.
    /// Recording the same check twice counts it once.
    pub async fn record_health(
        &self,
        instance_id: i64,
        monitor_id: &str,
        check_id: &str,
        sample: &HealthSample,
        unhealthy_after: u32,
    ) -> Result<HealthRecorded, MetadataError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<InstanceRecord> =
            sqlx::query_as("SELECT * FROM instances WHERE id = $1 AND monitor_id = $2 FOR UPDATE")
                .bind(instance_id)
                .bind(monitor_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current = match current {
            Some(current) if current.state == InstanceState::Running => current,
            Some(current) if current.state == InstanceState::Updating => {
                return Ok(HealthRecorded::Paused);
            }
            _ => return Ok(HealthRecorded::NotMonitored),
        };
        if current.health_last_check.as_deref() == Some(check_id) {
            return Ok(HealthRecorded::Recorded {
                status: current.health_status,
                changed: false,
            });
        }
        let failures = if sample.ok {
            0
        } else {
            u32::try_from(current.health_consecutive_failures)
                .unwrap_or(0)
                .saturating_add(1)
        };
        let status = current.health_status.after_check(failures, unhealthy_after);
        sqlx::query(
            "UPDATE instances SET health_status = $2, health_checked_at = now(), \
             health_latency_ms = CASE WHEN $3 THEN $4 ELSE health_latency_ms END, \
             health_consecutive_failures = $5, health_last_check = $6 WHERE id = $1",
        )
        .bind(instance_id)
        .bind(status.as_str())
        .bind(sample.ok)
        .bind(i32::try_from(sample.latency_ms).unwrap_or(i32::MAX))
        .bind(i32::try_from(failures).unwrap_or(i32::MAX))
        .bind(check_id)
        .execute(&mut *tx)
        .await?;
        keep_sample(&mut tx, instance_id, sample).await?;
        let changed = status != current.health_status;
        if changed {
            let message = match status {
                HealthStatus::Healthy => {
                    format!("healthy: SELECT 1 answered in {} ms", sample.latency_ms)
                }
                _ => format!(
                    "{status}: {failures} checks in a row failed (last: {})",
                    sample.error.as_deref().unwrap_or("no answer")
                ),
            };
            super::transitions::insert_event(&mut tx, &current, "health_changed", &message, None)
                .await?;
        }
        tx.commit().await?;
        Ok(HealthRecorded::Recorded { status, changed })
    }

    /// The instance's latest recorded checks (at most [`HEALTH_SAMPLES_KEPT`]), oldest first.
    pub async fn recent_health_samples(
        &self,
        instance_id: i64,
    ) -> Result<Vec<HealthSampleRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT checked_at, ok, latency_ms FROM (SELECT * FROM health_samples \
             WHERE instance_id = $1 ORDER BY id DESC LIMIT $2) AS latest ORDER BY id",
        )
        .bind(instance_id)
        .bind(HEALTH_SAMPLES_KEPT)
        .fetch_all(self.pool())
        .await?)
    }

    /// Hands a running instance to monitor `monitor_id`, replacing `previous` (compare-and-set).
    pub async fn assign_monitor(
        &self,
        instance_id: i64,
        previous: Option<&str>,
        monitor_id: &str,
    ) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "UPDATE instances SET monitor_id = $3 WHERE id = $1 AND state = 'running' AND monitor_id IS NOT DISTINCT FROM $2",
        )
        .bind(instance_id)
        .bind(previous)
        .bind(monitor_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every running instance (for the monitor reconciler).
    pub async fn running_instances(&self) -> Result<Vec<InstanceRecord>, MetadataError> {
        Ok(
            sqlx::query_as("SELECT * FROM instances WHERE state = 'running' ORDER BY id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Instance counts by state, and of running instances by health and by archive status,
    /// for metrics and the console.
    pub async fn instance_counts(&self) -> Result<InstanceCounts, MetadataError> {
        let by_state = sqlx::query_as("SELECT state, count(*) FROM instances GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        let by_health = sqlx::query_as(
            "SELECT health_status, count(*) FROM instances WHERE state = 'running' \
             GROUP BY health_status",
        )
        .fetch_all(self.pool())
        .await?;
        let by_backup = sqlx::query_as(
            "SELECT backup_status, count(*) FROM instances WHERE state = 'running' \
             GROUP BY backup_status",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(InstanceCounts {
            by_state,
            by_health,
            by_backup,
        })
    }
}

/// Instance counts, as `(name, count)` pairs of the values that occur.
#[derive(Debug, Clone, Default)]
pub struct InstanceCounts {
    /// Every instance, by state.
    pub by_state: Vec<(String, i64)>,
    /// Running instances, by health.
    pub by_health: Vec<(String, i64)>,
    /// Running instances, by archive status (`ok`, `failing`, `none`).
    pub by_backup: Vec<(String, i64)>,
}

impl InstanceCounts {
    /// The count of `name` in `counts` (0 when absent).
    pub fn count_of(counts: &[(String, i64)], name: &str) -> i64 {
        counts
            .iter()
            .find(|(key, _)| key == name)
            .map_or(0, |(_, count)| *count)
    }
}

/// Adds a check to the instance's samples and forgets those beyond the latest
/// [`HEALTH_SAMPLES_KEPT`] (both through `health_samples_instance_id`).
async fn keep_sample(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    instance_id: i64,
    sample: &HealthSample,
) -> Result<(), MetadataError> {
    sqlx::query("INSERT INTO health_samples (instance_id, ok, latency_ms) VALUES ($1, $2, $3)")
        .bind(instance_id)
        .bind(sample.ok)
        .bind(i32::try_from(sample.latency_ms).unwrap_or(i32::MAX))
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM health_samples WHERE instance_id = $1 AND id <= (SELECT id FROM health_samples \
         WHERE instance_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
    )
    .bind(instance_id)
    .bind(HEALTH_SAMPLES_KEPT)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
