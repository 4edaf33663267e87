//! `/instances/{name}/backups`: take one, list them, verify one.

use super::{caller_of, existing_name, not_found, read_body};
use crate::http::api::auth::Caller;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::types::*;
use crate::http::api::{AppState, accepted, body, cursor, idempotency};
use crate::plane::ServiceError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use std::collections::HashMap;
use toygres_activities::model::BackupType;
use toygres_activities::validation::InstanceName;

fn named(name: &InstanceName) -> impl Fn(ServiceError) -> ApiError + '_ {
    move |error| match error {
        ServiceError::NotFound => not_found(name),
        other => other.into(),
    }
}

/// Take a backup of a running instance now (full unless `type` says otherwise).
#[utoipa::path(post, path = "/instances/{name}/backups", tag = "backups",
    request_body(content = Option<BackupBody>),
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = BackupAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn take(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = existing_name(name)?;
    let map = body::json_object(&read_body(body)?, true)?;
    body::only_known(&map, &["type"])?;
    let kind = body::optional_string(&map, "type")?
        .map(|raw| {
            BackupType::parse(&raw)
                .ok_or_else(|| ApiError::invalid("type", "must be full, diff or incr"))
        })
        .transpose()?;
    let idempotency = idempotency::from_headers(
        &headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        &format!("POST /instances/{name}/backups"),
        &map,
    )?;
    let (taken, backup) = state
        .plane
        .backup(&name, kind, idempotency)
        .await
        .map_err(named(&name))?;
    crate::http::api::record_subject(None, Some(&taken.operation.record.id));
    let body = BackupAcceptedBody {
        backup: Backup::from(&backup),
        operation: Operation::from(&taken.operation),
    };
    Ok(accepted(&taken.operation.record.id, body))
}

/// The backups of an instance (live, or the latest deleted one while its backups are kept),
/// newest first.
#[utoipa::path(get, path = "/instances/{name}/backups", tag = "backups",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = BackupList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<BackupList>, ApiError> {
    let name = existing_name(name)?;
    body::only_known_params(&params, &["limit", "cursor"])?;
    let limit = body::limit_param(&params)?;
    let before: Option<(chrono::DateTime<chrono::Utc>, String)> =
        cursor::decode(params.get("cursor"))?;
    let page = state
        .plane
        .backups_of(&name, before, limit)
        .await
        .map_err(named(&name))?;
    let next_cursor = match page.items.last() {
        Some(last) if page.has_more => Some(cursor::encode(&(last.started_at, last.id.clone()))),
        _ => None,
    };
    Ok(Json(BackupList {
        items: page.items.iter().map(Backup::from).collect(),
        next_cursor,
    }))
}

/// Verify a backup: restore it into a scratch instance, check it (it starts, every catalog and
/// user table reads, pgBackRest finds its files intact), remove the scratch instance; the
/// operation's `result` and the backup's `verification` say what was checked.
#[utoipa::path(post, path = "/instances/{name}/backups/{id}/verify", tag = "backups",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("id" = String, Path, description = "bk_..."),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = BackupAcceptedBody, headers(("Location" = String), ("Retry-After" = String))),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let no_such = || ApiError::NotFound("no such backup".into());
    let Path((raw_name, backup_id)) = path.map_err(|_| no_such())?;
    let name = InstanceName::parse(&raw_name).map_err(|_| no_such())?;
    if backup_id.is_empty()
        || backup_id.len() > 64
        || !backup_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(no_such());
    }
    crate::http::api::record_subject(Some(name.as_str()), None);
    let idempotency = idempotency::from_headers(
        &headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        &format!("POST /instances/{name}/backups/{backup_id}/verify"),
        &serde_json::Map::new(),
    )?;
    let (verifying, backup) = state
        .plane
        .verify_backup(&name, &backup_id, idempotency)
        .await
        .map_err(|error| match error {
            ServiceError::NotFound => {
                ApiError::NotFound(format!("{name} has no backup {backup_id}"))
            }
            other => other.into(),
        })?;
    crate::http::api::record_subject(None, Some(&verifying.operation.record.id));
    let body = BackupAcceptedBody {
        backup: Backup::from(&backup),
        operation: Operation::from(&verifying.operation),
    };
    Ok(accepted(&verifying.operation.record.id, body))
}
