//! `/console/`: the fleet at a glance: instances by state and health, operations running, and
//! those of the last day by outcome. Refreshed live.

use super::super::ConsoleState;
use super::super::guard::Viewer;
use super::Problem;
use super::layout::{self, Section};
use super::widgets::badge;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use toygres_activities::model::InstanceState;

/// `GET /console/`.
pub async fn page(State(state): State<ConsoleState>, viewer: Viewer) -> Result<Response, Problem> {
    let content = overview(&state).await?;
    Ok(layout::page(
        &viewer,
        Section::Overview,
        "Overview",
        html! {
            div.heading {
                h1 { "Overview" }
                @if viewer.may_change() {
                    div.actions { a.button href="/console/create" { "Create an instance" } }
                }
            }
            div data-live="/console/live/fleet" { (content) }
        },
    ))
}

/// `GET /console/live/fleet`: the counts alone.
pub async fn live(State(state): State<ConsoleState>, _viewer: Viewer) -> Response {
    match overview(&state).await {
        Ok(markup) => markup.into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn overview(state: &ConsoleState) -> Result<Markup, Problem> {
    let fleet = state.service.fleet().await?;
    let live: i64 = fleet
        .by_state
        .iter()
        .filter(|(state, _)| *state != InstanceState::Deleted)
        .map(|(_, count)| count)
        .sum();
    let last_day = |status: &str| -> i64 {
        fleet
            .last_day
            .iter()
            .filter(|count| count.status == status)
            .map(|count| count.count)
            .sum()
    };
    Ok(html! {
        @if live == 0 {
            div.notice {
                "No instances yet. "
                a href="/console/create" { "Create one" }
                " (or " code { "toygres create NAME" } " from a shell); it appears here as it starts."
            }
        }
        div.row {
            section.card aria-labelledby="by-state" {
                h2 #by-state { "Instances by state" }
                div.tiles {
                    @for (instance_state, count) in &fleet.by_state {
                        div.tile {
                            a href=(format!("/console/instances?state={instance_state}")) {
                                span.count { (count) }
                                (badge(instance_state.as_str()))
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="by-health" {
                h2 #by-health { "Running instances by health" }
                div.tiles {
                    @for (health, count) in &fleet.by_health {
                        div.tile { span.count { (count) } (badge(health)) }
                    }
                }
            }
        }
        section.card aria-labelledby="operations" {
            h2 #operations { "Operations" }
            div.tiles {
                div.tile { a href="/console/operations" { span.count { (fleet.unfinished) } "running now" } }
                div.tile { span.count { (last_day("succeeded")) } "succeeded in the last day" }
                div.tile { span.count { (last_day("failed")) } "failed in the last day" }
                div.tile { span.count { (last_day("canceled")) } "canceled in the last day" }
            }
            @if !fleet.last_day.is_empty() {
                p.muted { "The last day, by kind:" }
                table.cards {
                    thead { tr { th { "Kind" } th { "Status" } th.num { "Operations" } } }
                    tbody {
                        @for count in &fleet.last_day {
                            tr {
                                td data-label="Kind" { (count.kind) }
                                td data-label="Status" { (badge(&count.status)) }
                                td.num data-label="Operations" { (count.count) }
                            }
                        }
                    }
                }
            }
        }
    })
}
