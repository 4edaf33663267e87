//! The REST API (../shared/API.md): one router per resource, merged in [`router`], one error
//! type ([`error::ApiError`]), and the OpenAPI description generated from the handlers.

pub mod body;
pub mod cursor;
pub mod error;
pub mod health;
pub mod idempotency;
pub mod instances;
pub mod operations;
pub mod types;

use crate::service::ControlPlane;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use error::ApiError;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Seconds a client should wait before polling an operation.
pub const RETRY_AFTER_SECS: u64 = 1;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The control plane.
    pub plane: Arc<ControlPlane>,
    /// Renders the Prometheus metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// The OpenAPI description.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Toygres",
        description = "PostgreSQL instances on demand.",
        version = "1"
    ),
    paths(
        instances::create,
        instances::list,
        instances::get,
        instances::delete,
        instances::events,
        operations::get,
        operations::list,
        health::healthz,
        health::readyz,
        health::metrics
    )
)]
pub struct ApiDoc;

/// Every route, with body limit, timeout, panic and 404 handling, request spans and metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/instances", get(instances::list).post(instances::create))
        .route(
            "/instances/{name}",
            get(instances::get).delete(instances::delete),
        )
        .route("/instances/{name}/events", get(instances::events))
        .route("/operations", get(operations::list))
        .route("/operations/{id}", get(operations::get))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(health::openapi))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

fn method_not_allowed() -> Response {
    let body = error::ErrorBody {
        error: error::ErrorDetail {
            code: "method_not_allowed".into(),
            message: "this route does not accept that method".into(),
            field: None,
            operation_id: None,
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// A `202 Accepted` with `Location` and `Retry-After`.
pub fn accepted(operation_id: &str, body: impl Serialize) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/operations/{operation_id}")) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// The span of one request; handlers fill `instance` and `operation_id` once they know them.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri().path(),
        instance = tracing::field::Empty,
        operation_id = tracing::field::Empty,
    )
}

/// Records the instance and operation a request concerns on its span, so every log line of
/// the request carries them.
pub fn record_subject(instance: Option<&str>, operation_id: Option<&str>) {
    let span = tracing::Span::current();
    if let Some(instance) = instance {
        span.record("instance", instance);
    }
    if let Some(operation_id) = operation_id {
        span.record("operation_id", operation_id);
    }
}
