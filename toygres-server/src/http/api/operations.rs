//! `/operations` routes.

use super::body;
use super::error::{ApiError, ErrorBody};
use super::types::*;
use super::{AppState, cursor};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use toygres_activities::validation::InstanceName;

/// Whether `id` can be an operation id (`op_` and letters and digits, as generated): anything
/// else cannot exist and is not looked up.
fn is_plausible_operation_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// Whether a cursor's time is one PostgreSQL can store and this server could have issued.
fn is_plausible_time(at: &DateTime<Utc>) -> bool {
    (2000..=9999).contains(&chrono::Datelike::year(at))
}

/// Get an operation; 200 while it exists, whatever its status.
#[utoipa::path(get, path = "/operations/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = Operation), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Operation>, ApiError> {
    // An id that is not even UTF-8, or not shaped like ours, cannot exist.
    let id = match id {
        Ok(Path(id)) if is_plausible_operation_id(&id) => id,
        _ => return Err(ApiError::NotFound("no such operation".into())),
    };
    super::record_subject(None, Some(&id));
    let view = state
        .plane
        .operation(&id)
        .await
        .map_err(|error| match error {
            crate::plane::ServiceError::NotFound => {
                ApiError::NotFound(format!("no operation '{id}'"))
            }
            other => other.into(),
        })?;
    Ok(Json(Operation::from(&view)))
}

/// List operations, newest first, optionally of one instance.
#[utoipa::path(get, path = "/operations", tag = "operations",
    params(("instance" = Option<String>, Query, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", description = "An instance name"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = OperationList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<OperationList>, ApiError> {
    body::only_known_params(&params, &["instance", "limit", "cursor"])?;
    let instance = match params.get("instance") {
        None => None,
        Some(raw) => Some(
            InstanceName::parse(raw)
                .map_err(|error| ApiError::invalid("instance", error.to_string()))?,
        ),
    };
    let limit = body::limit_param(&params)?;
    let before: Option<(DateTime<Utc>, String)> = cursor::decode(params.get("cursor"))?;
    if let Some((at, id)) = &before
        && !(is_plausible_time(at) && is_plausible_operation_id(id))
    {
        return Err(cursor::invalid());
    }
    let page = state
        .plane
        .metadata
        .list_operations(instance.as_ref().map(InstanceName::as_str), before, limit)
        .await?;
    let next_cursor = match page.items.last() {
        Some(last) if page.has_more => Some(cursor::encode(&(last.created_at, last.id.clone()))),
        _ => None,
    };
    let mut items = Vec::with_capacity(page.items.len());
    for record in page.items {
        items.push(Operation::from(&state.plane.view(record).await?));
    }
    Ok(Json(OperationList { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_ids_and_times_are_looked_up() {
        assert!(is_plausible_operation_id("op_0123456789abcdefghijklmn"));
        assert!(is_plausible_operation_id("op_orphanedbeforestart0000"));
        for id in ["", "op_\0", "../etc", "op id", "é", &"a".repeat(65)] {
            assert!(!is_plausible_operation_id(id), "{id:?}");
        }
        assert!(is_plausible_time(&Utc::now()));
        let far = DateTime::<Utc>::from_timestamp(-100_000_000_000, 0);
        assert!(far.is_some_and(|far| !is_plausible_time(&far)));
    }
}
