//! `/instances` routes: create, list, get, delete, events here; the changes of an existing
//! instance in [`actions`] (stop, start, restart, reset-password) and [`update`] (`PATCH`).

pub mod actions;
pub mod backups;
pub mod update;

use super::auth::Caller;
use super::body::{self, MAX_BODY_BYTES};
use super::error::{ApiError, ErrorBody};
use super::types::*;
use super::{AppState, accepted, cursor, idempotency};
use crate::plane::CreateRequest;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use std::collections::HashMap;
use toygres_activities::model::{Expose, InstanceState};
use toygres_activities::validation::{InstanceName, is_dns_label};

const CREATE_FIELDS: &[&str] = &[
    "name",
    "password",
    "postgres_version",
    "storage_gb",
    "expose",
    "dns_label",
    "namespace",
    "parameters",
    "deletion_protection",
    "restore_from",
];

const RESTORE_FIELDS: &[&str] = &["instance", "backup_id", "point_in_time"];

/// Reads `restore_from`: `{"instance", "backup_id"?, "point_in_time"?}`.
fn restore_from(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<crate::plane::RestoreRequest>, ApiError> {
    let restore = match map.get("restore_from") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(restore)) => restore,
        Some(_) => {
            return Err(ApiError::invalid(
                "restore_from",
                "must be an object: {\"instance\", \"backup_id\"?, \"point_in_time\"?}",
            ));
        }
    };
    if let Some(unknown) = restore
        .keys()
        .find(|key| !RESTORE_FIELDS.contains(&key.as_str()))
    {
        return Err(ApiError::invalid(
            format!("restore_from.{unknown}"),
            format!(
                "unknown field; expected one of: {}",
                RESTORE_FIELDS.join(", ")
            ),
        ));
    }
    let instance = body::required_string(restore, "instance")
        .map_err(|_| ApiError::invalid("restore_from.instance", "is required (a name)"))?;
    let instance = InstanceName::parse(&instance)
        .map_err(|error| ApiError::invalid("restore_from.instance", error.to_string()))?;
    let backup_id = body::optional_string(restore, "backup_id")
        .map_err(|_| ApiError::invalid("restore_from.backup_id", "must be a string"))?;
    let point_in_time = body::optional_string(restore, "point_in_time")
        .map_err(|_| ApiError::invalid("restore_from.point_in_time", "must be a string"))?
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(&raw)
                .map(|at| at.to_utc())
                .map_err(|_| {
                    ApiError::invalid(
                        "restore_from.point_in_time",
                        "must be an RFC 3339 time such as 2026-12-03T09:00:00Z",
                    )
                })
        })
        .transpose()?;
    Ok(Some(crate::plane::RestoreRequest {
        instance,
        backup_id,
        point_in_time,
    }))
}

/// Create an instance. Answers at once with the operation to poll.
#[utoipa::path(post, path = "/instances", tag = "instances", request_body = CreateInstanceBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Replays the first answer for the same caller, key and body")),
    responses(
        (status = 202, description = "Accepted; poll the operation", body = CreateAcceptedBody,
            headers(("Location" = String, description = "/operations/{id}"), ("Retry-After" = String, description = "Seconds"))),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "No server of the version to check parameters against yet", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = read_body(body)?;
    let map = body::json_object(&bytes, false)?;
    body::only_known(&map, CREATE_FIELDS)?;
    let name = InstanceName::parse(&body::required_string(&map, "name")?)
        .map_err(|error| ApiError::invalid("name", error.to_string()))?;
    let password = body::optional_string(&map, "password")?;
    if let Some(password) = &password {
        validate_password(password)?;
    }
    let postgres_version = body::optional_string(&map, "postgres_version")?;
    let storage_gb = body::optional_integer(&map, "storage_gb", 1..=1024)?.unwrap_or(10) as u32;
    let expose = match body::optional_string(&map, "expose")?.as_deref() {
        None => Expose::Internal,
        Some(raw) => Expose::parse(raw)
            .ok_or_else(|| ApiError::invalid("expose", "must be 'internal' or 'public'"))?,
    };
    let dns_label = body::optional_string(&map, "dns_label")?;
    if let Some(label) = &dns_label {
        validate_dns_label(label)?;
    }
    let namespace = body::optional_string(&map, "namespace")?;
    if let Some(namespace) = &namespace {
        validate_namespace(namespace)?;
    }
    let parameters = body::optional_parameters(&map, "parameters", false)?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    let deletion_protection = body::optional_bool(&map, "deletion_protection")?.unwrap_or(false);
    let restore_from = restore_from(&map)?;
    super::record_subject(Some(name.as_str()), None);
    let idempotency = idempotency::from_headers(
        &headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        "POST /instances",
        &map,
    )?;
    let request = CreateRequest {
        name: name.clone(),
        password,
        postgres_version,
        storage_gb,
        expose,
        dns_label,
        namespace,
        parameters,
        deletion_protection,
        restore_from,
        idempotency,
    };
    let created = match state.plane.create(request).await {
        Err(crate::plane::ServiceError::NameInUse) => {
            return Err(conflict_on(&state, name.as_str()).await);
        }
        other => other?,
    };
    super::record_subject(None, Some(&created.operation.record.id));
    let body = CreateAcceptedBody {
        instance: Instance::from(&created.instance),
        operation: Operation::from(&created.operation),
        password: created.password,
    };
    Ok(accepted(&created.operation.record.id, body))
}

