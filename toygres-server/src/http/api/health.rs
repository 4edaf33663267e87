//! Liveness, readiness and the OpenAPI description.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::types::Status;
use axum::Json;
use axum::extract::State;
use utoipa::OpenApi as _;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// The database, the workflow runtime and the backend are usable: on Kubernetes, the server
/// holds every permission it needs in every allowed namespace (503 names what is missing).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, body = Status), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.plane.metadata.ping().await {
        return Err(ApiError::Unavailable(
            "the metadata database does not answer".into(),
        ));
    }
    if let Err(error) = state
        .plane
        .client
        .get_orchestration_status("toygres-readiness-probe")
        .await
    {
        return Err(ApiError::Unavailable(format!(
            "the workflow store does not answer: {error}"
        )));
    }
    match state.plane.backend.missing_permissions().await {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => {
            let listed: Vec<String> = missing.iter().map(ToString::to_string).collect();
            return Err(ApiError::Unavailable(format!(
                "Toygres may not {}; bind the ClusterRole toygres-instances in each namespace \
                 (deploy/README.md)",
                listed.join(", ")
            )));
        }
        Err(error) => {
            return Err(ApiError::Unavailable(format!(
                "the backend does not answer: {error}"
            )));
        }
    }
    Ok(Json(Status {
        status: "ok".into(),
    }))
}

/// The OpenAPI 3 description of this API, generated from the code.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::ApiDoc::openapi())
}

/// Prometheus metrics in text format: HTTP, operations, steps, instances, and Duroxide's own.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(
    State(state): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    crate::http::metrics::refresh_instance_gauges(&state.plane.metadata).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    ))
}
