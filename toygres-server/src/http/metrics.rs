//! Prometheus metrics: the recorder behind the `metrics` facade (which Duroxide emits through
//! too), HTTP request metrics, and instance gauges refreshed at each scrape.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use toygres_activities::metadata::{InstanceCounts, MetadataStore};
use toygres_activities::model::{ArchiveStatus, HealthStatus, InstanceState};

/// Histogram buckets in seconds, from a fast API call to a slow deploy.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide Prometheus recorder; call once, before the runtime starts.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(
        "toygres_http_requests_total",
        "HTTP requests by method, route and status"
    );
    metrics::describe_histogram!(
        "toygres_http_request_duration_seconds",
        "HTTP request latency by method and route"
    );
    metrics::describe_counter!(
        "toygres_http_cross_site_refusals_total",
        "Requests refused without tokens: a Host that is not loopback, or a foreign Origin"
    );
    metrics::describe_counter!(
        "toygres_console_refusals_total",
        "Console changes refused: a foreign origin, no valid CSRF token, a read-only session"
    );
    metrics::describe_counter!(
        "toygres_operations_started_total",
        "Operations accepted, by kind"
    );
    metrics::describe_counter!(
        "toygres_operations_finished_total",
        "Operations finished, by kind and outcome"
    );
    metrics::describe_histogram!(
        "toygres_activity_duration_seconds",
        "Workflow step (activity) durations, by activity and outcome"
    );
    metrics::describe_gauge!("toygres_instances", "Instances by state");
    metrics::describe_gauge!("toygres_instances_by_health", "Running instances by health");
    metrics::describe_gauge!(
        "toygres_instances_by_backup_status",
        "Running instances by WAL archiving status (ok, failing, none)"
    );
}

/// Middleware: counts and times every request by method, matched route and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("toygres_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("toygres_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Sets the instance gauges from the metadata (every state and health appears, zero or not).
pub async fn refresh_instance_gauges(
    metadata: &MetadataStore,
) -> Result<(), toygres_activities::metadata::MetadataError> {
    let counts = metadata.instance_counts().await?;
    for state in InstanceState::ALL {
        let count = InstanceCounts::count_of(&counts.by_state, state.as_str());
        metrics::gauge!("toygres_instances", "state" => state.as_str()).set(count as f64);
    }
    for health in HealthStatus::ALL {
        let count = InstanceCounts::count_of(&counts.by_health, health.as_str());
        metrics::gauge!("toygres_instances_by_health", "health" => health.as_str())
            .set(count as f64);
    }
    for status in ArchiveStatus::ALL {
        let count = InstanceCounts::count_of(&counts.by_backup, status.as_str());
        metrics::gauge!("toygres_instances_by_backup_status", "status" => status.as_str())
            .set(count as f64);
    }
    Ok(())
}