/// Which 409 a create of a taken name gets: the blocking operation when one runs.
async fn conflict_on(state: &AppState, name: &str) -> ApiError {
    match state.plane.metadata.live_instance(name).await {
        Ok(Some(instance)) => match instance.active_operation_id {
            Some(operation) => ApiError::OperationInProgress(operation),
            None => ApiError::NameInUse,
        },
        _ => ApiError::NameInUse,
    }
}

/// List instances (deleted ones only with `state=deleted`).
#[utoipa::path(get, path = "/instances", tag = "instances",
    params(("state" = Option<String>, Query, description = "creating|running|stopping|stopped|starting|updating|deleting|deleted|failed"),
           ("namespace" = Option<String>, Query, max_length = 63, pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description = "only instances in this namespace"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1-500, default 100"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = InstanceList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<InstanceList>, ApiError> {
    body::only_known_params(&params, &["state", "namespace", "limit", "cursor"])?;
    let namespace = params.get("namespace");
    if let Some(namespace) = namespace {
        validate_namespace(namespace)?;
    }
    let filter = match params.get("state") {
        None => None,
        Some(raw) => Some(InstanceState::parse(raw).ok_or_else(|| {
            let states: Vec<&str> = InstanceState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid("state", format!("must be one of: {}", states.join(", ")))
        })?),
    };
    let limit = body::limit_param(&params)?;
    let after: Option<(String, i64)> = cursor::decode(params.get("cursor"))?;
    if let Some((name, _)) = &after
        && InstanceName::parse(name).is_err()
    {
        return Err(cursor::invalid());
    }
    let page = state
        .plane
        .metadata
        .list_instances(filter, namespace.map(String::as_str), after, limit)
        .await?;
    let next_cursor = match page.items.last() {
        Some(last) if page.has_more => Some(cursor::encode(&(last.name.clone(), last.id))),
        _ => None,
    };
    Ok(Json(InstanceList {
        items: page.items.iter().map(Instance::from).collect(),
        next_cursor,
    }))
}

/// Get an instance (the live one, or the latest deleted one of that name).
#[utoipa::path(get, path = "/instances/{name}", tag = "instances", params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Instance>, ApiError> {
    let name = existing_name(name)?;
    let record = state
        .plane
        .metadata
        .latest_instance(name.as_str())
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(Instance::from(&record)))
}

/// Delete an instance (a create still running is canceled first). A delete already running is
/// returned as is; deletion protection refuses it (409 `deletion_protected`). With
/// `final_backup=true`, a full backup is taken first.
#[utoipa::path(delete, path = "/instances/{name}", tag = "instances",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$"),
        ("final_backup" = Option<bool>, Query, description = "true: a full backup before the instance goes (default false)")),
    responses((status = 202, body = OperationAcceptedBody,
            headers(("Location" = String), ("Retry-After" = String))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = existing_name(name)?;
    body::only_known_params(&params, &["final_backup"])?;
    let final_backup = match params.get("final_backup").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("final_backup", "must be true or false")),
    };
    let mut request = serde_json::Map::new();
    if final_backup {
        request.insert("final_backup".into(), true.into());
    }
    let idempotency = idempotency::from_headers(
        &headers,
        caller_of(caller)?,
        &state.plane.secret_key,
        &format!("DELETE /instances/{name}"),
        &request,
    )?;
    let deleted = state
        .plane
        .delete(&name, idempotency, final_backup)
        .await
        .map_err(|error| match error {
            crate::plane::ServiceError::NotFound => not_found(&name),
            other => other.into(),
        })?;
    Ok(operation_accepted(&deleted))
}

