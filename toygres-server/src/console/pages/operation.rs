//! `/console/operations/{id}`: one operation: its steps advancing live (done, current, failed),
//! its error or result, and its times.

use super::super::ConsoleState;
use super::super::guard::Viewer;
use super::super::service::Service;
use super::Problem;
use super::layout::{self, Section};
use super::widgets::{ago, badge, duration, progress};
use crate::http::api::types::Operation;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// `GET /console/operations/{id}`.
pub async fn page(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let operation = load(&state, &id).await?;
    Ok(layout::page(
        &viewer,
        Section::Operations,
        &format!("Operation {}", operation.id),
        html! {
            div.heading {
                h1 { (operation.kind) " of " a href=(format!("/console/instances/{}", operation.instance)) { (operation.instance) } }
                p.muted { code { (operation.id) } }
            }
            section.card aria-labelledby="steps" {
                h2 #steps { "Steps" }
                div #operation-progress data-live=(format!("/console/live/operations/{}", operation.id)) { (steps(&operation)) }
            }
        },
    ))
}

/// `GET /console/live/operations/{id}`: the steps alone (`data-final` once finished).
pub async fn live(
    State(state): State<ConsoleState>,
    _viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    match load(&state, &id).await {
        Ok(operation) => steps(&operation).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn load(state: &ConsoleState, id: &str) -> Result<Operation, Problem> {
    let plausible = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !plausible {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such operation",
        ));
    }
    state
        .service
        .operation(id)
        .await
        .map_err(|error| Problem::from(error).back_to("/console/operations", "Operations"))
}

/// The status, each step (done, current, failed, to come), the error or result, and times.
pub fn steps(operation: &Operation) -> Markup {
    let finished = matches!(
        operation.status.as_str(),
        "succeeded" | "failed" | "canceled"
    );
    let names = Service::steps(&operation.kind, operation.progress.total);
    let done = operation.progress.done as usize;
    let failed = matches!(operation.status.as_str(), "failed" | "canceled");
    html! {
        div data-final[finished] {
            p {
                (badge(&operation.status)) " "
                (progress(operation.progress.done, operation.progress.total))
                " · " (duration(operation))
            }
            @if !names.is_empty() {
                ol.steps aria-label="Steps" {
                    @for (index, name) in names.iter().enumerate() {
                        @let current = operation.step.as_deref() == Some(*name);
                        @let class = if index < done && !(failed && current) {
                            "done"
                        } else if current && failed {
                            "failed"
                        } else if current && !finished {
                            "current"
                        } else {
                            ""
                        };
                        li class=(class) { code { (name) } @if class == "current" { " (running)" } @if class == "failed" { " (failed here)" } }
                    }
                }
            } @else if let Some(step) = &operation.step {
                p { "Step: " code { (step) } }
            }
            @if let Some(error) = &operation.error {
                div.notice.error role="alert" {
                    code { (error.code) } " " (error.message)
                    @if error.retryable { " (retrying the request may succeed)" }
                }
            }
            @if let Some(result) = &operation.result {
                @if let Some(version) = result.get("server_version").and_then(|value| value.as_str()) {
                    p { "Server: " (version) }
                }
            }
            dl.facts {
                dt { "Accepted" } dd { (ago(operation.created_at)) }
                @if let Some(at) = operation.started_at { dt { "Started" } dd { (ago(at)) } }
                @if let Some(at) = operation.finished_at { dt { "Finished" } dd { (ago(at)) } }
            }
        }
    }
}
