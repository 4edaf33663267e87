//! The REST API (../shared/API.md): one router per resource, merged in [`router`], one error
//! type ([`error::ApiError`]), and the OpenAPI description generated from the handlers.

pub mod auth;
pub mod body;
pub mod content_type;
pub mod cross_site;
pub mod cursor;
pub mod error;
pub mod health;
pub mod idempotency;
pub mod instances;
pub mod operations;
pub mod types;

use crate::plane::ControlPlane;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    /// The scheme the API is served with (part of the server's own origin).
    pub scheme: cross_site::Scheme,
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
        instances::update::update,
        instances::actions::stop,
        instances::actions::start,
        instances::actions::restart,
        instances::actions::reset_password,
        instances::backups::take,
        instances::backups::list,
        instances::backups::verify,
        instances::events,
        operations::get,
        operations::list,
        health::healthz,
        health::readyz,
        health::metrics
    ),
    modifiers(&Refusals),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme of the OpenAPI description and the refusals the
/// layers of [`router`] may answer on every route: `401` outside [`auth::PUBLIC_PATHS`], `403`
/// everywhere (without tokens: a foreign `Host` or `Origin`, [`cross_site`]; for changes, also
/// a read-only token) and, for changes, `415` ([`content_type`]).
struct Refusals;

/// Why a read may get `403`.
const FORBIDDEN_READ: &str =
    "Without tokens: a Host that is not loopback, or an Origin that is not the server's own";
/// Why a change may get `403`.
const FORBIDDEN_CHANGE: &str = "A read-only token; without tokens: a Host that is not loopback, or an Origin that is not the server's own";
/// Why a change may get `415`.
const NOT_JSON: &str = "A body (or a Content-Type) that is not Content-Type: application/json";

impl utoipa::Modify for Refusals {
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
            let public = auth::PUBLIC_PATHS.contains(&path.as_str());
            let reads = [&mut item.get].into_iter().flatten();
            let changes = [
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in reads {
                if !public {
                    add_error_response(operation, "401", "No valid bearer token");
                }
                add_error_response(operation, "403", FORBIDDEN_READ);
            }
            for operation in changes.into_iter().flatten() {
                if !public {
                    add_error_response(operation, "401", "No valid bearer token");
                }
                add_error_response(operation, "403", FORBIDDEN_CHANGE);
                add_error_response(operation, "415", NOT_JSON);
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

/// Every route, with authentication (and without it, the loopback rule), JSON bodies, body
/// limit, timeout, panic and 404 handling, request spans and metrics. Route layers apply to the
/// routes above them: add routes before them.
pub fn router(state: AppState) -> Router {
    let authentication = state.authentication.clone();
    let loopback_only = cross_site::LoopbackOnly::for_server(&authentication, state.scheme);
    let console = crate::console::router(&state);
    Router::new()
        .route("/instances", get(instances::list).post(instances::create))
        .route(
            "/instances/{name}",
            get(instances::get)
                .delete(instances::delete)
                .patch(instances::update::update),
        )
        .route("/instances/{name}/stop", post(instances::actions::stop))
        .route("/instances/{name}/start", post(instances::actions::start))
        .route(
            "/instances/{name}/restart",
            post(instances::actions::restart),
        )
        .route(
            "/instances/{name}/reset-password",
            post(instances::actions::reset_password),
        )
        .route(
            "/instances/{name}/backups",
            get(instances::backups::list).post(instances::backups::take),
        )
        .route(
            "/instances/{name}/backups/{id}/verify",
            post(instances::backups::verify),
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
        .route_layer(axum::middleware::from_fn(content_type::require_json))
        .route_layer(axum::middleware::from_fn(crate::http::metrics::track_http))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            authentication,
            auth::require_token,
        ))
        // The web console: outside the bearer-token and JSON layers above (it signs in with a
        // cookie and posts forms, guarded by its own CSRF and same-origin checks), inside the
        // server-wide ones below.
        .merge(console)
        .layer(axum::middleware::from_fn_with_state(
            loopback_only,
            cross_site::require_loopback,
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
