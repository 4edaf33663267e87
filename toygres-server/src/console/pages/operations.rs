//! `/console/operations`: recent operations, newest first, each with kind, instance, status,
//! step, duration and error; of one instance with `?instance=`. The first page is refreshed live.

use super::super::ConsoleState;
use super::super::guard::Viewer;
use super::Problem;
use super::layout::{self, Section};
use super::widgets::{ago, duration, operation_state, short_id};
use crate::http::api::types::Operation;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use toygres_activities::validation::InstanceName;

/// Operations per page.
const PAGE: i64 = 50;

/// `GET /console/operations`.
pub async fn page(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let instance = instance_param(&params)?;
    let cursor = params.get("cursor").filter(|raw| !raw.is_empty());
    let table = table(&state, instance.as_ref(), cursor).await?;
    let title = match &instance {
        Some(name) => format!("Operations of {name}"),
        None => "Operations".to_string(),
    };
    let live = match &instance {
        Some(name) => format!("/console/live/operations?instance={name}"),
        None => "/console/live/operations".to_string(),
    };
    Ok(layout::page(
        &viewer,
        Section::Operations,
        &title,
        html! {
            div.heading {
                h1 { (title) }
                @if let Some(name) = &instance {
                    p.muted { a href=(format!("/console/instances/{name}")) { "The instance" } " · " a href="/console/operations" { "All operations" } }
                }
            }
            @if cursor.is_some() {
                div { (table) }
            } @else {
                div data-live=(live) { (table) }
            }
        },
    ))
}

/// `GET /console/live/operations`: the first page's table.
pub async fn live(
    State(state): State<ConsoleState>,
    _viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let rendered = async {
        let instance = instance_param(&params)?;
        table(&state, instance.as_ref(), None).await
    };
    match rendered.await {
        Ok(markup) => markup.into_response(),
        Err(problem) => problem.into_response(),
    }
}

fn instance_param(params: &HashMap<String, String>) -> Result<Option<InstanceName>, Problem> {
    match params.get("instance").filter(|raw| !raw.is_empty()) {
        None => Ok(None),
        Some(raw) => InstanceName::parse(raw).map(Some).map_err(|error| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("instance: {error}"),
            )
            .back_to("/console/operations", "All operations")
        }),
    }
}

async fn table(
    state: &ConsoleState,
    instance: Option<&InstanceName>,
    cursor: Option<&String>,
) -> Result<Markup, Problem> {
    let (operations, next) = state.service.operations(instance, cursor, PAGE).await?;
    let next_link = next.map(|next| {
        let mut pairs = vec![("cursor", next)];
        if let Some(name) = instance {
            pairs.push(("instance", name.to_string()));
        }
        format!(
            "/console/operations?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    });
    Ok(render(&operations, next_link.as_deref()))
}

fn render(operations: &[Operation], next: Option<&str>) -> Markup {
    html! {
        @if operations.is_empty() {
            p.empty { "No operations yet. Creating or deleting an instance starts one." }
        } @else {
            div.table {
                table.cards {
                    thead {
                        tr {
                            th scope="col" { "Operation" }
                            th scope="col" { "Kind" }
                            th scope="col" { "Instance" }
                            th scope="col" { "Status" }
                            th scope="col" { "Duration" }
                            th scope="col" { "Error" }
                            th scope="col" { "Accepted" }
                        }
                    }
                    tbody {
                        @for operation in operations {
                            tr {
                                td data-label="Operation" { a href=(format!("/console/operations/{}", operation.id)) { (short_id(&operation.id)) "…" } }
                                td data-label="Kind" { (operation.kind) }
                                td data-label="Instance" { a href=(format!("/console/instances/{}", operation.instance)) { (operation.instance) } }
                                td data-label="Status" { (operation_state(operation)) }
                                td data-label="Duration" { (duration(operation)) }
                                td data-label="Error" {
                                    @if let Some(error) = &operation.error {
                                        code { (error.code) } " " (error.message)
                                    } @else { span.muted { "—" } }
                                }
                                td data-label="Accepted" { (ago(operation.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            nav.pager aria-label="Pages" { a href=(next) { "Older operations" } }
        }
    }
}
