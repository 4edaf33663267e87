//! `POST /instances/{name}/stop|start|restart|reset-password`: the actions on an existing
//! instance. Each answers `202` with the operation; stop, start and restart take no body.

use super::{caller_of, existing_name, not_found, operation_accepted, read_body};
use crate::http::api::auth::Caller;
use crate::http::api::body;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::types::*;
use crate::http::api::{AppState, accepted, idempotency};
use crate::plane::{Idempotency, ServiceError};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};
use toygres_activities::validation::InstanceName;

/// The parts every action reads: the instance's name, the body's fields (only `fields`
/// allowed) and the caller's `Idempotency-Key`.
struct ActionRequest {
    name: InstanceName,
    fields: Map<String, Value>,
    idempotency: Option<Idempotency>,
}

fn read(
    state: &AppState,
    caller: Option<Extension<Caller>>,
    headers: &HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Option<Result<Bytes, BytesRejection>>,
    action: &str,
    fields: &[&str],
) -> Result<ActionRequest, ApiError> {
    let name = existing_name(name)?;
    let map = match body {
        Some(body) => body::json_object(&read_body(body)?, true)?,
        None => Map::new(),
    };
    body::only_known(&map, fields)?;
    let idempotency = idempotency::from_headers(
        headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        &format!("POST /instances/{name}/{action}"),
        &map,
    )?;
    Ok(ActionRequest {
        name,
        fields: map,
        idempotency,
    })
}

/// A `404` that names the instance.
fn named(name: &InstanceName) -> impl Fn(ServiceError) -> ApiError + '_ {
    move |error| match error {
        ServiceError::NotFound => not_found(name),
        other => other.into(),
    }
}

/// Stop an instance: its server goes down, its data, port and connection string are kept; it
/// is not health-checked while stopped. `409 invalid_state` unless it is running.
#[utoipa::path(post, path = "/instances/{name}/stop", tag = "instances",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = OperationAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let request = read(&state, caller, &headers, name, None, "stop", &[])?;
    let stopped = state
        .plane
        .stop(&request.name, request.idempotency)
        .await
        .map_err(named(&request.name))?;
    Ok(operation_accepted(&stopped))
}

/// Start a stopped instance: its server comes back with the same data, port and connection
/// string. `409 invalid_state` unless it is stopped (or failed).
#[utoipa::path(post, path = "/instances/{name}/start", tag = "instances",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = OperationAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let request = read(&state, caller, &headers, name, None, "start", &[])?;
    let started = state
        .plane
        .start(&request.name, request.idempotency)
        .await
        .map_err(named(&request.name))?;
    Ok(operation_accepted(&started))
}

/// Restart a running instance's server; it is `running` again once it accepts connections.
#[utoipa::path(post, path = "/instances/{name}/restart", tag = "instances",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = OperationAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let request = read(&state, caller, &headers, name, None, "restart", &[])?;
    let restarted = state
        .plane
        .restart(&request.name, request.idempotency)
        .await
        .map_err(named(&request.name))?;
    Ok(operation_accepted(&restarted))
}

/// Give the owner a new password (the one given, or a generated one), returned here once; the
/// old one stops working for new connections at once.
#[utoipa::path(post, path = "/instances/{name}/reset-password", tag = "instances",
    request_body(content = Option<ResetPasswordBody>),
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = ResetPasswordAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = read(
        &state,
        caller,
        &headers,
        name,
        Some(body),
        "reset-password",
        &["password"],
    )?;
    let password = body::optional_string(&request.fields, "password")?;
    if let Some(password) = &password {
        super::validate_password(password)?;
    }
    let (reset, password) = state
        .plane
        .reset_password(&request.name, password, request.idempotency)
        .await
        .map_err(named(&request.name))?;
    crate::http::api::record_subject(None, Some(&reset.operation.record.id));
    let body = ResetPasswordAcceptedBody {
        instance: Instance::from(&reset.instance),
        operation: Operation::from(&reset.operation),
        password,
    };
    Ok(accepted(&reset.operation.record.id, body))
}