/// The audit trail of an instance, newest first.
#[utoipa::path(get, path = "/instances/{name}/events", tag = "instances",
    params(("name" = String, Path, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = EventList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<EventList>, ApiError> {
    let name = existing_name(name)?;
    body::only_known_params(&params, &["limit", "cursor"])?;
    let limit = body::limit_param(&params)?;
    let before: Option<i64> = cursor::decode(params.get("cursor"))?;
    let record = state
        .plane
        .metadata
        .latest_instance(name.as_str())
        .await?
        .ok_or_else(|| not_found(&name))?;
    let page = state
        .plane
        .metadata
        .events(record.id, before, limit)
        .await?;
    let next_cursor = match page.items.last() {
        Some(last) if page.has_more => Some(cursor::encode(&last.id)),
        _ => None,
    };
    Ok(Json(EventList {
        items: page.items.iter().map(Event::from).collect(),
        next_cursor,
    }))
}

/// The `202` of a change: the instance and the operation.
fn operation_accepted(accepted_change: &crate::plane::Accepted) -> Response {
    super::record_subject(None, Some(&accepted_change.operation.record.id));
    let body = OperationAcceptedBody {
        instance: Instance::from(&accepted_change.instance),
        operation: Operation::from(&accepted_change.operation),
    };
    accepted(&accepted_change.operation.record.id, body)
}

/// The caller the auth middleware recorded (it runs before every route that changes anything).
fn caller_of(caller: Option<Extension<Caller>>) -> Result<Caller, ApiError> {
    caller
        .map(|Extension(caller)| caller)
        .ok_or_else(|| ApiError::Internal("the request has no authenticated caller".into()))
}

/// A path name that cannot be an instance name (not even UTF-8) cannot exist: 404.
fn existing_name(raw: Result<Path<String>, PathRejection>) -> Result<InstanceName, ApiError> {
    let no_such = || ApiError::NotFound("no such instance".into());
    let Path(raw) = raw.map_err(|_| no_such())?;
    let name = InstanceName::parse(&raw).map_err(|_| no_such())?;
    super::record_subject(Some(name.as_str()), None);
    Ok(name)
}

fn not_found(name: &InstanceName) -> ApiError {
    ApiError::NotFound(format!("no instance named '{name}'"))
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })
}

/// A caller's password: 12-128 printable characters (the console's create form checks it too).
pub(crate) fn validate_password(password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if !(12..=128).contains(&length) {
        return Err(ApiError::invalid(
            "password",
            "must be 12 to 128 characters",
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "password",
            "must contain only printable characters",
        ));
    }
    Ok(())
}

/// A DNS label of 1-63 lowercase letters, digits or '-' (the console's create form checks it too).
/// A namespace is a Kubernetes namespace name: a DNS-1123 label.
pub(crate) fn validate_namespace(namespace: &str) -> Result<(), ApiError> {
    if is_dns_label(namespace) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "namespace",
            "must be a DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and \
             ending with a letter or digit",
        ))
    }
}

pub(crate) fn validate_dns_label(label: &str) -> Result<(), ApiError> {
    if is_dns_label(label) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "dns_label",
            "must be a DNS label: 1-63 lowercase letters, digits or '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(validate_password("twelve-chars").is_ok());
        assert!(validate_password("short").is_err());
        assert!(validate_password(&"x".repeat(129)).is_err());
        assert!(validate_password("has a newline\nhere").is_err());
        assert!(validate_password("ünïcödé-pässwörd").is_ok());
    }

    #[test]
    fn namespaces() {
        assert!(validate_namespace("team-b").is_ok());
        assert!(validate_namespace("Team").is_err());
        assert!(validate_namespace("team-").is_err());
        assert!(validate_namespace(&"n".repeat(64)).is_err());
    }

    #[test]
    fn dns_labels() {
        assert!(validate_dns_label("orders-db-1").is_ok());
        assert!(validate_dns_label("-x").is_err());
        assert!(validate_dns_label("UPPER").is_err());
        assert!(validate_dns_label(&"a".repeat(64)).is_err());
    }
}
