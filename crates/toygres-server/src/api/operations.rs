//! `/operations` routes.

use super::body;
use super::error::{ApiError, ErrorBody};
use super::types::*;
use super::{AppState, cursor};
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Get an operation; 200 while it exists, whatever its status.
#[utoipa::path(get, path = "/operations/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = Operation), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    super::record_subject(None, Some(&id));
    let view = state
        .plane
        .operation(&id)
        .await
        .map_err(|error| match error {
            crate::service::ServiceError::NotFound => {
                ApiError::NotFound(format!("no operation '{id}'"))
            }
            other => other.into(),
        })?;
    Ok(Json(Operation::from(&view)))
}

/// List operations, newest first, optionally of one instance.
#[utoipa::path(get, path = "/operations", tag = "operations",
    params(("instance" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = OperationList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<OperationList>, ApiError> {
    body::only_known_params(&params, &["instance", "limit", "cursor"])?;
    let limit = body::limit_param(&params)?;
    let before: Option<(DateTime<Utc>, String)> = cursor::decode(params.get("cursor"))?;
    let page = state
        .plane
        .metadata
        .list_operations(params.get("instance").map(String::as_str), before, limit)
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
