//! `PATCH /instances/{name}`: storage, parameters, deletion protection.

use super::{caller_of, existing_name, not_found, operation_accepted, read_body};
use crate::http::api::auth::Caller;
use crate::http::api::body;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::types::*;
use crate::http::api::{AppState, idempotency};
use crate::plane::{ServiceError, UpdateRequest};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

const UPDATE_FIELDS: &[&str] = &["storage_gb", "parameters", "deletion_protection"];

/// Change an instance: grow its storage, set or reset parameters (checked against its
/// version's own `pg_settings`; those that need a restart restart it within the operation),
/// turn deletion protection on or off.
#[utoipa::path(patch, path = "/instances/{name}", tag = "instances", request_body = UpdateInstanceBody,
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = OperationAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = existing_name(name)?;
    let bytes = read_body(body)?;
    let map = body::json_object(&bytes, false)?;
    body::only_known(&map, UPDATE_FIELDS)?;
    let storage_gb = body::optional_integer(&map, "storage_gb", 1..=1024)?
        .map(|gb| u32::try_from(gb).unwrap_or(u32::MAX));
    let parameters = body::optional_parameters(&map, "parameters", true)?;
    let deletion_protection = body::optional_bool(&map, "deletion_protection")?;
    let idempotency = idempotency::from_headers(
        &headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        &format!("PATCH /instances/{name}"),
        &map,
    )?;
    let request = UpdateRequest {
        storage_gb,
        parameters,
        deletion_protection,
        idempotency,
    };
    let updated = state
        .plane
        .update(&name, request)
        .await
        .map_err(|error| match error {
            ServiceError::NotFound => not_found(&name),
            other => other.into(),
        })?;
    Ok(operation_accepted(&updated))
}
