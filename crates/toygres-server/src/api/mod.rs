//! The REST API (../shared/API.md): one router per resource, merged in [`router`], one error
//! type ([`error::ApiError`]), and the OpenAPI description generated from the handlers.

pub mod auth;
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
    /// Which requests need a bearer token.
    pub authentication: auth::Authentication,
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
    ),
    modifiers(&BearerSecurity),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme of the OpenAPI description, and the `401` (and for
/// changes, `403`) every route outside [`auth::PUBLIC_PATHS`] may answer.
struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token of TOYGRES_API_TOKENS; read-only tokens may only use GET",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        for (path, item) in openapi.paths.paths.iter_mut() {
            if auth::PUBLIC_PATHS.contains(&path.as_str()) {
                continue;
            }
            let reads = [&mut item.get].into_iter().flatten();
            let changes = [
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in reads {
                add_error_response(operation, "401", "No valid bearer token");
            }
            for operation in changes.into_iter().flatten() {
                add_error_response(operation, "401", "No valid bearer token");
                add_error_response(operation, "403", "A read-only token");
            }
        }
    }
}

fn add_error_response(operation: &mut utoipa::openapi::path::Operation, status: &str, why: &str) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description(why)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status.to_string(), response.into());
}

/// Every route, with authentication, body limit, timeout, panic and 404 handling, request spans
/// and metrics.
pub fn router(state: AppState) -> Router {
    let authentication = state.authentication.clone();
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
        .layer(axum::middleware::from_fn_with_state(
            authentication,
            auth::require_token,
        ))
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
