//! The backups of `/console/instances/{name}`: its backup status, last backup and restore
//! window, a list of its backups (type, status, consistent point, sizes, verification) with
//! "Verify" and "Restore" for each one that can, and the handlers of "Back up now" and "Verify".

use super::super::ConsoleState;
use super::super::guard::{Fields, Viewer};
use super::instance_actions::to_operation;
use super::widgets::{ago, badge};
use super::{Problem, instance};
use crate::http::api::error::ApiError;
use crate::http::api::types::{Backup, Instance};
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use toygres_activities::validation::InstanceName;

/// Backups listed on the instance's page.
const LISTED: i64 = 10;

type FormResult = Result<axum::Form<Vec<(String, String)>>, FormRejection>;

/// `POST /console/instances/{name}/backups`: a full backup now; then its operation's page.
pub async fn take(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    let accepted = state.service.backup(&name).await;
    to_operation(
        &state,
        &viewer,
        &name,
        accepted.map(|taken| taken.operation.id),
    )
    .await
}

/// `POST /console/instances/{name}/backups/{id}/verify`: restores the backup into a scratch
/// server and checks it; then the verify's operation page.
pub async fn verify(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path((name, backup_id)): Path<(String, String)>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    // As the API: an id that cannot be a backup's is no backup.
    let well_formed = !backup_id.is_empty()
        && backup_id.len() <= 64
        && backup_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let accepted = if well_formed {
        state.service.verify_backup(&name, &backup_id).await
    } else {
        Err(ApiError::NotFound("no such backup".into()))
    };
    to_operation(
        &state,
        &viewer,
        &name,
        accepted.map(|verifying| verifying.operation.id),
    )
    .await
}

/// The backups card of the instance's page (refreshed live with the rest of it).
pub async fn section(
    state: &ConsoleState,
    viewer: &Viewer,
    name: &InstanceName,
    instance: &Instance,
) -> Result<Markup, Problem> {
    let archives = state.service.archives();
    let (backups, more) = state.service.backups(name, LISTED).await?;
    let summary = &instance.backup;
    Ok(html! {
        section.card aria-labelledby="backups" {
            h2 #backups { "Backups" }
            @if !archives {
                p.muted { "This server takes no backups (backups are off, or its backend runs none)." }
            }
            dl.facts #backup-facts {
                dt { "Archiving" } dd { (badge(&summary.status)) }
                dt { "Last backup" }
                dd { @match summary.last_backup_at { Some(at) => (ago(at)), None => "none yet" } }
                dt { "Restore window" }
                dd {
                    @match &summary.restore_window {
                        Some(window) => { (exact(window.earliest)) " to " (exact(window.latest)) }
                        None => "none (no backup to restore from yet)",
                    }
                }
            }
            @if backups.is_empty() {
                p.empty { "No backups yet." @if archives && instance.state == "running" { " Take one with \"Back up now\"; they are also taken on a schedule." } }
            } @else {
                table.cards #backup-list {
                    thead { tr { th { "Backup" } th { "Type" } th { "Status" } th { "Consistent at" } th { "Size" } th { "In repository" } th { "Verified" } @if viewer.may_change() { th { "Actions" } } } }
                    tbody {
                        @for backup in &backups {
                            tr {
                                td data-label="Backup" { code { (backup.id) } }
                                td data-label="Type" { (backup.r#type) }
                                td data-label="Status" {
                                    (badge(&backup.status))
                                    @if backup.expired_at.is_some() { " " span.muted { "expired" } }
                                    @if let Some(error) = &backup.error { " " code { (error.code) } " " (error.message) }
                                }
                                td data-label="Consistent at" { @match backup.consistent_at { Some(at) => (exact(at)), None => "—" } }
                                td data-label="Size" { (bytes(backup.size_bytes)) }
                                td data-label="In repository" { (bytes(backup.repo_size_bytes)) }
                                td data-label="Verified" { @match backup.verified_at { Some(at) => (ago(at)), None => "no" } }
                                @if viewer.may_change() {
                                    td data-label="Actions" { (backup_actions(viewer, archives, name, backup)) }
                                }
                            }
                        }
                    }
                }
                @if more { p.muted { "The newest " (LISTED) " are listed; GET /instances/" (name) "/backups lists them all." } }
            }
        }
    })
}

/// "Verify" and "Restore" for a backup that succeeded and is kept.
fn backup_actions(viewer: &Viewer, archives: bool, name: &InstanceName, backup: &Backup) -> Markup {
    let usable = archives && backup.status == "succeeded" && backup.expired_at.is_none();
    html! {
        @if usable {
            div.buttons {
                form method="post" action=(format!("/console/instances/{name}/backups/{}/verify", backup.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button.quiet type="submit" aria-label=(format!("Verify {}", backup.id)) { "Verify" }
                }
                a.button.quiet href=(format!("/console/create?restore_from={name}&backup_id={}", backup.id))
                    aria-label=(format!("Restore {} to a new instance", backup.id)) { "Restore" }
            }
        } @else {
            span.muted { "—" }
        }
    }
}

/// A time as `2026-12-03 09:00:00 UTC` (what a point-in-time restore is given, to the second).
fn exact(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A size in bytes, KiB, MiB or GiB.
fn bytes(size: Option<i64>) -> String {
    let Some(size) = size else {
        return "—".to_string();
    };
    let size = size.max(0) as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = size;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(None), "—");
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(2048)), "2.0 KiB");
        assert_eq!(bytes(Some(25 * 1024 * 1024)), "25.0 MiB");
    }
}
