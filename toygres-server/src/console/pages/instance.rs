//! `/console/instances/{name}`: one instance: state and health with the latency of recent checks,
//! connection details to copy (host, port, user, database, a psql command and a URI, never a
//! password), its parameters, backups, operations and events (refreshed live), and its actions
//! ([`super::instance_actions`]; delete with the name typed to confirm is here).

use super::super::ConsoleState;
use super::super::guard::{Fields, Viewer};
use super::instance_actions::{self, Failure, Form, to_operation};
use super::layout::{self, Section};
use super::widgets::{ago, badge, copyable, duration, latency_chart, operation_state, short_id};
use super::{Problem, backups};
use crate::http::api::types::Instance;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use toygres_activities::validation::InstanceName;

/// Operations and events shown on the page.
const RECENT: i64 = 10;

/// `GET /console/instances/{name}`.
pub async fn page(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let name = parse_name(&name)?;
    let (id, instance) = state.service.instance(&name).await?;
    let summary = summary(&state, &viewer, id, &instance).await?;
    let archives = state.service.archives();
    Ok(render(
        &viewer,
        &instance,
        summary,
        archives,
        None,
        StatusCode::OK,
    ))
}

/// `GET /console/live/instances/{name}`: everything but the actions.
pub async fn live(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let rendered = async {
        let name = parse_name(&name)?;
        let (id, instance) = state.service.instance(&name).await?;
        summary(&state, &viewer, id, &instance).await
    };
    match rendered.await {
        Ok(markup) => markup.into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// `POST /console/instances/{name}/delete`: `confirm` must be the name; `final_backup=true`
/// takes a full backup first; then the delete's operation page.
pub async fn delete(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = parse_name(&name)?;
    if fields.get("confirm").map(str::trim) != Some(name.as_str()) {
        let failure = Failure {
            form: Form::Delete,
            message: format!("confirm: type the instance's name, {name}, to delete it"),
        };
        return with_failure(
            &state,
            &viewer,
            &name,
            failure,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let final_backup = fields.get("final_backup") == Some("true");
    let deleted = state.service.delete(&name, final_backup).await;
    to_operation(
        &state,
        &viewer,
        &name,
        deleted.map(|operation| operation.id),
    )
    .await
}

/// A name from the path, or the 404 page.
pub(super) fn parse_name(raw: &str) -> Result<InstanceName, Problem> {
    InstanceName::parse(raw).map_err(|_| {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "no such instance")
            .back_to("/console/instances", "Instances")
    })
}

/// The instance's page with `failure` shown next to its form, answered with `status`.
pub(super) async fn with_failure(
    state: &ConsoleState,
    viewer: &Viewer,
    name: &InstanceName,
    failure: Failure,
    status: StatusCode,
) -> Result<Response, Problem> {
    let (id, instance) = state.service.instance(name).await?;
    let summary = summary(state, viewer, id, &instance).await?;
    let archives = state.service.archives();
    Ok(render(
        viewer,
        &instance,
        summary,
        archives,
        Some(&failure),
        status,
    ))
}

fn render(
    viewer: &Viewer,
    instance: &Instance,
    summary: Markup,
    archives: bool,
    failure: Option<&Failure>,
    status: StatusCode,
) -> Response {
    let name = &instance.name;
    let mut response = layout::page(
        viewer,
        Section::Instances,
        name,
        html! {
            div.heading {
                h1 { (name) }
                p.muted { a href="/console/instances" { "All instances" } }
                (instance_actions::quick(viewer, instance, archives))
            }
            @if let Some(failure) = failure.filter(|failure| failure.form == Form::Other) {
                div.notice.error #action-error role="alert" { (failure.message) }
            }
            div data-live=(format!("/console/live/instances/{name}")) { (summary) }
            @if instance.state != "deleted" {
                (instance_actions::section(viewer, instance, archives, failure))
            }
        },
    );
    *response.status_mut() = status;
    response
}

/// State, health, connection, operations and events.
async fn summary(
    state: &ConsoleState,
    viewer: &Viewer,
    id: i64,
    instance: &Instance,
) -> Result<Markup, Problem> {
    let name = InstanceName::parse(&instance.name)
        .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", "no such instance"))?;
    let samples = state.service.health_samples(id).await?;
    let (operations, _) = state.service.operations(Some(&name), None, RECENT).await?;
    let events = state.service.events(id, RECENT * 2).await?;
    let backups = backups::section(state, viewer, &name, instance).await?;
    Ok(html! {
        div.row {
            section.card aria-labelledby="status" {
                h2 #status { "Status" }
                dl.facts {
                    dt { "State" } dd { (badge(&instance.state)) }
                    @if let Some(error) = &instance.error {
                        dt { "Error" } dd { code { (error.code) } " " (error.message) }
                    }
                    dt { "Health" }
                    dd {
                        (badge(&instance.health.status))
                        @if let Some(at) = instance.health.checked_at { " checked " (ago(at)) }
                        @if instance.health.consecutive_failures > 0 {
                            " · " (instance.health.consecutive_failures) " failed in a row"
                        }
                    }
                    dt { "Version" } dd { "PostgreSQL " (instance.postgres_version) }
                    dt { "Storage" } dd { (instance.storage_gb) " GiB" }
                    dt { "Backend" } dd { (instance.backend) ", " (instance.expose) }
                    dt { "Parameters" }
                    dd #parameters {
                        @if instance.parameters.is_empty() { "server defaults" }
                        @for (index, (parameter, value)) in instance.parameters.iter().enumerate() {
                            @if index > 0 { ", " }
                            code { (parameter) "=" (value) }
                        }
                    }
                    dt { "Deletion protection" } dd { (if instance.deletion_protection { "on" } else { "off" }) }
                    dt { "Created" } dd { (ago(instance.created_at)) }
                }
                h2 { "Latency of recent checks" }
                (latency_chart(&samples))
            }
            section.card aria-labelledby="connect" {
                h2 #connect { "Connect" }
                (connection(instance))
            }
        }
        (backups)
        section.card aria-labelledby="operations" {
            h2 #operations { "Operations" }
            @if operations.is_empty() {
                p.empty { "No operations." }
            } @else {
                table.cards {
                    thead { tr { th { "Operation" } th { "Kind" } th { "Status" } th { "Duration" } th { "Accepted" } } }
                    tbody {
                        @for operation in &operations {
                            tr {
                                td data-label="Operation" { a href=(format!("/console/operations/{}", operation.id)) { (short_id(&operation.id)) "…" } }
                                td data-label="Kind" { (operation.kind) }
                                td data-label="Status" { (operation_state(operation)) }
                                td data-label="Duration" { (duration(operation)) }
                                td data-label="Accepted" { (ago(operation.created_at)) }
                            }
                        }
                    }
                }
                p { a href=(format!("/console/operations?instance={}", instance.name)) { "All operations of " (instance.name) } }
            }
        }
        section.card aria-labelledby="events" {
            h2 #events { "Events" }
            @if events.is_empty() {
                p.empty { "No events yet." }
            } @else {
                table.cards {
                    thead { tr { th { "When" } th { "Kind" } th { "What happened" } } }
                    tbody {
                        @for event in &events {
                            tr {
                                td data-label="When" { (ago(event.at)) }
                                td data-label="Kind" { code { (event.kind) } }
                                td data-label="What" { (event.message) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Host, port, user, database, a psql command and a URI, each with a copy button; never a
/// password (the psql command asks for it, or reads `PGPASSWORD`).
fn connection(instance: &Instance) -> Markup {
    let (Some(host), Some(port), Some(uri)) =
        (&instance.host, instance.port, &instance.connection_uri)
    else {
        return html! {
            p.muted {
                @match instance.state.as_str() {
                    "creating" => "The endpoint appears once the instance is reachable.",
                    "deleted" => "This instance was deleted.",
                    _ => "No endpoint.",
                }
            }
        };
    };
    let psql = format!("psql \"{uri}\"");
    html! {
        dl.facts {
            dt { "Host" } dd { (copyable("conn-host", host, "host")) }
            dt { "Port" } dd { (copyable("conn-port", &port.to_string(), "port")) }
            dt { "User" } dd { (copyable("conn-user", &instance.user, "user")) }
            dt { "Database" } dd { (copyable("conn-database", &instance.database, "database")) }
            dt { "psql" } dd { (copyable("conn-psql", &psql, "psql command")) }
            dt { "URI" } dd { (copyable("conn-uri", uri, "connection URI")) }
        }
        p.muted { "The password is the one shown once at creation; psql asks for it (or reads PGPASSWORD)." }
    }
}
