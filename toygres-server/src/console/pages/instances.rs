//! `/console/instances`: instances by name with state, health, version, storage, endpoint and
//! the operation running on them; filter by state, search by name prefix, pages. The rows are
//! refreshed live.

use super::super::ConsoleState;
use super::super::guard::Viewer;
use super::super::service::{InstanceFilter, MAX_PAGE, Service};
use super::Problem;
use super::layout::{self, Section};
use super::widgets::{badge, operation_state, short_id};
use crate::http::api::types::{Instance, Operation};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use toygres_activities::model::InstanceState;

/// Rows per page unless the viewer picks another size.
pub const DEFAULT_PAGE: i64 = 50;
/// The page sizes offered.
const PAGE_SIZES: [i64; 4] = [50, 100, 500, MAX_PAGE];

/// The list's query: `state`, `q` (a name prefix), `cursor`, `limit`.
#[derive(Debug, Clone, Default)]
struct ListQuery {
    filter: InstanceFilter,
}

impl ListQuery {
    fn parse(params: &HashMap<String, String>) -> Result<Self, Problem> {
        let invalid = |field: &str, message: &str| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("{field}: {message}"),
            )
            .back_to("/console/instances", "All instances")
        };
        let state = match params.get("state").map(String::as_str) {
            None | Some("") => None,
            Some(raw) => Some(InstanceState::parse(raw).ok_or_else(|| {
                invalid(
                    "state",
                    &format!(
                        "must be one of: {}",
                        InstanceState::ALL
                            .iter()
                            .map(|state| state.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?),
        };
        let prefix = params
            .get("q")
            .map(|raw| raw.trim().to_ascii_lowercase())
            .filter(|raw| !raw.is_empty());
        if let Some(prefix) = &prefix
            && (prefix.len() > 40
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(invalid(
                "q",
                "names have only lowercase letters, digits and '-' (at most 40)",
            ));
        }
        let limit = match params.get("limit") {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE).contains(limit))
                .ok_or_else(|| invalid("limit", &format!("must be from 1 to {MAX_PAGE}")))?,
        };
        Ok(Self {
            filter: InstanceFilter {
                state,
                prefix,
                cursor: params.get("cursor").filter(|raw| !raw.is_empty()).cloned(),
                limit,
            },
        })
    }

    /// The query string of this list (for links), with another cursor.
    fn query_string(&self, cursor: Option<&str>) -> String {
        let filter = &self.filter;
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(state) = filter.state {
            pairs.push(("state", state.to_string()));
        }
        if let Some(prefix) = &filter.prefix {
            pairs.push(("q", prefix.clone()));
        }
        if filter.limit != DEFAULT_PAGE {
            pairs.push(("limit", filter.limit.to_string()));
        }
        if let Some(cursor) = cursor {
            pairs.push(("cursor", cursor.to_string()));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// `GET /console/instances`.
pub async fn page(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let query = ListQuery::parse(&params)?;
    let rows = rows(&state.service, &query).await?;
    let filter = &query.filter;
    let live = format!(
        "/console/live/instances?{}",
        query.query_string(filter.cursor.as_deref())
    );
    Ok(layout::page(
        &viewer,
        Section::Instances,
        "Instances",
        html! {
            div.heading {
                h1 { "Instances" }
                @if viewer.may_change() {
                    div.actions { a.button href="/console/create" { "Create an instance" } }
                }
            }
            form.filters method="get" action="/console/instances" role="search" {
                label {
                    "State"
                    select name="state" {
                        option value="" selected[filter.state.is_none()] { "all but deleted" }
                        @for candidate in InstanceState::ALL {
                            option value=(candidate) selected[filter.state == Some(*candidate)] { (candidate) }
                        }
                    }
                }
                label {
                    "Name starts with"
                    input type="text" name="q" value=[filter.prefix.as_deref()] autocomplete="off" spellcheck="false" maxlength="40";
                }
                label {
                    "Per page"
                    select name="limit" {
                        @for size in PAGE_SIZES {
                            option value=(size) selected[filter.limit == size] { (size) }
                        }
                    }
                }
                button type="submit" { "Show" }
                @if filter.state.is_some() || filter.prefix.is_some() || filter.cursor.is_some() {
                    a href="/console/instances" { "Reset" }
                }
            }
            div data-live=(live) { (rows) }
        },
    ))
}

/// `GET /console/live/instances`: the table alone, for the same query.
pub async fn live(
    State(state): State<ConsoleState>,
    _viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let rendered = match ListQuery::parse(&params) {
        Ok(query) => rows(&state.service, &query).await,
        Err(problem) => Err(problem),
    };
    match rendered {
        Ok(markup) => markup.into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The table of one page, with the operation running on each busy instance, and the pager.
async fn rows(service: &Service, query: &ListQuery) -> Result<Markup, Problem> {
    let page = service.instances(&query.filter).await?;
    let mut running: HashMap<String, Operation> = HashMap::new();
    for instance in page.items.iter().filter(|instance| is_busy(instance)) {
        if let Ok(operation) = service.operation(&instance.last_operation_id).await {
            running.insert(instance.name.clone(), operation);
        }
    }
    Ok(render(
        &page.items,
        &running,
        query,
        page.next_cursor.as_deref(),
    ))
}

/// Whether an operation is probably running on the instance (its state is a passing one).
fn is_busy(instance: &Instance) -> bool {
    !matches!(
        instance.state.as_str(),
        "running" | "failed" | "deleted" | "stopped"
    )
}

/// The table of `items` and the pager.
fn render(
    items: &[Instance],
    running: &HashMap<String, Operation>,
    query: &ListQuery,
    next_cursor: Option<&str>,
) -> Markup {
    let filter = &query.filter;
    html! {
        @if items.is_empty() {
            p.empty {
                @if filter.state.is_some() || filter.prefix.is_some() {
                    "No instance matches. " a href="/console/instances" { "Show all instances" } "."
                } @else {
                    "No instances yet. " a href="/console/create" { "Create one" } " and it appears here."
                }
            }
        } @else {
            div.table {
                table.cards {
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Namespace" }
                            th scope="col" { "State" }
                            th scope="col" { "Health" }
                            th scope="col" { "Version" }
                            th scope="col" .num { "Storage" }
                            th scope="col" { "Endpoint" }
                            th scope="col" { "Last operation" }
                        }
                    }
                    tbody {
                        @for instance in items {
                            tr {
                                td data-label="Name" { a href=(format!("/console/instances/{}", instance.name)) { (instance.name) } }
                                td data-label="Namespace" {
                                    @match &instance.namespace {
                                        Some(namespace) => (namespace),
                                        None => span.muted { "—" },
                                    }
                                }
                                td data-label="State" { (badge(&instance.state)) }
                                td data-label="Health" {
                                    @if instance.state == "running" {
                                        (badge(&instance.health.status))
                                        @if let Some(latency) = instance.health.latency_ms { " " span.muted { (latency) " ms" } }
                                    } @else { span.muted { "—" } }
                                }
                                td data-label="Version" { (instance.postgres_version) }
                                td.num data-label="Storage" { (instance.storage_gb) " GiB" }
                                td data-label="Endpoint" {
                                    @match (&instance.host, instance.port) {
                                        (Some(host), Some(port)) => code { (host) ":" (port) },
                                        _ => span.muted { "—" },
                                    }
                                }
                                td data-label="Last operation" {
                                    @match running.get(&instance.name) {
                                        Some(operation) => {
                                            a href=(format!("/console/operations/{}", operation.id)) { (operation.kind) } " " (operation_state(operation))
                                        }
                                        None => a.muted href=(format!("/console/operations/{}", instance.last_operation_id)) { (short_id(&instance.last_operation_id)) "…" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if filter.cursor.is_some() {
                a href=(format!("/console/instances?{}", query.query_string(None))) { "First page" }
            }
            @if let Some(next) = next_cursor {
                a href=(format!("/console/instances?{}", query.query_string(Some(next)))) { "Next page" }
            }
            span.muted { (items.len()) " shown" }
        }
    }
}
